import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, start, type Child } from './procs.js'

// The bench's upstreams when nginx is installed: one nginx process per backend (no master, no
// worker: the CPU of a backend is one process's), each answering every path 200 "ok" with
// `x-served-by`, as the Node backends do, for a fraction of their CPU per request. The load side's
// CPU is shared with redis-server, so the cheaper the backends, the less the Redis limiter waits
// on a busy core (docs/benchmarks.md, ninth session). The performance issue's figures were taken
// behind nginx backends too.

/** nginx's version, or undefined when it is not installed (`nginx -v` prints to stderr). */
export function nginxVersion (): string | undefined {
  const out = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
  if (out.status !== 0) return undefined
  return /nginx\/(\S+)/.exec(`${out.stderr}${out.stdout}`)?.[1] ?? 'unknown'
}

export interface Backends { ports: number[], children: Child[] }

/** Starts `count` nginx backends on free ports (pinned to `cpus` when set), their files under `dir`. */
export async function startNginxBackends (count: number, dir: string, cpus: string | undefined, avoid: number[]): Promise<Backends> {
  const ports: number[] = []
  const children: Child[] = []
  for (let i = 1; i <= count; i++) {
    const port = await freePort([...avoid, ...ports])
    const prefix = join(dir, `nginx-b${i}`)
    mkdirSync(prefix, { recursive: true })
    writeFileSync(join(prefix, 'nginx.conf'), [
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      `  client_body_temp_path ${join(prefix, 'body')};`,
      '  keepalive_requests 100000000;',
      '  keepalive_timeout 65s;',
      `  server { listen 127.0.0.1:${port}; location / { default_type text/plain; add_header x-served-by b${i}; return 200 "ok"; } }`,
      '}',
      ''
    ].join('\n'))
    children.push(start(`backend b${i} (nginx)`, 'nginx', ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', join(prefix, 'nginx.conf'),
      '-g', 'daemon off; master_process off;'], { cpus, cwd: prefix }))
    ports.push(port)
  }
  return { ports, children }
}

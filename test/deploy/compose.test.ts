import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { parse } from 'yaml'
import { loadConfig, VARIABLES, type Config } from '../../src/config/index.js'
import { freePort } from '../helpers/redis.js'

// No Docker engine here: the deployment files are parsed and checked against the code they run,
// and redis.conf is run by a real redis-server.

const ROOT = new URL('../../', import.meta.url)
const pathOf = (name: string): string => fileURLToPath(new URL(name, ROOT))
const read = (name: string): string => readFileSync(pathOf(name), 'utf8')

/**
 * A fresh, private directory, removed when `t` ends. Not t.testdir(): its path is fixed by the test's
 * name, so two runs of this file at once (two people testing one checkout) would share Redis files.
 */
function privateDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-deploy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

// --- docker-compose.yml ------------------------------------------------------------------------------

interface Service {
  image?: string
  build?: string | { context?: string }
  command?: string | string[]
  environment?: Record<string, string | number | boolean | null> | string[]
  ports?: Array<string | number | { target?: number, published?: string | number }>
  volumes?: Array<string | { type?: string, source?: string, target?: string }>
  depends_on?: string[] | Record<string, { condition?: string }>
  healthcheck?: { test?: string | string[] }
  profiles?: string[]
}
interface Compose { services: Record<string, Service>, volumes?: Record<string, unknown> }

// merge keys (<<: *anchor) as Docker Compose reads them
const compose = parse(read('docker-compose.yml'), { merge: true }) as Compose
const services = compose.services ?? {}
const BACKENDS = ['b1', 'b2', 'b3']
const SCALE_BACKENDS = ['b4', 'b5']

function service (t: Test, name: string): Service {
  const found = services[name]
  if (found === undefined) {
    t.fail(`docker-compose.yml has no service "${name}"`)
    return {}
  }
  return found
}

/** The service's environment as a map, whichever of the two compose forms it uses. */
function environmentOf (svc: Service): Record<string, string> {
  const env: Record<string, string> = {}
  if (Array.isArray(svc.environment)) {
    for (const entry of svc.environment) {
      const at = entry.indexOf('=')
      if (at === -1) env[entry] = ''
      else env[entry.slice(0, at)] = entry.slice(at + 1)
    }
  } else {
    for (const [key, value] of Object.entries(svc.environment ?? {})) env[key] = value === null ? '' : String(value)
  }
  return env
}

interface Interpolated { value: string, interpolated: boolean, withoutDefault: string[] }

/**
 * Compose interpolation with nothing set in the shell or a .env: `${VAR:-default}` and
 * `${VAR-default}` give their default, `${VAR}` and `$VAR` give '' (reported), `$$` is a `$`.
 */
function interpolate (raw: string): Interpolated {
  const withoutDefault: string[] = []
  let interpolated = false
  const value = raw.replace(/\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)/g,
    (match, braced?: string, operator?: string, fallback?: string, bare?: string) => {
      if (match === '$$') return '$'
      interpolated = true
      if (operator === ':-' || operator === '-') return fallback ?? ''
      withoutDefault.push(braced ?? bare ?? match)
      return ''
    })
  return { value, interpolated, withoutDefault }
}

function commandOf (svc: Service): string[] {
  if (Array.isArray(svc.command)) return svc.command.map(String)
  return typeof svc.command === 'string' ? svc.command.split(/\s+/).filter(Boolean) : []
}

function flag (args: string[], name: string): string | undefined {
  const at = args.indexOf(name)
  return at === -1 ? undefined : args[at + 1]
}

function healthcheckOf (svc: Service): string {
  const test = svc.healthcheck?.test
  return Array.isArray(test) ? test.join(' ') : test ?? ''
}

/** The URL a node `fetch(...)` healthcheck asks for, e.g. http://127.0.0.1:8080/healthz. */
function fetchedUrl (healthcheck: string): URL | undefined {
  const match = /fetch\('([^']+)'\)/.exec(healthcheck)
  return match === null ? undefined : new URL(match[1] as string)
}

function dependsOn (svc: Service): Record<string, string | undefined> {
  if (Array.isArray(svc.depends_on)) return Object.fromEntries(svc.depends_on.map(name => [name, undefined]))
  return Object.fromEntries(Object.entries(svc.depends_on ?? {}).map(([name, dep]) => [name, dep?.condition]))
}

/** Port mappings as [published, target]: "8080:8080", "127.0.0.1:8080:8080", or the long form. */
function portsOf (svc: Service): Array<[string, string]> {
  return (svc.ports ?? []).map(port => {
    if (typeof port === 'object') return [String(port.published ?? ''), String(port.target ?? '')]
    const parts = String(port).replace(/\/tcp$/, '').split(':')
    const target = parts.pop() ?? ''
    return [parts.pop() ?? '', target]
  })
}

function imageOf (svc: Service): string {
  return JSON.stringify({ image: svc.image, build: typeof svc.build === 'string' ? svc.build : svc.build?.context })
}

/** The gateway's environment with interpolations replaced by their defaults, and its config. */
function gatewayConfig (t: Test): { env: Record<string, string>, raw: Record<string, string>, config: Config | undefined } {
  const raw = environmentOf(service(t, 'gateway'))
  const env = Object.fromEntries(Object.entries(raw).map(([key, value]) => [key, interpolate(value).value]))
  const result = loadConfig(env, privateDir(t)) // an empty cwd: no .env of this checkout leaks in
  if (!result.ok) {
    t.fail(`the gateway's environment is refused: ${result.problems.join(' | ')}`)
    return { env, raw, config: undefined }
  }
  return { env, raw, config: result.config }
}

const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts

t.test('docker-compose.yml: redis, gateway, b1..b3 by default; b4 and b5 only under the "scale" profile', async t => {
  t.same(Object.keys(services).sort(), ['b1', 'b2', 'b3', 'b4', 'b5', 'gateway', 'redis'], 'exactly these services')
  const byDefault = Object.keys(services).filter(name => (services[name]?.profiles ?? []).length === 0)
  t.same(byDefault.sort(), [...BACKENDS, 'gateway', 'redis'].sort(), '`docker compose up` starts these')
  for (const name of SCALE_BACKENDS) t.same(service(t, name).profiles, ['scale'], `${name} runs under the scale profile only`)
})

t.test('the gateway publishes 8080, checks /healthz, and starts after a healthy Redis and its upstreams', async t => {
  const gateway = service(t, 'gateway')
  const { config } = gatewayConfig(t)
  const port = String(config?.port)
  t.same(portsOf(gateway), [['8080', port]], 'host port 8080 maps to the port the gateway listens on')
  t.equal(port, '8080', 'the gateway listens on 8080')

  const check = fetchedUrl(healthcheckOf(gateway))
  t.ok(check, 'the healthcheck fetches a URL')
  t.equal(check?.pathname, '/healthz', 'on /healthz')
  t.equal(check?.port, port, 'on the port the gateway listens on')
  t.equal(check?.hostname, '127.0.0.1', 'from inside the container')

  const deps = dependsOn(gateway)
  t.equal(deps.redis, 'service_healthy', 'waits for Redis to answer PING')
  for (const name of BACKENDS) t.ok(name in deps, `waits for ${name}`)
  t.ok(gateway.build, 'built from the Dockerfile')
})

t.test('every gateway variable is a Sluice variable, has a default, and loadConfig accepts the result', async t => {
  const { env, raw, config } = gatewayConfig(t)
  const known = new Set(Object.values(VARIABLES).map(v => v.env))
  t.ok(Object.keys(raw).length > 0, 'the gateway sets its environment')
  for (const key of Object.keys(raw)) t.ok(known.has(key), `${key} is a variable of src/config/schema.ts`)
  for (const [key, value] of Object.entries(raw)) {
    t.same(interpolate(value).withoutDefault, [], `${key}: every \${...} has a default, so the stack starts without a .env`)
    // an empty value would silently fall back to the built-in default instead of being checked
    t.not(env[key]?.trim(), '', `${key} is not empty`)
  }
  t.ok(config, 'loadConfig accepts every value')
  t.ok(config?.adminToken, 'ADMIN_TOKEN has a default: without a token the admin API answers loopback only, and the host is not loopback to a container')
  t.ok(Object.values(raw).some(value => interpolate(value).interpolated), 'some values can be set from the shell or .env')
})

t.test('UPSTREAMS names the default upstreams on the port they listen on; REDIS_URL names the redis service', async t => {
  const { config } = gatewayConfig(t)
  const gateway = service(t, 'gateway')
  const expected: string[] = []
  for (const name of [...BACKENDS, ...SCALE_BACKENDS]) {
    const backend = service(t, name)
    const args = commandOf(backend)
    t.same(args.slice(0, 2), scripts.backend?.split(' '), `${name} runs the demo upstream as \`npm run backend\` does`)
    t.equal(flag(args, '--host'), '0.0.0.0', `${name} listens on every interface (the default 127.0.0.1 is unreachable from the gateway)`)
    t.equal(flag(args, '--name'), name, `${name} names itself after its service`)
    const port = flag(args, '--port')
    t.match(port, /^\d+$/, `${name} sets its port`)
    const check = fetchedUrl(healthcheckOf(backend))
    t.equal(check?.pathname, config?.healthCheckPath, `${name}'s healthcheck is the gateway's HEALTH_CHECK_PATH`)
    t.equal(check?.port, port, `${name}'s healthcheck uses its port`)
    t.equal(imageOf(backend), imageOf(gateway), `${name} runs the gateway's image`)
    if (BACKENDS.includes(name)) expected.push(`http://${name}:${port}`)
  }
  t.same(config?.upstreams.map(u => u.url).sort(), expected.sort(), 'UPSTREAMS is b1..b3 on their ports')

  const redisUrl = new URL(config?.redisUrl ?? 'missing:')
  t.equal(redisUrl.protocol, 'redis:', 'REDIS_URL is a redis:// URL')
  t.equal(redisUrl.hostname, 'redis', 'REDIS_URL names the redis service')
  t.equal(redisUrl.port || '6379', confDirectives().get('port'), 'on the port redis.conf sets')
})

t.test('redis runs redis.conf, mounted from ./redis.conf, keeps its data on a volume, and is not published', async t => {
  const redis = service(t, 'redis')
  t.match(redis.image, /^redis:7/, 'the redis:7 image')
  const args = commandOf(redis)
  t.equal(args[0], 'redis-server', 'redis runs redis-server')
  const confPath = args[1] ?? ''
  t.match(confPath, /^\/.*\.conf$/, 'redis-server is given a config file')
  const mounts = (redis.volumes ?? []).map(v => typeof v === 'string' ? v.split(':') : [v.source ?? '', v.target ?? ''])
  t.ok(mounts.some(([source, target]) => source === './redis.conf' && target === confPath), `./redis.conf is mounted at ${confPath}`)
  const data = mounts.find(([, target]) => target === '/data')
  t.ok(data, 'a volume at /data, where the image keeps the AOF and RDB files')
  t.ok(data !== undefined && Object.hasOwn(compose.volumes ?? {}, data[0] as string), 'a named volume, declared at the top level')
  t.match(healthcheckOf(redis), /redis-cli\b.*\bping/, 'healthcheck: redis-cli ping')
  t.same(redis.ports ?? [], [], 'Redis has no password: its port is never published')
})

// --- Dockerfile -----------------------------------------------------------------------------------

interface Instruction { keyword: string, args: string }

/** Dockerfile instructions, with comments dropped and `\` continuations joined. */
function instructions (text: string): Instruction[] {
  const joined = text.split('\n').filter(line => !/^\s*#/.test(line)).join('\n').replace(/\\\n/g, ' ')
  return joined.split('\n').map(line => line.trim()).filter(Boolean).map(line => {
    const [keyword = '', ...rest] = line.split(/\s+/)
    return { keyword: keyword.toUpperCase(), args: rest.join(' ') }
  })
}

t.test('Dockerfile: build and runtime stages, a non-root user, a /healthz HEALTHCHECK and the CMD of `npm start`', async t => {
  const all = instructions(read('Dockerfile'))
  const froms = all.map((ins, at) => ({ ...ins, at })).filter(ins => ins.keyword === 'FROM')
  t.equal(froms.length, 2, 'two stages')
  for (const from of froms) t.match(from.args, /^node:20-bookworm-slim\b/, 'both on node:20-bookworm-slim')
  const buildName = /\bAS\s+(\S+)/i.exec(froms[0]?.args ?? '')?.[1]
  t.ok(buildName, 'the build stage is named')
  const build = all.slice(froms[0]?.at ?? 0, froms[1]?.at ?? all.length)
  const runtime = all.slice(froms[1]?.at ?? all.length)

  const runs = build.filter(i => i.keyword === 'RUN').map(i => i.args).join(' && ')
  for (const step of ['npm ci', 'npm run build', 'npm prune --omit=dev']) t.ok(runs.includes(step), `the build stage runs ${step}`)
  t.ok(runs.indexOf('npm ci') < runs.indexOf('npm run build') && runs.indexOf('npm run build') < runs.indexOf('npm prune'), 'in that order')
  const copied = build.filter(i => i.keyword === 'COPY').flatMap(i => i.args.split(/\s+/).slice(0, -1))
  const tsconfig = JSON.parse(read('tsconfig.build.json')) as { extends?: string, include: string[] }
  for (const needed of ['package.json', 'package-lock.json', 'tsconfig.build.json', (tsconfig.extends ?? '').replace(/^\.\//, ''), ...tsconfig.include]) {
    t.ok(copied.includes(needed), `the build stage copies ${needed}`)
  }

  const fromBuild = runtime.filter(i => i.keyword === 'COPY' && i.args.includes(`--from=${buildName}`)).map(i => i.args)
  for (const needed of ['dist', 'node_modules', 'package.json']) {
    t.ok(fromBuild.some(args => args.includes(`/app/${needed}`)), `the runtime stage takes ${needed} from the build stage`)
  }
  t.notOk(runtime.some(i => i.keyword === 'COPY' && !i.args.includes('--from=')), 'and nothing from the build context')

  const user = runtime.filter(i => i.keyword === 'USER').at(-1)?.args
  t.ok(user, 'a USER in the runtime stage')
  t.notMatch(user ?? 'root', /^(root|0)(:|$)/, 'that is not root')
  t.ok(runtime.some(i => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args)), 'NODE_ENV=production')
  t.ok(runtime.some(i => i.keyword === 'EXPOSE' && i.args.split(/\s+/).includes(portsOf(service(t, 'gateway'))[0]?.[1] ?? '')), 'EXPOSEs the port compose maps')

  const healthcheck = runtime.find(i => i.keyword === 'HEALTHCHECK')?.args ?? ''
  t.match(healthcheck, /\bCMD\b/, 'a HEALTHCHECK command')
  t.match(healthcheck, /\/healthz\b/, 'on /healthz')
  t.match(healthcheck, /\b8080\b/, 'on 8080 by default')
  t.notMatch(healthcheck, /\b(curl|wget)\b/, 'with node itself: slim images have no curl or wget')

  const cmd = runtime.filter(i => i.keyword === 'CMD').at(-1)?.args ?? '[]'
  t.same(JSON.parse(cmd), scripts.start?.split(' '), 'CMD (exec form) is what `npm start` runs: node dist/src/server.js')
  t.same(JSON.parse(cmd), ['node', 'dist/src/server.js'], 'the compiled entry point')
})

t.test('.dockerignore keeps secrets and local builds out of the image', async t => {
  const ignored = read('.dockerignore').split('\n').map(line => line.trim()).filter(line => line !== '' && !line.startsWith('#'))
  for (const entry of ['.env', 'node_modules', 'dist', '.git']) t.ok(ignored.includes(entry), `${entry} is ignored`)
  for (const needed of ['src', 'plugins', 'routes', 'tools', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
    t.notOk(ignored.includes(needed), `${needed} reaches the build`)
  }
})

// --- redis.conf -----------------------------------------------------------------------------------

/** redis.conf's directives, the last one of each name winning as in Redis. */
function confDirectives (): Map<string, string> {
  const directives = new Map<string, string>()
  for (const line of read('redis.conf').split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const [name = '', ...value] = trimmed.split(/\s+/)
    directives.set(name.toLowerCase(), value.join(' '))
  }
  return directives
}

/** Redis memory units: 1k = 1000, 1kb = 1024, and so on. */
function bytes (value: string): number {
  const match = /^(\d+)(k|kb|m|mb|g|gb)?$/i.exec(value)
  if (match === null) return Number.NaN
  const unit = { k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 }[(match[2] ?? '').toLowerCase() as 'k'] ?? 1
  return Number(match[1]) * unit
}

t.test('redis.conf: AOF on, a memory cap, and an eviction policy that can only evict keys with a TTL', async t => {
  const conf = confDirectives()
  t.equal(conf.get('appendonly'), 'yes', 'appendonly yes: the pool survives a restart')
  t.equal(conf.get('appendfsync'), 'everysec')
  t.ok((conf.get('save') ?? '') !== '', 'RDB snapshots on')
  t.ok(bytes(conf.get('maxmemory') ?? '0') > 0, 'maxmemory is set')
  const policy = conf.get('maxmemory-policy') ?? ''
  t.match(policy, /^volatile-(lru|lfu|ttl|random)$/, 'a volatile-* policy: only keys with a TTL (the limiter\'s) can be evicted')
  t.notMatch(policy, /^allkeys-/, 'never allkeys-*: it could evict the pool')
  t.equal(conf.get('bind'), '0.0.0.0', 'reachable from the gateway container')
  t.equal(conf.get('protected-mode'), 'no', 'protected mode would refuse the gateway (no password)')
  t.notOk(conf.has('dir'), 'no dir: the image\'s /data is the working directory, and a missing dir stops redis-server before overrides apply')
  t.not(conf.get('daemonize'), 'yes', 'in the foreground, as a container must')
})

interface RunningRedis { client: Redis, child: ChildProcess }

/** redis-server with redis.conf as its first argument, on a free port and in `dir`. */
async function runConf (t: Test, port: number, dir: string): Promise<RunningRedis> {
  const child = spawn('redis-server', [pathOf('redis.conf'), '--port', String(port), '--dir', dir, '--bind', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => stop(child, 'SIGKILL'))
  const deadline = Date.now() + 5000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server refused redis.conf (exit ${child.exitCode}):\n${output}`)
    const ok = await new Promise<boolean>(resolve => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.end(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) break
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}:\n${output}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 })
  t.teardown(() => client.disconnect())
  return { client, child }
}

/**
 * Stops the server by its PID and waits for it to exit; SIGKILL after 5 s, since a SIGTERMed Redis
 * that cannot write its final snapshot refuses to exit.
 */
async function stop (child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const pid = child.pid
  const exited = new Promise(resolve => child.once('exit', resolve))
  process.kill(pid, signal)
  const timer = setTimeout(() => { if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL') }, 5000)
  await exited
  clearTimeout(timer)
}

const configGet = async (client: Redis, name: string): Promise<string | undefined> =>
  ((await client.call('CONFIG', 'GET', name)) as string[])[1]

t.test('redis-server runs redis.conf as written: counters are evicted, the pool never is, and it survives a crash', async t => {
  const conf = confDirectives()
  const port = await freePort()
  const dir = privateDir(t)
  let { client, child } = await runConf(t, port, dir)

  t.equal(await configGet(client, 'maxmemory-policy'), conf.get('maxmemory-policy'), 'maxmemory-policy as in the file')
  t.equal(await configGet(client, 'appendonly'), conf.get('appendonly'), 'appendonly as in the file')
  t.equal(await configGet(client, 'appendonly'), 'yes', 'appendonly is on')
  const overridden = new Set(['port', 'bind']) // by the arguments above, as a test must
  for (const [name, value] of conf) {
    if (overridden.has(name)) continue
    const expected = name === 'maxmemory' ? String(bytes(value)) : value
    t.equal(await configGet(client, name), expected, `${name} ${value}`)
  }

  // the shared pool as src/pool/shared-pool.ts writes it: no TTL, ever
  const servers = { a1: '{"url":"http://b1:3000","weight":1}', b2: '{"url":"http://b2:3000","weight":2}' }
  await client.hset('sluice:{pool}:servers', servers)
  await client.set('sluice:{pool}:version', '2')

  // leave about 1 MB of room, then write 4 MB of counters, each with a TTL as the limiter's script sets it
  const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
  await client.config('SET', 'maxmemory', String(used + 1024 * 1024))
  const filler = 'x'.repeat(1000)
  for (let batch = 0; batch < 4; batch++) {
    const pipeline = client.pipeline()
    for (let i = 0; i < 1000; i++) pipeline.set(`sluice:rl:{10.${batch}.${i >> 8}.${i & 255}}`, filler, 'PX', 60_000)
    await pipeline.exec()
  }
  const evicted = Number(/evicted_keys:(\d+)/.exec(await client.info('stats'))?.[1])
  t.ok(evicted > 0, `memory ran out and counters were evicted (${evicted})`)
  t.same(await client.hgetall('sluice:{pool}:servers'), servers, 'the pool\'s servers were not')
  t.equal(await client.get('sluice:{pool}:version'), '2', 'nor its version')
  t.equal(await client.pttl('sluice:{pool}:servers'), -1, 'the pool has no TTL')

  // a crash (SIGKILL: no final RDB snapshot) after appendfsync everysec had its second
  await new Promise(resolve => setTimeout(resolve, 1100))
  client.disconnect()
  await stop(child, 'SIGKILL')
  ;({ client, child } = await runConf(t, port, dir))
  t.same(await client.hgetall('sluice:{pool}:servers'), servers, 'the pool survives the crash (replayed from the AOF)')
  t.equal(await client.get('sluice:{pool}:version'), '2', 'and its version')
  client.disconnect()
  await stop(child, 'SIGTERM')
})

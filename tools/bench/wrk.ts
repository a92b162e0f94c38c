import { execFile, spawnSync } from 'node:child_process'

// The performance issue's figures, and ../shared/bench/compare.sh, were measured with wrk, so the
// bench reads the issue's latency goal with it too: a C load generator with no event loop of its
// own to add to the tail, where autocannon (the bench's load for everything else) runs in the bench
// process, on the load core beside the backends and Redis.

/** wrk's version, or undefined when it is not installed (`wrk -v` prints it and exits 1). */
export function wrkVersion (): string | undefined {
  const out = spawnSync('wrk', ['-v'], { encoding: 'utf8' })
  if (out.error !== undefined) return undefined
  return /wrk\s+(\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown'
}

export interface WrkResult {
  requests: number
  rps: number
  p50Ms: number
  p99Ms: number
  /** connect, read, write and timeout errors together */
  errors: number
  non2xx: number
}

/** ms per unit of a duration as wrk prints it (`812.00us`, `3.60ms`, `1.02s`, `2.00m`). */
const MS_PER_UNIT = { us: 0.001, ms: 1, s: 1000, m: 60_000 } as const

/** Reads the summary `wrk --latency` prints; throws when a figure the bench needs is missing. */
export function parseWrk (text: string): WrkResult {
  const percentile = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text)
    if (m === null) throw new Error(`wrk: no ${p}% latency in its output (was --latency given?)`)
    return Number(m[1]) * MS_PER_UNIT[m[2] as keyof typeof MS_PER_UNIT]
  }
  const requests = /^\s*(\d+) requests in /m.exec(text)
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text)
  if (requests === null || rps === null) throw new Error('wrk: no request count in its output')
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const errors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0)
  return { requests: Number(requests[1]), rps: Number(rps[1]), p50Ms: percentile('50'), p99Ms: percentile('99'), errors, non2xx }
}

/** One wrk run (one thread, on this process's CPUs) against `GET /` on `port`. */
export async function runWrk (port: number, connections: number, seconds: number): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`]
  return await new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`wrk ${args.join(' ')}: ${err.message}${stderr === '' ? '' : `: ${stderr.trim()}`}`))
        return
      }
      try {
        resolve(parseWrk(stdout))
      } catch (parseErr) {
        reject(parseErr)
      }
    })
  })
}

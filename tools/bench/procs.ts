import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { request } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
export { freePort } from '../free-port.js'

// Child processes of the bench: started pinned (or not), every one remembered by PID and stopped
// by PID at the end, on error and on SIGINT. Plus CPU accounting from /proc.

export interface Child {
  name: string
  pid: number
  proc: ChildProcess
  /** Last few KB of the child's stdout + stderr, for the error message when it dies early. */
  output: () => string
  exited: () => boolean
}

const children = new Map<number, Child>()

/** Whether CPU pinning can be used here: Linux, `taskset` installed, at least 2 CPUs. */
export function canPin (cpuCount: number): boolean {
  if (process.platform !== 'linux' || cpuCount < 2) return false
  return spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0
}

/** Pins this process (all its threads) to `cpus`; true when it worked. */
export function pinSelf (cpus: string): boolean {
  return spawnSync('taskset', ['-a', '-cp', cpus, String(process.pid)], { stdio: 'ignore' }).status === 0
}

/**
 * Starts `command args` (under `taskset -c cpus` when `cpus` is set: taskset execs the command, so
 * the PID is the command's own) and registers it for stopping.
 */
export function start (name: string, command: string, args: string[], options: { cpus?: string, env?: NodeJS.ProcessEnv, cwd?: string, stdoutFd?: number } = {}): Child {
  const argv = options.cpus === undefined ? [command, ...args] : ['taskset', '-c', options.cpus, command, ...args]
  const proc = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', options.stdoutFd ?? 'pipe', 'pipe']
  })
  let tail = ''
  let exited = false
  const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString('utf8')).slice(-4096) }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  proc.on('exit', () => { exited = true })
  proc.on('error', err => { exited = true; tail += `\n${err.message}` })
  if (proc.pid === undefined) throw new Error(`cannot start ${name} (${argv[0] ?? ''})`)
  const child: Child = { name, pid: proc.pid, proc, output: () => tail.trim(), exited: () => exited }
  children.set(proc.pid, child)
  return child
}

/**
 * The write end of a named pipe (to close once given to the child) that `cat` (on `cpus`, registered for stopping) reads and drops,
 * for a chatty child's stdout (an access log): as a container runtime reads stdout, a real pipe
 * (spawn's own 'pipe' is a socket pair). Piped to this process, the lines would cost the load
 * generator CPU; to a file, this VM's virtual disk costs the gateway more than the log itself.
 */
export async function readerPipe (name: string, cpus: string | undefined, dir: string): Promise<FileHandle> {
  const path = join(dir, `${name.replace(/[^\w.-]/g, '_')}.stdout`)
  if (spawnSync('mkfifo', [path]).status !== 0) throw new Error(`cannot make the pipe ${path} (mkfifo)`)
  const argv = cpus === undefined ? ['cat', path] : ['taskset', '-c', cpus, 'cat', path]
  const proc = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore'] })
  if (proc.pid === undefined) throw new Error(`cannot start the reader of ${name}'s stdout (cat)`)
  let exited = false
  proc.on('exit', () => { exited = true })
  proc.on('error', () => { exited = true })
  children.set(proc.pid, { name: `${name} stdout`, pid: proc.pid, proc, output: () => '', exited: () => exited })
  // opening for writing waits for the reader: on the thread pool, with a bound
  return Promise.race([
    open(path, 'w'),
    sleep(10_000).then(() => { throw new Error(`the reader of ${name}'s stdout did not open ${path}`) })
  ])
}

/** Stops every child still running: SIGTERM by PID, SIGKILL after `graceMs`. */
export async function stopAll (graceMs = 5000): Promise<void> {
  const running = [...children.values()].filter(c => !c.exited())
  await Promise.all(running.map(async child => {
    const gone = new Promise<void>(resolve => {
      if (child.exited()) resolve()
      else child.proc.once('exit', () => resolve())
    })
    signal(child.pid, 'SIGTERM')
    const timer = setTimeout(() => signal(child.pid, 'SIGKILL'), graceMs)
    await gone
    clearTimeout(timer)
  }))
  children.clear()
}

/** Last resort from a synchronous 'exit' handler: SIGKILL whatever is still running. */
export function killAllNow (): void {
  for (const child of children.values()) if (!child.exited()) signal(child.pid, 'SIGKILL')
}

function signal (pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig) } catch { /* already gone */ }
}

/** First line the child writes on stdout, within `timeoutMs`. */
export async function firstLine (child: Child, timeoutMs: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    let buffer = ''
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8')
      const end = buffer.indexOf('\n')
      if (end >= 0) { done(); resolve(buffer.slice(0, end)) }
    }
    const onExit = (): void => { done(); reject(new Error(`${child.name} exited before it was ready: ${child.output()}`)) }
    const timer = setTimeout(() => { done(); reject(new Error(`${child.name} not ready after ${timeoutMs} ms: ${child.output()}`)) }, timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      child.proc.stdout?.off('data', onData)
      child.proc.off('exit', onExit)
    }
    child.proc.stdout?.on('data', onData)
    child.proc.once('exit', onExit)
  })
}

export interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** One GET to 127.0.0.1 on a fresh connection. */
export async function get (port: number, path: string, timeoutMs = 2000): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)))
    req.on('error', reject)
    req.end()
  })
}

/** Polls `probe` every 100 ms until it resolves true; fails when `child` exits or after `timeoutMs`. */
export async function waitFor (child: Child, what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exited()) throw new Error(`${child.name} exited before ${what}: ${child.output() || '(no output)'}`)
    if (await probe().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`${child.name}: no ${what} after ${timeoutMs} ms: ${child.output() || '(no output)'}`)
    await sleep(100)
  }
}

/** Whether a Redis server answers PING on 127.0.0.1:port. */
export async function redisPing (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    const finish = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => finish(false))
    socket.on('error', () => finish(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', chunk => {
      data += chunk.toString('utf8')
      if (data.includes('\r\n')) finish(data.startsWith('+PONG'))
    })
  })
}

// ---------------------------------------------------------------- CPU accounting (Linux /proc)

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 almost everywhere). */
export const CLK_TCK = ((): number => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(out.stdout?.trim())
  return Number.isInteger(n) && n > 0 ? n : 100
})()

/** utime + stime of a process (all its threads), in clock ticks; undefined without /proc. */
export function processTicks (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/** `pid` and every process below it (a cluster primary's workers), from /proc's children lists; [pid] without them. */
export function processTree (pid: number): number[] {
  const tree = [pid]
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i] as number
    try {
      for (const task of readdirSync(`/proc/${parent}/task`)) {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim()
        if (children !== '') tree.push(...children.split(' ').map(Number))
      }
    } catch {
      // gone, or no /proc: what was found so far
    }
  }
  return tree
}

/** Busy ticks (user+nice+system+irq+softirq) summed over all CPUs; undefined without /proc. */
export function machineBusyTicks (): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find(l => l.startsWith('cpu '))
    if (line === undefined) return undefined
    const f = line.trim().split(/\s+/).map(Number)
    return (f[1] ?? 0) + (f[2] ?? 0) + (f[3] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)
  } catch {
    return undefined
  }
}

/** Ticks of the given processes (missing ones count 0) and of the whole machine, now. */
export interface CpuSnapshot { at: bigint, perPid: Map<number, number>, busy: number | undefined }

export function snapshot (pids: number[]): CpuSnapshot {
  const perPid = new Map<number, number>()
  for (const pid of pids) {
    const ticks = processTicks(pid)
    if (ticks !== undefined) perPid.set(pid, ticks)
  }
  return { at: process.hrtime.bigint(), perPid, busy: machineBusyTicks() }
}

export interface CpuDelta {
  wallS: number
  /** CPU seconds of each pid between the snapshots (missing: no /proc). */
  cpuS: Map<number, number>
  /** CPU busy on the machine but not in any of the pids, in % of one core. */
  foreignPct: number | undefined
}

export function delta (before: CpuSnapshot, after: CpuSnapshot): CpuDelta {
  const wallS = Number(after.at - before.at) / 1e9
  const cpuS = new Map<number, number>()
  let ours = 0
  for (const [pid, ticks] of after.perPid) {
    const was = before.perPid.get(pid)
    if (was === undefined) continue
    cpuS.set(pid, (ticks - was) / CLK_TCK)
    ours += (ticks - was) / CLK_TCK
  }
  const foreignPct = before.busy === undefined || after.busy === undefined || wallS <= 0
    ? undefined
    : Math.max(0, ((after.busy - before.busy) / CLK_TCK - ours) / wallS * 100)
  return { wallS, cpuS, foreignPct }
}

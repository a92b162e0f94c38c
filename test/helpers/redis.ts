import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { freePort } from '../../tools/free-port.js'

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released): the same helper the bench uses. */
export { freePort }

export interface RedisServer {
  port: number
  url: string
  pid: number
  /** Stops it for good (SIGKILL by default, as a crash would). */
  kill: (signal?: NodeJS.Signals) => Promise<void>
  /** Starts a fresh server on the same port after a kill. */
  restart: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

async function accepting (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>(resolve => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.end(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/**
 * A private, throw-away redis-server (no persistence) on a free port: never the machine's 6379,
 * and stopped by its PID when the test ends. `args` are extra redis-server arguments.
 */
export async function startRedis (t: Teardown, args: string[] = [], port?: number): Promise<RedisServer> {
  port ??= await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn('redis-server', [
      '--port', String(port as number), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--loglevel', 'warning', ...args
    ], { stdio: 'ignore' })
    await accepting(port as number, 5000)
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const running = child
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise(resolve => running.once('exit', resolve))
    running.kill(signal)
    await exited
  }
  await start()
  t.teardown(() => kill())
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid () { return child?.pid ?? -1 },
    kill,
    restart: start
  }
}

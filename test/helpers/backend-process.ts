import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../tools/free-port.js'

const BACKEND = fileURLToPath(new URL('../../dist/tools/backend.js', import.meta.url))
const LISTEN_TIMEOUT_MS = 20_000

export interface BackendProcess {
  /** Its origin, http://127.0.0.1:<port>; the same across restarts. */
  url: string
  name: string
  port: number
  /** The PID of the current process (a restart gets a new one). */
  pid: () => number
  /** Whether the current process is still running. */
  running: () => boolean
  /** Sends `signal` (SIGKILL unless told) and resolves when the process has exited. */
  kill: (signal?: NodeJS.Signals) => Promise<void>
  /** Starts it again on the same port and name; resolves once it listens. */
  restart: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

interface Running { child: ChildProcess, exited: Promise<void> }

/**
 * The built demo upstream (`dist/tools/backend.js`) as a child process on a free port of
 * 127.0.0.1, for tests that must kill an upstream outright (SIGKILL: no FIN handshake done by
 * Node, no graceful close) and bring it back on the same address. Killed by PID when the test ends.
 */
export async function startBackendProcess (t: Teardown, name: string, args: string[] = []): Promise<BackendProcess> {
  if (!existsSync(BACKEND)) throw new Error(`${BACKEND} is missing: run \`npm run build\` first (npm test does)`)
  const port = await freePort()
  let current = await launch(port, name, args)
  const alive = (): boolean => current.child.exitCode === null && current.child.signalCode === null

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (alive()) process.kill(current.child.pid as number, signal)
    await current.exited
  }
  t.teardown(() => kill('SIGKILL'))

  return {
    url: `http://127.0.0.1:${port}`,
    name,
    port,
    pid: () => current.child.pid as number,
    running: alive,
    kill,
    restart: async () => {
      await kill('SIGKILL')
      current = await launch(port, name, args)
    }
  }
}

/** Spawns one backend and waits for its "listening" line; rejects (with its stderr) if it exits first. */
async function launch (port: number, name: string, args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [BACKEND, '--port', String(port), '--name', name, ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<void>(resolve => child.once('close', () => resolve()))
  let out = ''
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`backend ${name} did not listen on ${port} within ${LISTEN_TIMEOUT_MS} ms: ${err}`))
    }, LISTEN_TIMEOUT_MS)
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      if (out.includes('listening')) { clearTimeout(timer); resolve() }
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`backend ${name} exited (${String(code ?? signal)}) before listening on ${port}: ${err}`))
    })
  })
  return { child, exited }
}

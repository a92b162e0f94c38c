import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface Spawned {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * Starts a built file of the project (what its npm script runs) with only `env` (plus PATH) in its
 * environment. Built, not from source: transpiling the app per spawn takes tens of seconds on a
 * loaded 2-core machine. `npm test` builds before it runs the tests.
 */
function launch (file: string, args: string[], env: Record<string, string>, cwd: string): Spawned {
  const path = `${ROOT}dist/${file}`
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` first (npm test does)`)
  const child = spawn(process.execPath, [path, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<number | null>(resolve => child.once('close', code => resolve(code)))
  return { child, stdout: () => out, stderr: () => err, exited }
}

/** Runs the built gateway as `npm start` would; killed when the test ends if still running. */
export function spawnServer (t: Teardown, env: Record<string, string>, cwd: string): Spawned {
  return spawnBuilt(t, 'src/server.js', env, cwd)
}

/** Runs a built file (`tools/bench/forwarder.js`, say) until the test ends. */
export function spawnBuilt (t: Teardown, file: string, env: Record<string, string>, cwd = ROOT): Spawned {
  const spawned = launch(file, [], env, cwd)
  t.teardown(() => { if (spawned.child.exitCode === null && spawned.child.signalCode === null) spawned.child.kill('SIGKILL') })
  return spawned
}

/** Runs a built tool (`tools/<name>.js`) to completion, as its npm script would. */
export async function runTool (name: string, args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const run = launch(`tools/${name}.js`, args, {}, ROOT)
  const code = await run.exited
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

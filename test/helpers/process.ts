import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
// the same TypeScript loader tap runs the tests with, so the entry runs from source
const TS_LOADER = new URL('node_modules/@tapjs/typescript/dist/esm/import.mjs', `file://${ROOT}`).href

export interface Spawned {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

interface Teardown { teardown: (fn: () => unknown) => void }

/** Runs `src/server.ts` as `npm start` would, with only `env` (plus PATH) in its environment. */
export function spawnServer (t: Teardown, env: Record<string, string>, cwd: string): Spawned {
  const child = spawn(process.execPath, ['--import', TS_LOADER, `${ROOT}src/server.ts`], {
    cwd,
    env: { PATH: process.env.PATH ?? '', TS_NODE_PROJECT: `${ROOT}tsconfig.json`, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, stdout: () => out, stderr: () => err, exited }
}

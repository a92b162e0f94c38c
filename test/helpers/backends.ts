import type { AddressInfo } from 'node:net'
import { createBackend, type Backend, type BackendBehaviour } from '../../tools/backend/app.js'

export interface RunningBackend extends Backend {
  url: string
  name: string
  /** Stops the server and drops its connections: from now on it refuses connections. */
  stop: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

/** Real demo upstreams on 127.0.0.1, port 0, named b1..bn; stopped when the test ends. */
export async function startBackends (t: Teardown, count: number, behaviour: Partial<BackendBehaviour> = {}): Promise<RunningBackend[]> {
  const backends: RunningBackend[] = []
  for (let i = 1; i <= count; i++) backends.push(await startBackend(t, { ...behaviour, name: `b${i}` }))
  return backends
}

export async function startBackend (t: Teardown, behaviour: Partial<BackendBehaviour> & { name: string }): Promise<RunningBackend> {
  const backend = createBackend(behaviour)
  await new Promise<void>(resolve => backend.server.listen(0, '127.0.0.1', resolve))
  const { port } = backend.server.address() as AddressInfo
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    const closed = new Promise(resolve => backend.server.close(resolve))
    backend.server.closeAllConnections()
    await closed
  }
  t.teardown(stop)
  return { ...backend, url: `http://127.0.0.1:${port}`, name: behaviour.name, stop }
}

/** How many requests each backend answered on `path`, by name. */
export function hitsOn (backends: RunningBackend[], path = '/'): Record<string, number> {
  return Object.fromEntries(backends.map(b => [b.name, b.hits.get(path) ?? 0]))
}

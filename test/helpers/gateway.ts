import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config/index.js'
import { waitFor } from './wait.js'

export interface Gateway {
  app: FastifyInstance
  url: string
  /** Where /admin, /docs and /metrics are served: `url`, or the ADMIN_PORT listener's. */
  adminUrl: string
  config: Config
}

interface Teardown { teardown: (fn: () => unknown) => void }

/**
 * A real gateway on 127.0.0.1, port 0, configured from environment-style variables exactly as
 * `npm start` would be (defaults applied), closed when the test ends. Waits until every seeded
 * upstream has had its first health check, unless `waitHealthy` is false.
 */
export async function startGateway (t: Teardown, env: Record<string, string>, waitHealthy = true): Promise<Gateway> {
  const result = loadConfig({ LOG_LEVEL: 'silent', ...env }, '/nonexistent')
  if (!result.ok) throw new Error(result.problems.join('\n'))
  const app = await buildApp(result.config)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  let adminUrl = `http://127.0.0.1:${port}`
  if (app.adminApp !== null) {
    await app.adminApp.listen({ port: result.config.adminPort, host: '127.0.0.1' })
    adminUrl = `http://127.0.0.1:${result.config.adminPort as number}`
  }
  if (waitHealthy) {
    const { pool } = app.balancer
    await waitFor(() => pool.list().every(s => s.state !== 'unknown'), 'first health checks')
  }
  return { app, url: `http://127.0.0.1:${port}`, adminUrl, config: result.config }
}

/** Environment for a gateway in front of these upstreams, with fast health checks for tests. */
export function upstreamsEnv (backends: Array<{ url: string }>, extra: Record<string, string> = {}): Record<string, string> {
  return {
    UPSTREAMS: backends.map(b => b.url).join(','),
    HEALTH_CHECK_INTERVAL: '100ms',
    HEALTH_CHECK_TIMEOUT: '500ms',
    ...extra
  }
}

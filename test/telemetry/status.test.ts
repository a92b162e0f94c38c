import t from 'tap'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { clearOfWindowEdge } from '../helpers/wait.js'

async function send (url: string, options: Parameters<typeof request>[1] = {}): Promise<number> {
  const res = await request(url, options)
  await res.body.dump()
  return res.statusCode
}

interface Status {
  uptimeSeconds: number
  requests: { total: number, errors: number, rateLimited: number, perSecond: number, errorRate: number }
  latencyMs: { avg: number, min: number, max: number, p50: number, p95: number, p99: number }
  statusCodes: Record<string, number>
  limiter: { store: string, algorithm: string, degraded: boolean }
  servers: Array<{ id: string, state: string, totalRequests: number }>
}

t.test('GET /admin/status: a known mix of 200s, 429s, 502s and 503s adds up', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, {
    HEALTH_CHECK_INTERVAL: '0',
    PASSIVE_FAILURE_THRESHOLD: '0',
    RETRIES: '0',
    RATE_LIMIT_KEY: 'header:x-client',
    RATE_LIMIT_MAX: '5',
    RATE_LIMIT_ALGORITHM: 'fixed-window'
  }))
  const status = async (): Promise<Status> => {
    const res = await request(`${gw.adminUrl}/admin/status`)
    t.equal(res.statusCode, 200)
    return await res.body.json() as Status
  }
  const empty = await status()
  t.same(empty.requests, { total: 0, errors: 0, rateLimited: 0, perSecond: 0, errorRate: 0 }, 'nothing counted yet')
  t.same(empty.latencyMs, { avg: 0, min: 0, max: 0, p50: 0, p95: 0, p99: 0 })
  t.same(empty.statusCodes, {})

  const as = (client: string): Parameters<typeof request>[1] => ({ headers: { 'x-client': client } })
  // N = 12 answered 200: the greedy client's budget of 5, then 7 clients once each
  const statuses: number[] = []
  await clearOfWindowEdge(60_000)
  for (let i = 0; i < 8; i++) statuses.push(await send(`${gw.url}/`, as('greedy')))
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429], 'M = 3 refused by the limiter')
  for (let i = 0; i < 7; i++) t.equal(await send(`${gw.url}/page?i=${i}`, as(`c${i}`)), 200)
  // the gateway's own routes are not counted
  for (const path of ['/healthz', '/readyz', '/metrics', '/admin/servers', '/admin/status']) await send(`${gw.adminUrl}${path}`)
  // K = 4: every upstream stopped, no retries: 502
  for (const b of backends) await b.stop()
  for (let i = 0; i < 4; i++) t.equal(await send(`${gw.url}/`, as(`k${i}`)), 502)
  // L = 2: no routable upstream at all: 503 from the gateway
  for (const s of gw.app.balancer.pool.list()) gw.app.balancer.pool.update(s.id, { enabled: false })
  for (let i = 0; i < 2; i++) t.equal(await send(`${gw.url}/`, as(`l${i}`)), 503)

  const s = await status()
  const [N, M, K, L] = [12, 3, 4, 2]
  t.equal(s.requests.total, N + M + K + L, 'total = N + M + K + L')
  t.equal(s.requests.errors, K + L, 'errors = the 5xx')
  t.equal(s.requests.rateLimited, M)
  t.same(s.statusCodes, { 200: N, 429: M, 502: K, 503: L })
  t.equal(s.requests.errorRate, Math.round(((K + L) / (N + M + K + L)) * 10_000) / 10_000)
  t.ok(s.requests.perSecond > 0 && s.requests.perSecond <= s.requests.total, `perSecond ${s.requests.perSecond}`)
  const { min, p50, p95, p99, max, avg } = s.latencyMs
  t.ok(min > 0, `min ${min} ms`)
  t.ok(min <= p50 && p50 <= p95 && p95 <= p99 && p99 <= max, `min ${min} ≤ p50 ${p50} ≤ p95 ${p95} ≤ p99 ${p99} ≤ max ${max}`)
  t.ok(avg >= min && avg <= max, `avg ${avg}`)
  t.ok(max < 5000, 'in milliseconds')
  t.ok(Number.isInteger(s.uptimeSeconds) && s.uptimeSeconds >= 0)
  t.same(s.limiter, { store: 'memory', algorithm: 'fixed-window', degraded: false })
  t.same(s.servers.map(x => x.id).sort(), gw.app.balancer.pool.list().map(x => x.id).sort())
  t.equal(s.servers.reduce((n, x) => n + x.totalRequests, 0), N + K, 'the servers saw the admitted requests only')
  t.same(Object.keys(s).sort(), ['latencyMs', 'limiter', 'requests', 'servers', 'statusCodes', 'uptimeSeconds'])

  const again = await status()
  t.equal(again.requests.total, s.requests.total, 'reading the status is not counted')
})

t.test('GET /admin/status is behind the admin guard', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { ADMIN_TOKEN: 'a-token-of-sixteen-chars' }))
  t.equal(await send(`${gw.adminUrl}/admin/status`), 401)
  t.equal(await send(`${gw.adminUrl}/admin/status`, { headers: { authorization: 'Bearer a-token-of-sixteen-chars' } }), 200)
  t.equal(await send(`${gw.adminUrl}/metrics`), 200, '/metrics stays open')
})

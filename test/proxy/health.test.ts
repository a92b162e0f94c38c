import t from 'tap'
import { request } from 'undici'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

async function servedBy (url: string): Promise<string> {
  const res = await request(url)
  await res.body.dump()
  return String(res.headers['x-served-by'])
}

t.test('an upstream failing /health stops getting traffic, and comes back when it passes again', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTHY_THRESHOLD: '2', UNHEALTHY_THRESHOLD: '2' }))
  const { pool } = gw.app.balancer
  const b2 = pool.list().find(s => s.url === backends[1]!.url)!
  backends[1]!.behaviour.healthy = false
  await waitFor(() => b2.state === 'unhealthy', 'b2 to turn unhealthy')
  t.equal(b2.lastCheck?.status, 503)
  t.equal(b2.lastCheck?.ok, false)
  const before = hitsOn(backends)
  for (let i = 0; i < 10; i++) t.equal(await servedBy(`${gw.url}/`), 'b1')
  t.equal(hitsOn(backends).b2, before.b2, 'no proxied request reached b2')
  backends[1]!.behaviour.healthy = true
  await waitFor(() => b2.state === 'healthy', 'b2 to come back')
  const served = new Set<string>()
  for (let i = 0; i < 4; i++) served.add(await servedBy(`${gw.url}/`))
  t.same([...served].sort(), ['b1', 'b2'], 'b2 takes traffic again')
})

t.test('a server is unknown until its first check decides, and the first result decides at once', async t => {
  const backends = await startBackends(t, 2)
  backends[1]!.behaviour.healthy = false
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '1m', UNHEALTHY_THRESHOLD: '5' }))
  const states = gw.app.balancer.pool.list().map(s => s.state)
  t.same(states, ['healthy', 'unhealthy'], 'one check each, despite thresholds of 2 and 5')
})

t.test('all upstreams down: 503 SLUICE_NO_UPSTREAM, and /readyz says why', async t => {
  const backends = await startBackends(t, 2, { healthy: false })
  const gw = await startGateway(t, upstreamsEnv(backends))
  const res = await request(`${gw.url}/anything`)
  t.equal(res.statusCode, 503)
  t.same(await res.body.json(), {
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'SLUICE_NO_UPSTREAM',
    message: 'No upstream server is available'
  })
  t.ok(res.headers['x-request-id'], 'error responses carry the request id too')
  t.same(hitsOn(backends), { b1: 0, b2: 0 })
  const ready = await request(`${gw.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.same(await ready.body.json(), {
    status: 'unavailable',
    reasons: ['no upstream server is healthy'],
    servers: { routable: 0, total: 2 },
    limiter: { enabled: true, store: 'memory', algorithm: 'sliding-window', degraded: false }
  })
})

t.test('an empty pool is not ready; /healthz still answers', async t => {
  const gw = await startGateway(t, { UPSTREAMS: '' })
  const ready = await request(`${gw.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.same((await ready.body.json() as { reasons: string[] }).reasons, ['the pool is empty'])
  const live = await request(`${gw.url}/healthz`)
  t.equal(live.statusCode, 200)
  t.same(await live.body.json(), { status: 'ok' })
})

t.test('passive ejection: consecutive 503s eject a server; with active checks off it is tried again after PASSIVE_EJECTION_TIME', async t => {
  const backends = await startBackends(t, 2)
  backends[0]!.behaviour.failRate = 1
  const gw = await startGateway(t, upstreamsEnv(backends, {
    HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '2', PASSIVE_EJECTION_TIME: '2s'
  }))
  const { pool } = gw.app.balancer
  const b1 = pool.list().find(s => s.url === backends[0]!.url)!
  const transitions: string[] = []
  pool.on('state', (server, from) => { if (server === b1) transitions.push(`${from}->${server.state} after ${server.failedRequests} failures`) })
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const res = await request(`${gw.url}/`)
    await res.body.dump()
    statuses.push(res.statusCode)
  }
  t.same(transitions, ['healthy->unhealthy after 2 failures'], 'ejected on the second failure in a row')
  t.same(statuses.filter(s => s === 503).length, 2, 'the upstream 503s were passed through as they are')
  backends[0]!.behaviour.failRate = 0
  await waitFor(() => b1.state === 'healthy', 'ejection time to pass', 5000)
  t.same(transitions[1], 'unhealthy->healthy after 2 failures')
  t.equal(b1.passiveFailures, 0)
})

t.test('passive ejection with active checks on: the server comes back through the checks', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { PASSIVE_FAILURE_THRESHOLD: '1', HEALTHY_THRESHOLD: '2' }))
  const { pool } = gw.app.balancer
  const transitions: string[] = []
  pool.on('state', (server, from, reason) => { transitions.push(`${server.name}: ${from}->${server.state} (${reason})`) })
  const res = await request(`${gw.url}/?status=502`)
  await res.body.dump()
  t.equal(res.statusCode, 502, 'passed through as it is')
  const name = pool.list().find(s => s.url === backends.find(b => b.name === res.headers['x-served-by'])!.url)!.name
  await waitFor(() => transitions.length === 2, 'ejection and return')
  t.same(transitions, [
    `${name}: healthy->unhealthy (1 consecutive failed requests)`,
    `${name}: unhealthy->healthy (check answered 200)`
  ])
})

import t from 'tap'
import { request } from 'undici'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'

t.test('a killed upstream costs no failed GET: the request is retried on another', async t => {
  const backends = await startBackends(t, 3)
  // active checks off: only retries and passive ejection stand between the dead server and clients
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_EJECTION_TIME: '1m' }))
  await backends[1]!.stop()
  const statuses: number[] = []
  for (let i = 0; i < 30; i++) {
    const res = await request(`${gw.url}/`)
    await res.body.dump()
    statuses.push(res.statusCode)
  }
  t.same(statuses, Array(30).fill(200), 'every GET answered 200')
  const dead = gw.app.balancer.pool.list().find(s => s.url === backends[1]!.url)!
  t.equal(dead.state, 'unhealthy', 'the dead server was ejected passively')
  t.equal(dead.inFlight, 0, 'no in-flight leak on the failed server')
  t.equal(hitsOn(backends).b1! + hitsOn(backends).b3!, 30)
})

t.test('a POST whose upstream refused the connection is retried elsewhere with its body intact', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0' }))
  await backends[0]!.stop()
  const body = 'x'.repeat(200_000)
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-served-by'], 'b2')
    const echoed = await res.body.text()
    t.ok(echoed === body, `body echoed intact (${echoed.length} of ${body.length} bytes)`)
  }
})

t.test('every attempt failing gives 502 SLUICE_UPSTREAM_UNREACHABLE after RETRIES extra attempts', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0', RETRIES: '1' }))
  for (const b of backends) await b.stop()
  const res = await request(`${gw.url}/`)
  t.equal(res.statusCode, 502)
  t.same(await res.body.json(), {
    statusCode: 502,
    error: 'Bad Gateway',
    code: 'SLUICE_UPSTREAM_UNREACHABLE',
    message: 'The upstream server could not be reached (ECONNREFUSED)'
  })
  const totals = gw.app.balancer.pool.list().map(s => s.totalRequests).reduce((a, b) => a + b)
  t.equal(totals, 2, 'one attempt plus RETRIES=1 retry')
  t.same(gw.app.balancer.pool.list().map(s => s.inFlight), [0, 0, 0], 'in-flight released')
})

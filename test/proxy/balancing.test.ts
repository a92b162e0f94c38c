import t from 'tap'
import { request } from 'undici'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

async function get (url: string): Promise<{ status: number, servedBy: string }> {
  const res = await request(url)
  await res.body.dump()
  return { status: res.statusCode, servedBy: String(res.headers['x-served-by']) }
}

t.test('round-robin splits sequential requests evenly', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const order: string[] = []
  for (let i = 0; i < 30; i++) order.push((await get(`${gw.url}/`)).servedBy)
  t.same(hitsOn(backends), { b1: 10, b2: 10, b3: 10 })
  t.same(order.slice(0, 6), [order[0], order[1], order[2], order[0], order[1], order[2]], 'in turn')
})

t.test('weighted-round-robin with weights 5,1,1 serves 5:1:1 in nginx smooth order', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, {
    ...upstreamsEnv(backends),
    UPSTREAMS: `${backends[0]!.url}=5,${backends[1]!.url}=1,${backends[2]!.url}=1`,
    BALANCER: 'weighted-round-robin'
  })
  const order: string[] = []
  for (let i = 0; i < 70; i++) order.push((await get(`${gw.url}/`)).servedBy)
  t.same(hitsOn(backends), { b1: 50, b2: 10, b3: 10 })
  t.same(order.slice(0, 7), ['b1', 'b1', 'b2', 'b1', 'b3', 'b1', 'b1'])
})

t.test('least-connections sends new requests to the idle server', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, { ...upstreamsEnv(backends), BALANCER: 'least-connections' })
  const slow = request(`${gw.url}/?delay=600`).then(async res => { await res.body.dump(); return String(res.headers['x-served-by']) })
  const { pool } = gw.app.balancer
  await waitFor(() => pool.list().some(s => s.inFlight > 0), 'the slow request to be in flight')
  const busyUrl = pool.list().find(s => s.inFlight > 0)!.url
  const busyName = backends.find(b => b.url === busyUrl)!.name
  const idle = busyName === 'b1' ? 'b2' : 'b1'
  const served: string[] = []
  for (let i = 0; i < 6; i++) served.push((await get(`${gw.url}/`)).servedBy)
  t.same(served, Array(6).fill(idle), 'every request while the other is busy goes to the idle server')
  t.equal(await slow, busyName)
})

t.test('ip-hash pins a client to one server', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, { ...upstreamsEnv(backends), BALANCER: 'ip-hash' })
  const served = new Set<string>()
  for (let i = 0; i < 12; i++) served.add((await get(`${gw.url}/`)).servedBy)
  t.equal(served.size, 1, 'same client IP, same server')
})

for (const balancer of ['p2c', 'ewma'] as const) {
  t.test(`${balancer} answers through every server it can pick`, async t => {
    const backends = await startBackends(t, 3)
    const gw = await startGateway(t, { ...upstreamsEnv(backends), BALANCER: balancer })
    // concurrent requests: p2c and ewma pick by load, so a sequential run could pin one server
    const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => get(`${gw.url}/?delay=${i % 3 === 0 ? 20 : 0}`)))
    t.ok(results.every(r => r.status === 200), 'all answered')
    t.equal(new Set(results.map(r => r.servedBy)).size, 3, 'load spread over all three')
  })
}

t.test('ewma steers away from a slow server', async t => {
  const backends = await startBackends(t, 2)
  backends[0]!.behaviour.delayMs = 150
  const gw = await startGateway(t, { ...upstreamsEnv(backends), BALANCER: 'ewma' })
  for (let i = 0; i < 4; i++) await get(`${gw.url}/`) // each server observed at least once
  const served: string[] = []
  for (let i = 0; i < 20; i++) served.push((await get(`${gw.url}/`)).servedBy)
  t.ok(served.filter(s => s === 'b2').length >= 18, `fast server took most requests (${served.join(',')})`)
})

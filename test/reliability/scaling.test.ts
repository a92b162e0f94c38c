import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { request } from 'undici'
import { startBackends, hitsOn, type RunningBackend } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { failures, runLoad, summary } from '../helpers/load.js'
import { waitFor } from '../helpers/wait.js'
import type { Upstream } from '../../src/pool/upstream.js'

// every answer waits this long upstream, so each server always has requests in flight
const DELAY_MS = 50
const SLOW_MS = 1000
const CONCURRENCY = 24
const LOAD_MS = 9000

interface Answer { status: number, body: Record<string, unknown> }

/** One admin call from loopback (no ADMIN_TOKEN configured: loopback is allowed). */
async function admin (gw: Gateway, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Answer> {
  const res = await request(`${gw.adminUrl}/admin${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
}

/** Requests each backend received on `/` between two `hitsOn` readings. */
function between (from: Record<string, number>, to: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(to).map(name => [name, (to[name] ?? 0) - (from[name] ?? 0)]))
}

function percent (counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  return Object.entries(counts).map(([name, n]) => `${name} ${(total === 0 ? 0 : n / total * 100).toFixed(1)}%`).join(' ')
}

t.test('scaling under load: two servers added and one drain-removed while requests are in flight, nothing lost', async t => {
  const backends = await startBackends(t, 4, { delayMs: DELAY_MS })
  const [b1, b2, b3, b4] = backends as [RunningBackend, RunningBackend, RunningBackend, RunningBackend]
  const gw = await startGateway(t, upstreamsEnv([b1, b2], { RATE_LIMIT: 'off' }))
  const { pool } = gw.app.balancer
  const removed = pool.list().find(s => s.url === b1.url) as Upstream

  const started = performance.now()
  const load = runLoad({ url: gw.url, concurrency: CONCURRENCY, durationMs: LOAD_MS })
  await sleep(2000)

  const beforeAdd = hitsOn(backends)
  for (const b of [b3, b4]) {
    const added = await admin(gw, 'POST', '/servers', { url: b.url, name: b.name })
    t.equal(added.status, 201, `${b.name} added`)
  }
  await waitFor(() => pool.routable.length === 4, 'both new servers to pass their first health check')
  const atAdd = hitsOn(backends)
  await sleep(2000)

  const beforeDelete = hitsOn(backends)
  // b1 turns slow, so several of its requests are surely in flight when it is removed and the
  // drain has something to wait for (a scheduling hiccup can leave a fast server with none)
  b1.behaviour.delayMs = SLOW_MS
  await sleep(4 * DELAY_MS)
  await waitFor(() => removed.inFlight >= 4, 'requests piling up on the slowed b1')
  let inFlightWhenRemoved: number | undefined
  pool.on('removed', server => { if (server === removed) inFlightWhenRemoved = server.inFlight })
  const deleted = await admin(gw, 'DELETE', `/servers/${encodeURIComponent(removed.id)}`)
  // nothing can pick it once draining, so this is every attempt it will ever get
  const attemptsAtDelete = removed.totalRequests
  const atDelete = hitsOn(backends)
  t.equal(deleted.status, 202, 'DELETE answers 202')
  t.equal(deleted.body.state, 'draining', 'the server is draining')
  t.ok((deleted.body.inFlight as number) > 0, `it had requests in flight when removed (${String(deleted.body.inFlight)})`)
  const drainStarted = performance.now()
  const during = await admin(gw, 'GET', `/servers/${encodeURIComponent(removed.id)}`)
  t.match(during, { status: 200, body: { state: 'draining' } }, 'still listed, draining, while its requests run')
  await waitFor(() => pool.get(removed.id) === undefined, 'the removed server to leave the pool once drained')
  const drainedMs = performance.now() - drainStarted
  t.equal(inFlightWhenRemoved, 0, 'it left the pool only once its last in-flight request had ended')
  t.equal((await admin(gw, 'GET', `/servers/${encodeURIComponent(removed.id)}`)).status, 404, 'gone from the admin API')
  const loadLeftMs = LOAD_MS - (performance.now() - started)

  const result = await load
  const end = hitsOn(backends)
  await waitFor(() => pool.list().every(s => s.inFlight === 0), 'every in-flight counter back to 0', 2000)

  t.equal(failures(result), 0, 'every request answered 2xx')
  t.same(Object.keys(result.statuses), ['200'], 'every response a 200')
  t.ok(loadLeftMs >= 1000, `the load ran on for ${Math.round(loadLeftMs)} ms after the drain`)
  t.equal(removed.inFlight, 0, 'its in-flight counter did not leak')
  t.equal(removed.totalRequests, attemptsAtDelete, 'no new attempt went to it after the DELETE')
  t.equal(end.b1, attemptsAtDelete, 'it received exactly the requests sent before the DELETE, not one more')
  t.equal(result.servedBy.b1, end.b1, 'and every one of them was answered to its client')
  const afterAdd = between(atAdd, beforeDelete)
  const afterDelete = between(atDelete, end)
  for (const b of [b3, b4]) {
    t.ok((afterAdd[b.name] ?? 0) > 0, `${b.name} took traffic once added`)
    t.ok((afterDelete[b.name] ?? 0) > 0, `${b.name} took traffic after the removal`)
  }
  // requests it was picked for before the DELETE may still arrive after it; nothing else may
  t.ok((afterDelete.b1 ?? 0) <= (deleted.body.inFlight as number), `b1 received only requests already in flight at the DELETE (${afterDelete.b1 ?? 0})`)
  t.same(pool.list().map(s => s.url).sort(), [b2.url, b3.url, b4.url].sort(), 'the pool is b2, b3, b4')

  t.comment(`FIGURE scaling under load (2 → 4 → 3 upstreams, ${DELAY_MS} ms upstream delay, b1 slowed to ${SLOW_MS} ms before its DELETE): ${summary(result)}; ` +
    `b1 in flight at DELETE ${String(deleted.body.inFlight)}, drained and removed in ${Math.round(drainedMs)} ms; ` +
    `share before add ${percent(between({}, beforeAdd))}; after add ${percent(afterAdd)}; after DELETE of b1 ${percent(afterDelete)}`)
})

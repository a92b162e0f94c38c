import t from 'tap'
import { Pool, type PoolEvents } from '../../src/pool/pool.js'
import { serverId } from '../../src/pool/origin.js'
import { Upstream, type ServerState } from '../../src/pool/upstream.js'

type Event = [name: keyof PoolEvents, id: string, ...rest: unknown[]]

/** Every event the pool emits, as `[name, server id, ...other args]`, in order. */
function record (pool: Pool): Event[] {
  const events: Event[] = []
  pool.on('added', s => events.push(['added', s.id]))
  pool.on('removed', s => events.push(['removed', s.id]))
  pool.on('updated', s => events.push(['updated', s.id]))
  pool.on('state', (s, from, reason) => events.push(['state', s.id, from, s.state, reason]))
  return events
}

function healthyPool (...urls: string[]): { pool: Pool, servers: Upstream[] } {
  const pool = new Pool({ initialState: 'healthy' })
  return { pool, servers: urls.map(url => pool.add({ url }).server) }
}

const ids = (servers: readonly Upstream[]): string[] => servers.map(s => s.url)

t.test('add', async t => {
  const pool = new Pool({ initialState: 'healthy' })
  const events = record(pool)
  const first = pool.add({ url: 'http://h' })
  t.equal(first.created, true)
  t.equal(first.server.url, 'http://h')
  t.equal(first.server.id, serverId('http://h'))
  const before = pool.routable
  for (const spelling of ['http://H:80/', 'HTTP://h', 'http://h/']) {
    const again = pool.add({ url: spelling, weight: 9, name: 'other' })
    t.equal(again.created, false, `${spelling}: already there`)
    t.equal(again.server, first.server, `${spelling}: the same object`)
  }
  t.equal(first.server.weight, 1, 'a duplicate add changes nothing')
  t.equal(first.server.name, 'h')
  t.equal(pool.size, 1)
  t.equal(pool.routable, before, 'a duplicate add publishes nothing')
  t.strictSame(events, [['added', first.server.id]], 'one added event')

  const rows: Array<{ spec: { url: string, weight?: number, name?: string, enabled?: boolean }, url: string, name: string, weight: number, enabled: boolean }> = [
    { spec: { url: 'http://a:3000' }, url: 'http://a:3000', name: 'a:3000', weight: 1, enabled: true },
    { spec: { url: 'https://B:443/' }, url: 'https://b', name: 'b', weight: 1, enabled: true },
    { spec: { url: 'http://[::1]:3000' }, url: 'http://[::1]:3000', name: '[::1]:3000', weight: 1, enabled: true },
    { spec: { url: 'http://c:3000', name: 'c1', weight: 5 }, url: 'http://c:3000', name: 'c1', weight: 5, enabled: true },
    { spec: { url: 'http://d:3000', enabled: false }, url: 'http://d:3000', name: 'd:3000', weight: 1, enabled: false }
  ]
  for (const row of rows) {
    const { server, created } = pool.add(row.spec)
    t.equal(created, true, row.spec.url)
    t.match(server, { id: serverId(row.url), url: row.url, name: row.name, weight: row.weight, enabled: row.enabled, state: 'healthy', inFlight: 0 }, row.spec.url)
    t.equal(pool.get(server.id), server)
  }
  t.strictSame(ids(pool.list()), ['http://h', 'http://a:3000', 'https://b', 'http://[::1]:3000', 'http://c:3000', 'http://d:3000'])
  t.strictSame(ids(pool.routable), ['http://h', 'http://a:3000', 'https://b', 'http://[::1]:3000', 'http://c:3000'], 'a disabled server is not routable')
})

t.test('an invalid URL throws SLUICE_INVALID_UPSTREAM and changes nothing', async t => {
  const { pool } = healthyPool('http://ok:1')
  const events = record(pool)
  const before = pool.routable
  for (const url of ['ftp://h', 'http://h/path', 'http://u:p@h', 'http://h?q', 'not a url', '']) {
    t.throws(() => pool.add({ url }), { code: 'SLUICE_INVALID_UPSTREAM', statusCode: 400, message: new RegExp(`"${url.replace(/[?/]/g, '\\$&')}"`) }, JSON.stringify(url))
  }
  t.equal(pool.size, 1)
  t.equal(pool.routable, before)
  t.strictSame(events, [])
})

t.test('initialState', async t => {
  const pool = new Pool({ initialState: 'unknown' })
  const events = record(pool)
  const { server } = pool.add({ url: 'http://a:1' })
  t.equal(server.state, 'unknown')
  t.strictSame(pool.routable, [], 'unknown is not routable')
  t.strictSame(ids(pool.list()), ['http://a:1'], 'but it is in the pool')
  pool.setState(server, 'healthy', 'check passed')
  t.strictSame(pool.routable, [server], 'routable once healthy')
  pool.setState(server, 'unhealthy', 'check failed')
  t.strictSame(pool.routable, [], 'unhealthy is not routable')
  pool.setState(server, 'healthy', 'check passed')
  t.strictSame(events, [
    ['added', server.id],
    ['state', server.id, 'unknown', 'healthy', 'check passed'],
    ['state', server.id, 'healthy', 'unhealthy', 'check failed'],
    ['state', server.id, 'unhealthy', 'healthy', 'check passed']
  ])

  const { pool: open, servers: [b] } = healthyPool('http://b:1')
  t.equal(b?.state, 'healthy')
  t.strictSame(open.routable, [b], 'healthy initial state: routable at once')
})

t.test('setState', async t => {
  const { pool, servers: [a, b] } = healthyPool('http://a:1', 'http://b:1')
  if (a === undefined || b === undefined) throw new Error('setup')
  const events = record(pool)
  const before = pool.routable
  pool.setState(a, 'healthy', 'again')
  t.strictSame(events, [], 'the same state emits nothing')
  t.equal(pool.routable, before, 'and publishes nothing')

  pool.remove(b.id)
  events.length = 0
  pool.setState(b, 'unhealthy', 'late check')
  t.equal(b.state, 'healthy', 'a removed server is not touched')
  t.strictSame(events, [], 'and nothing is emitted for it')
})

t.test('routable is a new frozen array on every change; the Upstream objects stay', async t => {
  const { pool, servers: [a, b] } = healthyPool('http://a:1', 'http://b:1')
  if (a === undefined || b === undefined) throw new Error('setup')
  pool.acquire(a)
  a.ewmaMs = 12.5
  a.passiveFailures = 2
  const snapshots: Array<readonly Upstream[]> = [pool.routable]
  const changes: Array<[string, () => void, string[]]> = [
    ['add', () => { pool.add({ url: 'http://c:1' }) }, ['http://a:1', 'http://b:1', 'http://c:1']],
    ['update weight', () => { pool.update(a.id, { weight: 4 }) }, ['http://a:1', 'http://b:1', 'http://c:1']],
    ['disable', () => { pool.update(b.id, { enabled: false }) }, ['http://a:1', 'http://c:1']],
    ['unhealthy', () => { pool.setState(a, 'unhealthy', 'x') }, ['http://c:1']],
    ['healthy', () => { pool.setState(a, 'healthy', 'x') }, ['http://a:1', 'http://c:1']],
    ['enable', () => { pool.update(b.id, { enabled: true }) }, ['http://a:1', 'http://b:1', 'http://c:1']],
    ['remove', () => { pool.remove(serverId('http://c:1')) }, ['http://a:1', 'http://b:1']],
    ['drain', () => { pool.drain(b.id, 1000).catch(() => {}) }, ['http://a:1']]
  ]
  for (const [name, change, expected] of changes) {
    const old = pool.routable
    const oldCopy = [...old]
    change()
    const now = pool.routable
    t.not(now, old, `${name}: a new array`)
    t.ok(Object.isFrozen(now), `${name}: frozen`)
    t.strictSame(ids(now), expected, `${name}: routable`)
    t.strictSame(old, oldCopy, `${name}: the previous snapshot is unchanged`)
    snapshots.push(now)
  }
  t.throws(() => { (pool.routable as Upstream[]).push(b) }, TypeError, 'cannot be pushed to')
  t.equal(pool.routable[0], a, 'the same Upstream object throughout')
  t.equal(snapshots[0]?.[0], a)
  t.match(a, { inFlight: 1, totalRequests: 1, ewmaMs: 12.5, passiveFailures: 2, weight: 4 }, 'counters survive every rebuild')
})

t.test('update', async t => {
  const { pool, servers: [a] } = healthyPool('http://a:1')
  if (a === undefined) throw new Error('setup')
  const events = record(pool)
  t.equal(pool.update(a.id, { weight: 7 }), a)
  t.equal(a.weight, 7)
  t.equal(pool.update(a.id, { enabled: false }), a)
  t.equal(a.enabled, false)
  t.equal(a.weight, 7, 'a patch without weight keeps it')
  t.strictSame(pool.routable, [])
  t.equal(pool.get(a.id), a, 'a disabled server stays in the pool')
  t.equal(pool.update(a.id, { enabled: true }), a)
  t.strictSame(pool.routable, [a], 'and comes back')
  t.equal(a.state, 'healthy', 'its state is untouched')
  t.equal(pool.update('000000000000', { weight: 2 }), undefined, 'unknown id')
  t.strictSame(events, [['updated', a.id], ['updated', a.id], ['updated', a.id]])
})

t.test('remove', async t => {
  const { pool, servers: [a, b] } = healthyPool('http://a:1', 'http://b:1')
  if (a === undefined || b === undefined) throw new Error('setup')
  const events = record(pool)
  t.equal(pool.remove(a.id), a)
  t.equal(pool.get(a.id), undefined)
  t.strictSame(pool.routable, [b])
  t.equal(pool.size, 1)
  t.equal(pool.remove(a.id), undefined, 'twice is harmless')
  t.equal(pool.remove('nope'), undefined, 'an unknown id is harmless')
  t.strictSame(events, [['removed', a.id]])
  const { server, created } = pool.add({ url: 'http://a:1' })
  t.equal(created, true, 'can be added again')
  t.not(server, a, 'as a new object')
})

t.test('drain: waits for in-flight requests, then removes', async t => {
  const { pool, servers: [a, b] } = healthyPool('http://a:1', 'http://b:1')
  if (a === undefined || b === undefined) throw new Error('setup')
  const events = record(pool)
  pool.acquire(a)
  pool.acquire(a)
  let resolved: Upstream | undefined | null = null
  const drained = pool.drain(a.id, 60_000).then(s => { resolved = s; return s })
  t.equal(a.state, 'draining', 'draining at once')
  t.strictSame(pool.routable, [b], 'not routable at once')
  t.equal(pool.get(a.id), a, 'still found by id')
  t.strictSame(ids(pool.list()), ['http://a:1', 'http://b:1'], 'still listed')
  t.equal(a.toJSON().state, 'draining')

  pool.setState(a, 'healthy', 'check passed')
  pool.setState(a, 'unhealthy', 'check failed')
  t.equal(a.state, 'draining', 'health results cannot revive it')
  t.strictSame(pool.routable, [b])
  pool.update(a.id, { enabled: true })
  t.strictSame(pool.routable, [b], 'nor can enabling it')

  pool.release(a)
  await Promise.resolve()
  t.equal(pool.get(a.id), a, 'one request left: still there')
  t.equal(resolved, null, 'not resolved yet')
  pool.release(a)
  t.equal(pool.get(a.id), undefined, 'gone when the last request ends')
  t.equal(await drained, a, 'resolves with the server')
  t.strictSame(pool.routable, [b])
  t.strictSame(events, [
    ['state', a.id, 'healthy', 'draining', 'removed'],
    ['updated', a.id],
    ['removed', a.id]
  ])
})

t.test('drain with nothing in flight removes at once', async t => {
  const { pool, servers: [a] } = healthyPool('http://a:1')
  if (a === undefined) throw new Error('setup')
  const events = record(pool)
  const drained = pool.drain(a.id, 60_000)
  t.equal(pool.get(a.id), undefined, 'removed synchronously')
  t.equal(pool.size, 0)
  t.equal(await drained, a)
  t.strictSame(events, [['state', a.id, 'healthy', 'draining', 'removed'], ['removed', a.id]])
  t.equal(await pool.drain(a.id, 60_000), undefined, 'draining an unknown id resolves to undefined')
})

t.test('drain timeout removes a server whose requests never finish', async t => {
  const { pool, servers: [a] } = healthyPool('http://a:1')
  if (a === undefined) throw new Error('setup')
  const events = record(pool)
  pool.acquire(a)
  // the pool's timer is unref'd (it must not hold a process open); this one keeps the test alive
  const keepAlive = setTimeout(() => {}, 5000)
  t.teardown(() => clearTimeout(keepAlive))
  const started = performance.now()
  const drained = pool.drain(a.id, 50)
  t.equal(pool.get(a.id), a, 'still there while its request runs')
  t.equal(await drained, a)
  const elapsed = performance.now() - started
  t.ok(elapsed >= 40 && elapsed < 2000, `removed after the timeout (${Math.round(elapsed)} ms)`)
  t.equal(pool.get(a.id), undefined)
  t.equal(a.inFlight, 1, 'its request is still running')

  // the same URL is added again before the old request ends: the late release must not remove it
  const { server: again, created } = pool.add({ url: 'http://a:1' })
  t.equal(created, true)
  pool.release(a)
  t.equal(a.inFlight, 0)
  t.equal(pool.get(again.id), again, 'the new server stays')
  t.strictSame(pool.routable, [again])
  t.strictSame(events, [
    ['state', a.id, 'healthy', 'draining', 'removed'],
    ['removed', a.id],
    ['added', again.id]
  ])
})

t.test('a second drain of the same server resolves too', async t => {
  const { pool, servers: [a] } = healthyPool('http://a:1')
  if (a === undefined) throw new Error('setup')
  const events = record(pool)
  pool.acquire(a)
  const first = pool.drain(a.id, 60_000)
  const second = pool.drain(a.id, 60_000)
  const third = pool.drain(a.id, 1)
  t.equal(pool.get(a.id), a)
  pool.release(a)
  t.strictSame(await Promise.all([first, second, third]), [a, a, a])
  t.strictSame(events, [['state', a.id, 'healthy', 'draining', 'removed'], ['removed', a.id]], 'one state change, one removal')
  t.equal(await pool.drain(a.id, 60_000), undefined, 'after it is gone: undefined')
})

t.test('close() finishes pending drains', async t => {
  const { pool, servers: [a, b, c] } = healthyPool('http://a:1', 'http://b:1', 'http://c:1')
  if (a === undefined || b === undefined || c === undefined) throw new Error('setup')
  pool.acquire(a)
  pool.acquire(b)
  pool.acquire(c)
  const drains = [pool.drain(a.id, 60_000), pool.drain(b.id, 60_000)]
  const events = record(pool)
  pool.close()
  t.strictSame(await Promise.all(drains), [a, b])
  t.strictSame(ids(pool.list()), ['http://c:1'], 'servers not draining stay')
  t.strictSame(pool.routable, [c])
  t.strictSame(events, [['removed', a.id], ['removed', b.id]])
  pool.release(a)
  pool.release(b)
  t.strictSame(events.length, 2, 'late releases emit nothing')
  pool.close()
  t.equal(pool.size, 1, 'closing twice is harmless')
})

t.test('acquire and release count requests', async t => {
  const { pool, servers: [a] } = healthyPool('http://a:1')
  if (a === undefined) throw new Error('setup')
  pool.acquire(a)
  pool.acquire(a)
  t.match(a, { inFlight: 2, totalRequests: 2 })
  pool.release(a)
  t.match(a, { inFlight: 1, totalRequests: 2 })
  pool.release(a)
  t.match(a, { inFlight: 0, totalRequests: 2 })
  t.equal(pool.get(a.id), a, 'a healthy server is not removed when idle')
})

t.test('Upstream.toJSON has exactly the SPEC Server fields', async t => {
  const addedAt = new Date('2024-05-06T07:08:09.010Z')
  const server = new Upstream('abcdef012345', 'http://a:1', 'a1', 3, true, addedAt)
  server.ewmaMs = 5
  server.passiveFailures = 1
  server.checkPasses = 2
  t.strictSame(server.toJSON(), {
    id: 'abcdef012345',
    url: 'http://a:1',
    name: 'a1',
    weight: 3,
    enabled: true,
    state: 'unknown',
    inFlight: 0,
    totalRequests: 0,
    failedRequests: 0,
    lastCheck: null,
    addedAt: '2024-05-06T07:08:09.010Z'
  }, 'internal counters are not exposed')

  const states: ServerState[] = ['unknown', 'healthy', 'unhealthy', 'draining']
  for (const state of states) {
    server.state = state
    t.equal(server.toJSON().state, state)
  }
  server.lastCheck = { at: '2024-05-06T07:08:10.000Z', ok: false, status: null, latencyMs: 12 }
  server.inFlight = 2
  server.totalRequests = 10
  server.failedRequests = 1
  const parsed = JSON.parse(JSON.stringify(server)) as Record<string, unknown>
  t.strictSame(Object.keys(parsed).sort(),
    ['addedAt', 'enabled', 'failedRequests', 'id', 'inFlight', 'lastCheck', 'name', 'state', 'totalRequests', 'url', 'weight'])
  t.strictSame(parsed.lastCheck, { at: '2024-05-06T07:08:10.000Z', ok: false, status: null, latencyMs: 12 })
  t.match(parsed, { inFlight: 2, totalRequests: 10, failedRequests: 1 })
  t.equal(typeof new Upstream('x', 'http://x', 'x', 1, true).toJSON().addedAt, 'string', 'addedAt defaults to now, as ISO')
  t.match(new Upstream('x', 'http://x', 'x', 1, true).toJSON().addedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
})

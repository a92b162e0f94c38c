import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { failures, runLoad, summary, type LoadResult } from '../helpers/load.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const cli = promisify(execFile)
const redisCli = async (redis: RedisServer, ...args: string[]): Promise<string> =>
  (await cli('redis-cli', ['-p', String(redis.port), ...args])).stdout.trim()
const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

const MAX = 50
const REDIS_TIMEOUT_MS = 100
// the same bound as test/rate-limit/redis.test.ts: REDIS_TIMEOUT plus a margin for a noisy 2-core machine
const SLOWEST_MS = REDIS_TIMEOUT_MS + 400
const PREFIX = 'outage:'
const LOAD_MS = 10_000

const urls = (gw: Gateway): string[] => gw.app.balancer.pool.list().map(s => s.url).sort()

async function get (url: string, client: string): Promise<{ status: number, remaining: string | undefined, servedBy: string | undefined, ms: number }> {
  const started = performance.now()
  const res = await request(url, { headers: { 'x-client': client } })
  await res.body.dump()
  const header = (name: string): string | undefined => res.headers[name] as string | undefined
  return { status: res.statusCode, remaining: header('x-ratelimit-remaining'), servedBy: header('x-served-by'), ms: performance.now() - started }
}

async function addServer (gw: Gateway, url: string): Promise<{ status: number, body: { code?: string, url?: string } }> {
  const res = await request(`${gw.adminUrl}/admin/servers`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url, name: 'b3' })
  })
  return { status: res.statusCode, body: await res.body.json() as { code?: string, url?: string } }
}

async function readyz (gw: Gateway): Promise<{ status: number, degraded: boolean }> {
  const res = await request(`${gw.url}/readyz`)
  const body = await res.body.json() as { limiter: { degraded: boolean } }
  return { status: res.statusCode, degraded: body.limiter.degraded }
}

const fiveHundreds = (r: LoadResult): number => Object.entries(r.statuses).filter(([s]) => Number(s) >= 500).reduce((n, [, c]) => n + c, 0)

t.test('Redis SIGKILLed and restarted under load on two instances: nothing waits, nothing fails, the local policy limits, Redis comes back by itself', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 3)
  const [b1, b2, b3] = backends as [typeof backends[0], typeof backends[0], typeof backends[0]]
  const env = upstreamsEnv([b1, b2], {
    REDIS_URL: redis.url,
    KEY_PREFIX: PREFIX,
    REDIS_TIMEOUT: `${REDIS_TIMEOUT_MS}ms`,
    RATE_LIMIT_ON_REDIS_ERROR: 'local',
    RATE_LIMIT_KEY: 'header:x-client',
    RATE_LIMIT_MAX: String(MAX),
    // an hour, so the run (~15 s) never crosses a window edge and the per-phase counts are exact
    RATE_LIMIT_WINDOW: '1h'
  })
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const gateways = [a, b]
  await waitFor(() => gateways.every(gw => !gw.app.limiter.degraded && gw.app.redis?.status === 'ready'), 'both instances to reach Redis')
  await waitFor(() => gateways.every(gw => JSON.stringify(urls(gw)) === JSON.stringify([b1.url, b2.url].sort())), 'both pools to hold b1 and b2')

  // one client far over its budget on both instances; the others make at most 20 requests each
  // (10 per instance), well under MAX even when each instance counts alone during the outage
  const hammer = (gw: Gateway): Promise<LoadResult> =>
    runLoad({ url: gw.url, concurrency: 2, durationMs: LOAD_MS, next: () => ({ path: '/hammer', headers: { 'x-client': 'hammer' } }) })
  const others = (gw: Gateway): Promise<LoadResult> =>
    runLoad({ url: gw.url, concurrency: 6, durationMs: LOAD_MS, next: i => ({ path: '/', headers: { 'x-client': `client-${Math.floor(i / 10)}` } }) })
  const loadStarted = performance.now()
  const load = Promise.all([hammer(a), hammer(b), others(a), others(b)])

  const hammerAdmitted = (): number => backends.reduce((n, backend) => n + (backend.hits.get('/hammer') ?? 0), 0)
  await sleep(2500)
  const admittedBeforeOutage = hammerAdmitted()
  await redis.kill('SIGKILL')
  const killedAt = performance.now()
  await waitFor(() => gateways.every(gw => gw.app.limiter.degraded && gw.app.redis?.status !== 'ready'), 'both instances to notice the outage', 2000)
  const noticedMs = performance.now() - killedAt
  const limitedAtOutage = gateways.map(gw => gw.app.limiter.stats.limited)
  const fallbacksAtOutage = gateways.map(gw => gw.app.limiter.stats.fallbacks)

  for (const gw of gateways) {
    t.same(await readyz(gw), { status: 200, degraded: true }, 'degraded under local: /readyz stays 200 and says degraded')
  }
  // the pool lives in Redis: a change now is refused at once, and no instance changes
  for (const gw of gateways) {
    const refused = await addServer(gw, b3.url)
    t.equal(refused.status, 503, 'POST /admin/servers while Redis is down')
    t.equal(refused.body.code, 'SLUICE_POOL_UNAVAILABLE')
  }
  await sleep(200)
  for (const gw of gateways) t.same(urls(gw), [b1.url, b2.url].sort(), 'the pool is unchanged')
  t.equal(b3.hits.get('/health') ?? 0, 0, 'b3 was never added anywhere (never health-checked)')

  // keep Redis down about 3 s in all
  await sleep(2700)
  // by now the hammer has spent its local budget on each instance; this probe is decided from memory
  const probe = await get(`${a.url}/`, 'hammer')
  t.equal(probe.status, 429, 'the hammering client is limited while Redis is down')
  t.equal(probe.remaining, '0')
  t.ok(probe.ms < SLOWEST_MS, `and was not kept waiting (${probe.ms.toFixed(1)} ms)`)
  const limitedInOutage = gateways.map((gw, i) => gw.app.limiter.stats.limited - (limitedAtOutage[i] as number))
  const fallbacksInOutage = gateways.map((gw, i) => gw.app.limiter.stats.fallbacks - (fallbacksAtOutage[i] as number))
  for (const [i, gw] of gateways.entries()) {
    t.ok(gw.app.limiter.degraded, 'still degraded before the restart')
    t.ok((limitedInOutage[i] as number) > 0, `instance ${i === 0 ? 'A' : 'B'} answered 429 from its own memory during the outage (${limitedInOutage[i]})`)
    t.ok((fallbacksInOutage[i] as number) > (limitedInOutage[i] as number), 'and admitted the other clients from memory too')
  }

  // the upstream counts the hammer's admissions: Redis's shared budget before, each instance's own after
  const admittedInOutage = hammerAdmitted() - admittedBeforeOutage
  t.equal(admittedBeforeOutage, MAX, `before the outage both instances together admitted the hammer exactly ${MAX} (Redis)`)
  t.equal(admittedInOutage, 2 * MAX, `during it each instance admitted it ${MAX} from its own memory (local policy)`)
  await redis.restart()
  const restartedAt = performance.now()
  const downMs = restartedAt - killedAt
  await waitFor(() => gateways.every(gw => !gw.app.limiter.degraded && gw.app.redis?.status === 'ready'), 'both instances to return to Redis by themselves', 8000)
  const recoveredMs = performance.now() - restartedAt
  // the restarted Redis is empty: the instances write their pool back; a change is only safe after that
  await waitFor(async () => await redisCli(redis, 'hlen', `${PREFIX}{pool}:servers`) === '2', 'the pool to be restored into Redis', 5000, 50)
  const added = await addServer(a, b3.url)
  t.equal(added.status, 201, 'the same POST succeeds once Redis is back')
  t.equal(added.body.url, b3.url)
  await waitFor(() => gateways.every(gw => gw.app.balancer.pool.list().find(s => s.url === b3.url)?.state === 'healthy'), 'both instances to route to b3', 3000)
  const addedUnderLoad = performance.now() - loadStarted < LOAD_MS

  const [hammerA, hammerB, othersA, othersB] = await load
  const admittedAfterOutage = hammerAdmitted() - admittedBeforeOutage - admittedInOutage
  // the restarted Redis is empty (and each instance forgot its cached refusals on recovery): the
  // hammer gets one fresh budget shared by both instances, however long the rest of the run
  t.equal(admittedAfterOutage, MAX, `after the restart exactly ${MAX} more, across both instances`)
  const results = { hammerA, hammerB, othersA, othersB }
  for (const [name, r] of Object.entries(results)) {
    t.same(r.errors, {}, `${name}: no transport errors`)
    t.equal(fiveHundreds(r), 0, `${name}: no 5xx`)
    t.ok(r.latency.max < SLOWEST_MS, `${name}: no request slower than REDIS_TIMEOUT + 400 ms (slowest ${r.latency.max.toFixed(1)} ms)`)
  }
  for (const r of [othersA, othersB]) {
    t.equal(failures(r), 0, 'clients under budget were never refused')
    t.same(Object.keys(r.statuses), ['200'])
  }
  for (const r of [hammerA, hammerB]) {
    t.same(Object.keys(r.statuses).sort(), ['200', '429'], 'the hammering client got both admissions and 429s')
  }
  // at least: a Redis starved of CPU past REDIS_TIMEOUT on this busy 2-core machine would count as one more
  for (const gw of gateways) t.ok(gw.app.limiter.stats.outages >= 1, 'the outage was declared')

  await waitFor(() => gateways.every(gw => !gw.app.limiter.degraded), 'both instances on Redis')
  for (const gw of gateways) {
    t.same(await readyz(gw), { status: 200, degraded: false }, '/readyz no longer says degraded')
    // bounded, not 6 exactly: a round of requests may meet the pool while the resync after the
    // outage republishes it (seen once in CI: b2 missing from 6 answers). A new client key for each
    // answer: with one key, the 51st would be refused (MAX is 50) and count as a server (seen in CI)
    const served = new Set<string>()
    for (let i = 0; i < 60 && served.size < 3; i++) served.add(String((await get(`${gw.url}/`, `route-check-${gw.url}-${i}`)).servedBy))
    t.same([...served].sort(), ['b1', 'b2', 'b3'], 'each instance routes to the server added after the outage')
  }

  // the shared budget is exact again: a fresh key spread over both instances gets exactly MAX
  const fresh = (gw: Gateway): Promise<LoadResult> =>
    runLoad({ url: gw.url, concurrency: 8, requests: 60, next: () => ({ path: '/', headers: { 'x-client': 'fresh-after-restart' } }) })
  const fallbacksBefore = a.app.limiter.stats.fallbacks + b.app.limiter.stats.fallbacks
  const [freshA, freshB] = await Promise.all([fresh(a), fresh(b)])
  t.equal((freshA.statuses[200] ?? 0) + (freshB.statuses[200] ?? 0), MAX, `exactly ${MAX} admitted across both instances`)
  t.equal((freshA.statuses[429] ?? 0) + (freshB.statuses[429] ?? 0), 120 - MAX, 'the rest refused')
  t.equal(a.app.limiter.stats.fallbacks + b.app.limiter.stats.fallbacks, fallbacksBefore, 'every one of those decisions was Redis\'s')

  const hammerLimited = (hammerA.statuses[429] ?? 0) + (hammerB.statuses[429] ?? 0)
  t.comment(`FIGURE redis-outage (hammer A): ${summary(hammerA)}`)
  t.comment(`FIGURE redis-outage (hammer B): ${summary(hammerB)}`)
  t.comment(`FIGURE redis-outage (others A): ${summary(othersA)}; served by ${JSON.stringify(othersA.servedBy)}`)
  t.comment(`FIGURE redis-outage (others B): ${summary(othersB)}; served by ${JSON.stringify(othersB.servedBy)}`)
  t.comment(`FIGURE redis-outage: Redis down ${(downMs / 1000).toFixed(1)} s (noticed in ${noticedMs.toFixed(0)} ms), ` +
    `both instances back on Redis ${recoveredMs.toFixed(0)} ms after the restart; hammer admitted ${hammerA.statuses[200]}+${hammerB.statuses[200]}, ` +
    `429 ${hammerLimited} (admitted by phase: ${admittedBeforeOutage} before, ${admittedInOutage} during, ${admittedAfterOutage} after); ` +
    `outages declared A ${a.app.limiter.stats.outages}, B ${b.app.limiter.stats.outages}; 429s from memory during the outage A ${limitedInOutage[0]}, B ${limitedInOutage[1]}; ` +
    `local decisions A ${fallbacksInOutage[0]}, B ${fallbacksInOutage[1]}; b3 added ${addedUnderLoad ? 'under load' : 'after the load'}`)
})

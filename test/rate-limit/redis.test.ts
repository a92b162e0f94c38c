import t from 'tap'
import { request } from 'undici'
import { Redis } from 'ioredis'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis.js'
import { clearOfWindowEdge, waitFor } from '../helpers/wait.js'

async function status (url: string): Promise<number> {
  const res = await request(url)
  await res.body.dump()
  return res.statusCode
}

const connected = async (gw: Gateway): Promise<void> => waitFor(() => !gw.app.limiter.degraded, 'the limiter to reach Redis')

for (const algorithm of ['sliding-window', 'fixed-window']) {
  t.test(`${algorithm}: two instances on one Redis admit exactly max under 120 concurrent requests`, async t => {
    const redis = await startRedis(t)
    const backends = await startBackends(t, 2)
    const env = upstreamsEnv(backends, {
      REDIS_URL: redis.url, KEY_PREFIX: `exact-${algorithm}:`, RATE_LIMIT_MAX: '50', RATE_LIMIT_WINDOW: '1m', RATE_LIMIT_ALGORITHM: algorithm
    })
    const a = await startGateway(t, env)
    const b = await startGateway(t, env)
    await connected(a)
    await connected(b)
    if (algorithm === 'fixed-window') await clearOfWindowEdge(60_000)
    const results = await Promise.all(Array.from({ length: 120 }, async (_, i) => status(`${i % 2 === 0 ? a.url : b.url}/`)))
    t.equal(results.filter(s => s === 200).length, 50, 'exactly max admitted across both instances')
    t.equal(results.filter(s => s === 429).length, 70)
    t.equal(a.app.limiter.stats.fallbacks + b.app.limiter.stats.fallbacks, 0, 'every decision was Redis\'s')
  })
}

t.test('Redis SIGKILLed: requests never wait, this instance limits from memory, and the shared budget returns with Redis', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const env = upstreamsEnv(backends, { REDIS_URL: redis.url, KEY_PREFIX: 'kill:', RATE_LIMIT_MAX: '4', REDIS_TIMEOUT: '100ms' })
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  await connected(a)
  await connected(b)
  t.same([await status(`${a.url}/`), await status(`${b.url}/`)], [200, 200], 'two of four spent in Redis')

  await redis.kill('SIGKILL')
  const timings: number[] = []
  const seen: number[] = []
  for (let i = 0; i < 6; i++) {
    const started = performance.now()
    seen.push(await status(`${a.url}/`))
    timings.push(performance.now() - started)
  }
  t.same(seen, [200, 200, 200, 200, 429, 429], 'the local policy keeps limiting (a fresh local budget of 4)')
  t.ok(Math.max(...timings) < 100 + 400, `no request waited on the dead Redis (slowest ${Math.round(Math.max(...timings))} ms)`)
  t.equal(a.app.limiter.degraded, true)
  t.equal(a.app.limiter.stats.outages, 1, 'one outage')
  const ready = await request(`${a.url}/readyz`)
  t.equal(ready.statusCode, 200, 'degraded under local is still ready')
  t.match(await ready.body.json(), { limiter: { store: 'redis', degraded: true } })

  await redis.restart()
  await connected(a)
  await connected(b)
  const after = []
  for (let i = 0; i < 6; i++) after.push(await status(`${i % 2 === 0 ? a.url : b.url}/`))
  t.same(after, [200, 200, 200, 200, 429, 429], 'one shared budget of 4 across both instances again (the restarted Redis kept nothing)')
  t.equal(a.app.limiter.stats.outages, 1)
})

t.test('Redis hung (SIGSTOP): a request waits at most REDIS_TIMEOUT, then the breaker skips Redis until it answers again', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { REDIS_URL: redis.url, KEY_PREFIX: 'stop:', RATE_LIMIT_MAX: '100', REDIS_TIMEOUT: '150ms' }))
  await connected(gw)
  process.kill(redis.pid, 'SIGSTOP')
  t.teardown(() => { try { process.kill(redis.pid, 'SIGCONT') } catch {} })
  const timings: number[] = []
  for (let i = 0; i < 5; i++) {
    const started = performance.now()
    t.equal(await status(`${gw.url}/`), 200)
    timings.push(performance.now() - started)
  }
  t.ok(timings[0]! >= 140 && timings[0]! < 150 + 400, `the first request waited for the command timeout (${Math.round(timings[0]!)} ms)`)
  t.ok(Math.max(...timings.slice(1)) < 100, `later requests skipped Redis (${timings.slice(1).map(Math.round).join(', ')} ms)`)
  t.equal(gw.app.limiter.degraded, true)
  process.kill(redis.pid, 'SIGCONT')
  // the breaker lets one request probe Redis after its cool-down; it answers, so the limiter is shared again
  await waitFor(async () => { await status(`${gw.url}/`); return !gw.app.limiter.degraded }, 'a probe to find Redis back', 5000, 100)
  t.pass('recovered without a reconnect')
})

t.test('RATE_LIMIT_ON_REDIS_ERROR=allow admits without headers; deny answers 503 and /readyz is 503', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const base = upstreamsEnv(backends, { REDIS_URL: redis.url, KEY_PREFIX: 'policy:', RATE_LIMIT_MAX: '1' })
  const allow = await startGateway(t, { ...base, RATE_LIMIT_ON_REDIS_ERROR: 'allow' })
  const deny = await startGateway(t, { ...base, RATE_LIMIT_ON_REDIS_ERROR: 'deny' })
  await connected(allow)
  await connected(deny)
  await redis.kill()
  await waitFor(() => allow.app.limiter.degraded && deny.app.limiter.degraded, 'both to notice')
  for (let i = 0; i < 3; i++) {
    const res = await request(`${allow.url}/`)
    await res.body.dump()
    t.equal(res.statusCode, 200)
    t.notOk('x-ratelimit-remaining' in res.headers, 'no budget to report')
  }
  const denied = await request(`${deny.url}/`)
  t.equal(denied.statusCode, 503)
  t.same(await denied.body.json(), {
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'SLUICE_LIMITER_UNAVAILABLE',
    message: 'The rate limiter is unavailable (Redis unreachable) and RATE_LIMIT_ON_REDIS_ERROR is deny'
  })
  const ready = await request(`${deny.url}/readyz`)
  t.equal(ready.statusCode, 503)
  t.match(await ready.body.json(), { reasons: ['the rate limiter cannot reach Redis (policy deny)'] })
})

t.test('Redis down at boot: the gateway starts degraded, says so, and joins Redis when it appears', async t => {
  const { freePort } = await import('../helpers/redis.js')
  const port = await freePort()
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { REDIS_URL: `redis://127.0.0.1:${port}`, KEY_PREFIX: 'boot:', RATE_LIMIT_MAX: '3' }))
  await waitFor(() => gw.app.limiter.stats.outages === 1, 'the outage to be declared')
  t.equal(gw.app.limiter.degraded, true)
  t.equal(await status(`${gw.url}/`), 200, 'serves from the local limiter')
  await startRedis(t, [], port)
  await connected(gw)
  const res = await request(`${gw.url}/`)
  await res.body.dump()
  t.equal(res.headers['x-ratelimit-remaining'], '2', 'a fresh Redis budget: the local count is not carried over')
})

t.test('a refused client is answered from the deny cache until its retry-after: no Redis call per refused request', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, {
    REDIS_URL: redis.url, RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW: '2s', RATE_LIMIT_ALGORITHM: 'fixed-window', RATE_LIMIT_KEY: 'header:x-client'
  }))
  await connected(gw)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const scriptCalls = async (): Promise<number> => {
    const stats = await admin.info('commandstats')
    return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0)
  }
  const hammer = async (client: string): Promise<Array<{ status: number, retryAfter: string | undefined }>> => {
    const out = []
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gw.url}/`, { headers: { 'x-client': client } })
      await res.body.dump()
      out.push({ status: res.statusCode, retryAfter: res.headers['retry-after'] as string | undefined })
    }
    return out
  }
  // start early in a fixed window, so the refusals all fall in it
  await new Promise(resolve => setTimeout(resolve, 2000 - (Date.now() % 2000) + 20))
  const before = await scriptCalls()
  const first = await hammer('greedy')
  t.same(first.map(r => r.status), [200, 200, 429])
  const asked = await scriptCalls()
  t.equal(asked - before, 3, 'the first refusal came from Redis')
  const again = await hammer('greedy')
  t.same(again.map(r => r.status), [429, 429, 429], 'still refused')
  t.ok(again.every(r => Number(r.retryAfter) >= 1 && Number(r.retryAfter) <= 2), 'with a retry-after inside the window')
  t.equal(await scriptCalls(), asked, 'without asking Redis')
  t.same((await hammer('modest')).map(r => r.status), [200, 200, 429], 'another client has its own budget')

  await waitFor(async () => (await hammer('greedy'))[0]?.status === 200, 'the next window', 4000, 200)
  t.ok(await scriptCalls() > asked + 3, 'once the ttl passed, Redis decides again')
})

t.test('the deny cache is forgotten when Redis comes back: a restarted Redis that lost the counts decides again', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { REDIS_URL: redis.url, RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW: '1h' }))
  await connected(gw)
  const three = async (): Promise<number[]> => [await status(`${gw.url}/`), await status(`${gw.url}/`), await status(`${gw.url}/`)]
  t.same(await three(), [200, 200, 429], 'refused for the hour: the refusal is cached')
  await redis.kill('SIGKILL')
  await waitFor(() => gw.app.limiter.degraded, 'the outage to be noticed')
  await redis.restart()
  await connected(gw)
  t.same(await three(), [200, 200, 429], 'the empty Redis admits the client again, then refuses it')
})

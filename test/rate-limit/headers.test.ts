import t from 'tap'
import { request } from 'undici'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { clearOfWindowEdge } from '../helpers/wait.js'

type Headers = Record<string, string | string[] | undefined>

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Headers, body: Record<string, unknown> }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, headers: res.headers, body: await res.body.json() as Record<string, unknown> }
}

t.test('legacy headers count the budget down, then 429 with retry-after and the SLUICE body; the upstream never sees it', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW: '1m', RATE_LIMIT_ALGORITHM: 'fixed-window' }))
  await clearOfWindowEdge(60_000)
  for (let i = 1; i <= 3; i++) {
    const res = await get(`${gw.url}/`)
    t.equal(res.status, 200)
    t.equal(res.headers['x-ratelimit-limit'], '3')
    t.equal(res.headers['x-ratelimit-remaining'], String(3 - i))
    const reset = Number(res.headers['x-ratelimit-reset'])
    t.ok(reset >= 1 && reset <= 60, `reset ${reset} is whole seconds within the window`)
    t.notOk('ratelimit' in res.headers, 'no ietf headers in legacy mode')
  }
  const limited = await get(`${gw.url}/`)
  t.equal(limited.status, 429)
  t.same(limited.body, { statusCode: 429, error: 'Too Many Requests', code: 'SLUICE_RATE_LIMITED', message: `Rate limit exceeded: retry in ${String(limited.headers['retry-after'])} s` })
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60)
  t.equal(limited.headers['x-ratelimit-reset'], limited.headers['retry-after'], 'reset agrees with retry-after')
  t.ok(limited.headers['x-request-id'], 'a 429 carries the request id')
  t.equal(hitsOn(backends).b1, 3, 'the limited request never reached the upstream')
})

t.test('ietf headers follow draft-ietf-httpapi-ratelimit-headers-10', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW: '30s', RATE_LIMIT_HEADERS: 'ietf' }))
  const first = await get(`${gw.url}/`)
  t.equal(first.headers['ratelimit-policy'], '"default";q=2;w=30')
  t.match(first.headers.ratelimit, /^"default";r=1;t=\d+$/)
  t.notOk('x-ratelimit-limit' in first.headers, 'no legacy headers in ietf mode')
  await get(`${gw.url}/`)
  const limited = await get(`${gw.url}/`)
  t.equal(limited.status, 429)
  const t429 = /;t=(\d+)$/.exec(String(limited.headers.ratelimit))?.[1]
  t.match(limited.headers.ratelimit, /^"default";r=0;t=\d+$/)
  t.equal(limited.headers['retry-after'], t429, 'retry-after agrees with t')
})

t.test('both sends both sets; none sends neither (but retry-after on 429)', async t => {
  const backends = await startBackends(t, 1)
  const both = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '1', RATE_LIMIT_HEADERS: 'both' }))
  const b = await get(`${both.url}/`)
  t.ok(b.headers['x-ratelimit-limit'] !== undefined && b.headers['ratelimit-policy'] !== undefined)
  const none = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '1', RATE_LIMIT_HEADERS: 'none' }))
  const n = await get(`${none.url}/`)
  t.equal(n.status, 200)
  for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit', 'ratelimit-policy']) t.notOk(name in n.headers, `no ${name}`)
  const limited = await get(`${none.url}/`)
  t.equal(limited.status, 429)
  t.ok(Number(limited.headers['retry-after']) >= 1)
})

t.test('the gateway\'s own routes are never counted or limited', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2' }))
  for (let i = 0; i < 5; i++) {
    const res = await get(`${gw.url}/healthz`)
    t.equal(res.status, 200)
    t.notOk('x-ratelimit-limit' in res.headers)
    t.equal((await get(`${gw.url}/readyz`)).status, 200)
  }
  t.equal((await get(`${gw.url}/`)).headers['x-ratelimit-remaining'], '1', 'the proxied budget is untouched')
})

t.test('RATE_LIMIT=off: no limiter, no headers', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT: 'off', RATE_LIMIT_MAX: '1' }))
  for (let i = 0; i < 3; i++) {
    const res = await get(`${gw.url}/`)
    t.equal(res.status, 200)
    t.notOk('x-ratelimit-limit' in res.headers)
  }
})

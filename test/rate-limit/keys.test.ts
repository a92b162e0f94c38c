import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'

async function status (url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, remaining: string | undefined, policy: string | undefined }> {
  const res = await request(url, { headers, method })
  await res.body.dump()
  const remaining = res.headers['x-ratelimit-remaining']
  const policy = res.headers['ratelimit-policy']
  return { status: res.statusCode, remaining: remaining as string | undefined, policy: policy as string | undefined }
}

async function statuses (n: number, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await status(url, headers, method)).status)
  return out
}

t.test('RATE_LIMIT_KEY=header:x-api-key: one budget per key, the IP when the header is absent', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2', RATE_LIMIT_KEY: 'header:X-Api-Key' }))
  t.same(await statuses(3, `${gw.url}/`, { 'x-api-key': 'alice' }), [200, 200, 429])
  t.same(await statuses(3, `${gw.url}/`, { 'x-api-key': 'bob' }), [200, 200, 429], 'bob has his own budget')
  t.same(await statuses(3, `${gw.url}/`), [200, 200, 429], 'no header: keyed by IP, a third budget')
})

t.test('RATE_LIMIT_ALLOW: listed clients are never limited and get no rate-limit headers', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '1', RATE_LIMIT_ALLOW: '10.0.0.0/8,127.0.0.0/8' }))
  for (let i = 0; i < 4; i++) {
    const res = await status(`${gw.url}/`)
    t.equal(res.status, 200)
    t.equal(res.remaining, undefined)
  }
  const other = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '1', RATE_LIMIT_ALLOW: '10.0.0.0/8,::1' }))
  t.same(await statuses(2, `${other.url}/`), [200, 429], '127.0.0.1 is not in that list')
})

t.test('per-route rules from CONFIG_FILE: longest path prefix by segments, optional method, own budget and policy name', async t => {
  const backends = await startBackends(t, 1)
  const dir = t.testdir()
  const file = join(dir, 'sluice.json')
  writeFileSync(file, JSON.stringify({
    rateLimit: {
      rules: [
        { path: '/api', max: 3, window: '1m' },
        { path: '/api/search', method: 'GET', max: 1, window: 60_000 }
      ]
    }
  }))
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '5', RATE_LIMIT_HEADERS: 'both', CONFIG_FILE: file }))
  const search = await status(`${gw.url}/api/search?q=1`)
  t.equal(search.policy, '"rule-2";q=1;w=60', 'the longest matching rule')
  t.equal((await status(`${gw.url}/api/search/deeper`)).status, 429, 'rule-2 also covers sub-paths, and is spent')
  t.equal((await status(`${gw.url}/api/search`, {}, 'POST')).policy, '"rule-1";q=3;w=60', 'another method falls to the shorter rule')
  t.equal((await status(`${gw.url}/api/searchx`)).policy, '"rule-1";q=3;w=60', '/api/search does not match /api/searchx')
  t.same(await statuses(2, `${gw.url}/api/items`), [200, 429], 'rule-1 spent: 3 requests in all')
  const global = await status(`${gw.url}/other`)
  t.equal(global.policy, '"default";q=5;w=60')
  t.equal(global.remaining, '4', 'requests under a rule did not count against the global budget')
})

t.test('IPv6 clients are keyed by /64; X-Forwarded-For counts only from a trusted proxy', async t => {
  const backends = await startBackends(t, 1)
  const trusted = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2', TRUST_PROXY: '127.0.0.1/32' }))
  const xff = (ip: string): Record<string, string> => ({ 'x-forwarded-for': ip })
  t.same(await statuses(2, `${trusted.url}/`, xff('2001:db8:1:2::1')), [200, 200])
  t.equal((await status(`${trusted.url}/`, xff('2001:db8:1:2:ffff:ffff:ffff:ffff'))).status, 429, 'same /64, same budget')
  t.equal((await status(`${trusted.url}/`, xff('2001:db8:1:3::1'))).status, 200, 'another /64, another budget')
  t.same(await statuses(3, `${trusted.url}/`, xff('203.0.113.7')), [200, 200, 429], 'IPv4 clients by address')
  t.same(await statuses(2, `${trusted.url}/`, xff('::ffff:198.51.100.1')), [200, 200])
  t.equal((await status(`${trusted.url}/`, xff('198.51.100.1'))).status, 429, 'IPv4-mapped IPv6 is the same client as IPv4')

  const untrusted = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2' }))
  t.same(await statuses(2, `${untrusted.url}/`, xff('203.0.113.1')), [200, 200])
  t.equal((await status(`${untrusted.url}/`, xff('203.0.113.2'))).status, 429, 'without TRUST_PROXY a forged X-Forwarded-For changes nothing')
})

t.test('TRUST_PROXY as a hop count trusts that many hops of X-Forwarded-For, on the proxy path and the admin guard alike', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '1', TRUST_PROXY: '1' }))
  const xff = (chain: string): Record<string, string> => ({ 'x-forwarded-for': chain })
  // one trusted hop (the socket peer): the client is the last address its proxy appended
  t.same(await statuses(2, `${gw.url}/`, xff('198.51.100.9, 203.0.113.1')), [200, 429])
  t.equal((await status(`${gw.url}/`, xff('198.51.100.9, 203.0.113.2'))).status, 200, 'another last hop, another client')
  t.equal((await status(`${gw.url}/`, xff('203.0.113.1'))).status, 429, 'an earlier, forgeable entry is not believed')
  const admin = await request(`${gw.url}/admin/servers`, { headers: xff('203.0.113.50') })
  await admin.body.dump()
  t.equal(admin.statusCode, 403, 'the admin guard sees the same client IP (not loopback)')
})

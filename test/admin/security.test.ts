import t from 'tap'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/redis.js'
import { isLoopback } from '../../src/admin/auth.js'

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

const TOKEN = 'sluice-test-token-0123456789abcdef'
const UNAUTHORIZED = { statusCode: 401, error: 'Unauthorized', code: 'SLUICE_UNAUTHORIZED', message: 'Admin calls need Authorization: Bearer <ADMIN_TOKEN>' }
const FORBIDDEN = { statusCode: 403, error: 'Forbidden', code: 'SLUICE_FORBIDDEN', message: 'No ADMIN_TOKEN is configured: admin calls are accepted from loopback only' }

async function call (base: string, method: Method, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<{ status: number, body: string, contentType: string }> {
  const res = await request(`${base}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.statusCode, body: await res.body.text(), contentType: String(res.headers['content-type']) }
}

const poolUrls = (gw: Gateway): string[] => gw.app.balancer.pool.list().map(s => s.url)

/** Every admin operation, with a body that would succeed. */
function operations (gw: Gateway): Array<[Method, string, unknown]> {
  const id = gw.app.balancer.pool.list()[0]!.id
  return [
    ['GET', '/admin/servers', undefined],
    ['POST', '/admin/servers', { url: 'http://added.example' }],
    ['GET', `/admin/servers/${id}`, undefined],
    ['PATCH', `/admin/servers/${id}`, { weight: 5 }],
    ['DELETE', `/admin/servers/${id}`, undefined],
    ['GET', '/admin/status', undefined]
  ]
}

t.test('with ADMIN_TOKEN: every admin route needs the exact bearer token', async t => {
  const gw = await startGateway(t, { ADMIN_TOKEN: TOKEN, UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  const refused: Array<[string, Record<string, string>]> = [
    ['no header', {}],
    ['wrong scheme', { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }],
    ['token without scheme', { authorization: TOKEN }],
    ['scheme without token', { authorization: 'Bearer' }],
    ['empty token', { authorization: 'Bearer ' }],
    ['wrong token', { authorization: `Bearer ${'x'.repeat(TOKEN.length)}` }],
    ['right token, one character longer', { authorization: `Bearer ${TOKEN}x` }],
    ['right token, one character shorter', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['right token, twice', { authorization: `Bearer ${TOKEN}${TOKEN}` }],
    ['right token in another header', { 'x-admin-token': TOKEN }],
    ['two tokens', { authorization: `Bearer ${TOKEN} ${TOKEN}` }]
  ]
  const before = poolUrls(gw)
  const weight = gw.app.balancer.pool.list()[0]!.weight
  for (const [method, path, body] of operations(gw)) {
    for (const [what, headers] of refused) {
      const res = await call(gw.adminUrl, method, path, headers, body)
      t.equal(res.status, 401, `${method} ${path}, ${what}`)
      t.same(JSON.parse(res.body), UNAUTHORIZED, `${method} ${path}, ${what}: body`)
      t.match(res.contentType, /^application\/json/)
    }
    // the guard runs before parsing and validation: a bad body is still a 401
    if (body !== undefined) {
      t.equal((await call(gw.adminUrl, method, path, {}, { nonsense: true })).status, 401, `${method} ${path}: 401 before 400`)
    }
  }
  t.same(poolUrls(gw), before, 'nothing was added or removed')
  t.equal(gw.app.balancer.pool.list()[0]!.weight, weight, 'nothing was changed')

  const auth = { authorization: `Bearer ${TOKEN}` }
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', auth)).status, 200, 'right token')
  t.equal((await call(gw.adminUrl, 'GET', '/admin/status', auth)).status, 200)
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', { authorization: `bearer ${TOKEN}` })).status, 200, 'the scheme is case-insensitive')
  const added = await call(gw.adminUrl, 'POST', '/admin/servers', auth, { url: 'http://added.example' })
  t.equal(added.status, 201)
  t.same(poolUrls(gw), [...before, 'http://added.example'])
})

t.test('with ADMIN_TOKEN: a remote caller with the token is accepted', async t => {
  const gw = await startGateway(t, { ADMIN_TOKEN: TOKEN, TRUST_PROXY: '127.0.0.1' })
  const remote = { 'x-forwarded-for': '203.0.113.5' }
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', { ...remote, authorization: `Bearer ${TOKEN}` })).status, 200)
  const res = await call(gw.adminUrl, 'GET', '/admin/servers', remote)
  t.equal(res.status, 401)
  t.same(JSON.parse(res.body), UNAUTHORIZED)
})

t.test('without ADMIN_TOKEN: loopback only (both the socket peer and the resolved client IP)', async t => {
  const gw = await startGateway(t, { TRUST_PROXY: '127.0.0.1', UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers')).status, 200, 'loopback caller')
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', { 'x-forwarded-for': '127.0.0.1' })).status, 200, 'loopback via a trusted loopback proxy')
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', { 'x-forwarded-for': '::1' })).status, 200, 'IPv6 loopback')

  const before = poolUrls(gw)
  const weight = gw.app.balancer.pool.list()[0]!.weight
  for (const xff of ['203.0.113.5', '127.0.0.1, 203.0.113.5', '10.0.0.1', '2001:db8::1', 'not-an-ip']) {
    for (const [method, path, body] of operations(gw)) {
      // a token does not help when none is configured
      const res = await call(gw.adminUrl, method, path, { 'x-forwarded-for': xff, authorization: `Bearer ${TOKEN}` }, body)
      t.equal(res.status, 403, `${method} ${path} from ${xff}`)
      t.same(JSON.parse(res.body), FORBIDDEN)
    }
  }
  t.same(poolUrls(gw), before, 'nothing was added or removed')
  t.equal(gw.app.balancer.pool.list()[0]!.weight, weight, 'nothing was changed')
})

t.test('without TRUST_PROXY, x-forwarded-for is ignored: the socket peer decides', async t => {
  const gw = await startGateway(t, {})
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers', { 'x-forwarded-for': '203.0.113.5' })).status, 200)
})

t.test('/healthz, /readyz, /docs and /metrics stay open', async t => {
  const backends = await startBackends(t, 1)
  const envs: Array<Record<string, string>> = [{ ADMIN_TOKEN: TOKEN }, { TRUST_PROXY: '127.0.0.1' }]
  for (const env of envs) {
    const gw = await startGateway(t, upstreamsEnv(backends, env))
    const remote = { 'x-forwarded-for': '203.0.113.5' }
    t.equal((await call(gw.url, 'GET', '/healthz', remote)).status, 200, `/healthz (${Object.keys(env)[0]!})`)
    t.equal((await call(gw.url, 'GET', '/readyz', remote)).status, 200, '/readyz')
    const docs = await call(gw.adminUrl, 'GET', '/docs', remote)
    t.equal(docs.status, 200, '/docs')
    t.match(docs.contentType, /^text\/html/)
    t.equal((await call(gw.adminUrl, 'GET', '/docs/json', remote)).status, 200, '/docs/json')
    t.equal((await call(gw.adminUrl, 'GET', '/metrics', remote)).status, 200, '/metrics')
    t.not((await call(gw.adminUrl, 'GET', '/admin/servers', remote)).status, 200, 'while /admin is not')
  }
})

t.test('with ADMIN_PORT: /admin, /docs and /metrics only on the admin port, never proxied', async t => {
  const backends = await startBackends(t, 1)
  const adminPort = await freePort()
  const gw = await startGateway(t, upstreamsEnv(backends, { ADMIN_PORT: String(adminPort), ADMIN_TOKEN: TOKEN }))
  t.equal(gw.adminUrl, `http://127.0.0.1:${adminPort}`)
  t.not(gw.adminUrl, gw.url)
  const auth = { authorization: `Bearer ${TOKEN}` }

  const hidden: Array<[Method, string]> = [
    ['GET', '/admin/servers'], ['POST', '/admin/servers'], ['GET', '/admin/status'], ['GET', '/admin'],
    ['GET', `/admin/servers/${gw.app.balancer.pool.list()[0]!.id}`], ['DELETE', `/admin/servers/${gw.app.balancer.pool.list()[0]!.id}`],
    ['GET', '/docs'], ['GET', '/docs/json'], ['GET', '/docs/static/index.html'], ['GET', '/metrics'], ['GET', '/metrics/']
  ]
  for (const [method, path] of hidden) {
    const res = await call(gw.url, method, path, auth, method === 'POST' ? { url: 'http://x.example' } : undefined)
    t.equal(res.status, 404, `${method} ${path} on the public port`)
    t.match(JSON.parse(res.body), { statusCode: 404, error: 'Not Found', code: 'SLUICE_NOT_FOUND' })
  }
  const proxied = [...backends[0]!.hits.keys()].filter(p => p !== '/health')
  t.same(proxied, [], 'the backend saw none of them')
  t.equal(gw.app.balancer.pool.size, 1, 'the pool is unchanged')

  // the public port still proxies everything else
  const other = await call(gw.url, 'GET', '/administrator')
  t.equal(other.status, 200)
  t.equal(backends[0]!.hits.get('/administrator'), 1)

  const servers = await call(gw.adminUrl, 'GET', '/admin/servers', auth)
  t.equal(servers.status, 200, '/admin/servers on the admin port')
  t.equal((JSON.parse(servers.body) as { servers: unknown[] }).servers.length, 1)
  t.equal((await call(gw.adminUrl, 'GET', '/admin/servers')).status, 401, 'still guarded there')
  const docs = await call(gw.adminUrl, 'GET', '/docs/json')
  t.equal(docs.status, 200, '/docs/json on the admin port')
  t.ok((JSON.parse(docs.body) as { paths: Record<string, unknown> }).paths['/admin/servers'])
  const metrics = await call(gw.adminUrl, 'GET', '/metrics')
  t.equal(metrics.status, 200, '/metrics on the admin port, open')
  t.match(metrics.body, /^# HELP /m)
  const added = await call(gw.adminUrl, 'POST', '/admin/servers', auth, { url: 'http://added.example' })
  t.equal(added.status, 201, 'changes through the admin port reach the gateway\'s pool')
  t.ok(gw.app.balancer.pool.list().some(s => s.url === 'http://added.example'))
  // the admin listener proxies nothing
  t.equal((await call(gw.adminUrl, 'GET', '/')).status, 404)
  t.equal(backends[0]!.hits.get('/'), undefined)
})

t.test('an unknown /admin path is the gateway\'s: guarded, then 404, never proxied with the token', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { ADMIN_TOKEN: TOKEN }))
  const auth = { authorization: `Bearer ${TOKEN}` }
  for (const path of ['/admin', '/admin/', '/admin/nope', '/admin/servers/x/y', '/admin/status/extra']) {
    t.equal((await call(gw.url, 'GET', path)).status, 401, `GET ${path} without the token`)
    const res = await call(gw.url, 'POST', path, auth, { url: 'http://x.example' })
    t.equal(res.status, 404, `POST ${path} with the token`)
    t.match(JSON.parse(res.body), { statusCode: 404, code: 'SLUICE_NOT_FOUND' })
  }
  t.same([...backends[0]!.hits.keys()].filter(p => p !== '/health'), [], 'the backend saw none of them')
  t.equal(gw.app.balancer.pool.size, 1, 'the pool is unchanged')
})

t.test('a 401 names the Bearer scheme; a malformed URL gets the SLUICE error body', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { ADMIN_TOKEN: TOKEN }))
  const res = await request(`${gw.url}/admin/servers`)
  await res.body.dump()
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], 'Bearer realm="sluice-admin"')
  const bad = await request(`${gw.url}/admin/servers/%E0%A4%A`, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(bad.statusCode, 400)
  t.match(await bad.body.json(), { statusCode: 400, error: 'Bad Request', code: 'SLUICE_BAD_REQUEST' })
})

t.test('isLoopback: 127.0.0.0/8, ::1 and their IPv4-mapped form only', async t => {
  for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(ip), ip)
  for (const ip of [undefined, '', '10.0.0.1', '::ffff:10.0.0.1', '::', '127.0.0.1.evil', '1270.0.0.1', '::2', 'localhost']) t.notOk(isLoopback(ip), String(ip))
})

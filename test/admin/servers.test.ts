import t from 'tap'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'
import { startRedis } from '../helpers/redis.js'
import { serverId } from '../../src/pool/origin.js'
import { adminError, formatValidationErrors } from '../../routes/admin/servers.js'

type Json = Record<string, unknown>

interface Answer {
  status: number
  body: Json
  headers: Record<string, string | string[] | undefined>
}

interface Call {
  body?: unknown
  raw?: string | Buffer | Readable
  headers?: Record<string, string>
}

/** One admin call over real HTTP; `body` is sent as JSON, `raw` as it is. */
async function admin (gw: Gateway, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, call: Call = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...call.headers }
  let body: string | Buffer | Readable | undefined = call.raw
  if (call.body !== undefined) {
    body = JSON.stringify(call.body)
    headers['content-type'] ??= 'application/json'
  }
  const res = await request(`${gw.adminUrl}/admin${path}`, { method, headers, body })
  const text = await res.body.text()
  return { status: res.statusCode, body: text === '' ? {} : JSON.parse(text) as Json, headers: res.headers }
}

async function list (gw: Gateway): Promise<Json[]> {
  const res = await admin(gw, 'GET', '/servers')
  return res.body.servers as Json[]
}

async function servedBy (url: string): Promise<string> {
  const res = await request(url)
  await res.body.dump()
  return String(res.headers['x-served-by'])
}

const SERVER_KEYS = ['addedAt', 'enabled', 'failedRequests', 'id', 'inFlight', 'lastCheck', 'name', 'state', 'totalRequests', 'url', 'weight']
const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']

t.test('GET /admin/servers lists the pool, every entry a SPEC Server', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const res = await admin(gw, 'GET', '/servers')
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(Object.keys(res.body), ['servers'])
  const servers = res.body.servers as Json[]
  t.same(servers.map(s => s.url), backends.map(b => b.url))
  for (const s of servers) {
    t.same(Object.keys(s).sort(), SERVER_KEYS)
    t.equal(s.id, serverId(s.url as string), 'id derived from the normalised URL')
    t.equal(s.state, 'healthy')
    t.equal(s.weight, 1)
    t.equal(s.enabled, true)
    t.equal(s.name, new URL(s.url as string).host)
    t.equal(new Date(s.addedAt as string).toISOString(), s.addedAt, 'addedAt is ISO 8601')
    const check = s.lastCheck as Json
    t.same(Object.keys(check).sort(), ['at', 'latencyMs', 'ok', 'status'])
    t.equal(check.ok, true)
    t.equal(check.status, 200)
    t.equal(new Date(check.at as string).toISOString(), check.at)
  }
})

t.test('POST, GET, PATCH, DELETE one server: status codes and bodies', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv([backends[0]!]))
  const { pool } = gw.app.balancer
  const url = backends[1]!.url

  const created = await admin(gw, 'POST', '/servers', { body: { url: `${url}/`, weight: 3, name: 'second' } })
  t.equal(created.status, 201)
  t.same(Object.keys(created.body).sort(), SERVER_KEYS)
  const id = serverId(url)
  t.match(created.body, { id, url, name: 'second', weight: 3, enabled: true, inFlight: 0, totalRequests: 0, failedRequests: 0 })
  t.equal(created.headers.location, `/admin/servers/${id}`)
  t.ok(['unknown', 'healthy'].includes(created.body.state as string), 'unknown until its first check')
  t.equal(pool.get(id)?.url, url, 'in the pool')

  const got = await admin(gw, 'GET', `/servers/${id}`)
  t.equal(got.status, 200)
  t.match(got.body, { id, url, name: 'second', weight: 3, enabled: true })

  const patched = await admin(gw, 'PATCH', `/servers/${id}`, { body: { weight: 7 } })
  t.equal(patched.status, 200)
  t.match(patched.body, { id, weight: 7, enabled: true })
  t.equal(pool.get(id)?.weight, 7)
  const disabled = await admin(gw, 'PATCH', `/servers/${id}`, { body: { enabled: false } })
  t.equal(disabled.status, 200)
  t.match(disabled.body, { id, weight: 7, enabled: false })
  const both = await admin(gw, 'PATCH', `/servers/${id}`, { body: { enabled: true, weight: 2 } })
  t.match(both.body, { id, weight: 2, enabled: true })
  t.match((await admin(gw, 'GET', `/servers/${id}`)).body, { weight: 2, enabled: true }, 'GET sees the change')

  const removed = await admin(gw, 'DELETE', `/servers/${id}`)
  t.equal(removed.status, 202)
  t.match(removed.body, { id, url, state: 'draining' })
  // nothing in flight: the drain ends at once
  await waitFor(() => pool.get(id) === undefined, 'the idle server to leave')
  const gone = await admin(gw, 'GET', `/servers/${id}`)
  t.equal(gone.status, 404)
  t.same(gone.body, { statusCode: 404, error: 'Not Found', code: 'SLUICE_SERVER_NOT_FOUND', message: `No server with id "${id}" is in the pool` })
  t.same((await list(gw)).map(s => s.url), [backends[0]!.url])
})

t.test('409 for a server already in the pool, compared normalised; the pool is unchanged', async t => {
  const gw = await startGateway(t, { HEALTH_CHECK_INTERVAL: '0' })
  const first = await admin(gw, 'POST', '/servers', { body: { url: 'http://Example.INVALID:80/' } })
  t.equal(first.status, 201)
  t.equal(first.body.url, 'http://example.invalid', 'scheme and host lower-cased, default port dropped')
  t.equal(first.body.name, 'example.invalid', 'the name defaults to the host')
  t.equal(first.body.state, 'healthy', 'healthy at once with active checks off')
  const before = await list(gw)
  for (const variant of ['http://example.invalid', 'HTTP://EXAMPLE.invalid', 'http://example.invalid:80', 'http://example.invalid/']) {
    const again = await admin(gw, 'POST', '/servers', { body: { url: variant, weight: 9, name: 'other' } })
    t.equal(again.status, 409, variant)
    t.same(again.body, {
      statusCode: 409,
      error: 'Conflict',
      code: 'SLUICE_SERVER_EXISTS',
      message: `The server http://example.invalid is already in the pool (id ${first.body.id as string})`
    })
  }
  t.same(await list(gw), before, 'neither weight nor name was overwritten')
  const https = await admin(gw, 'POST', '/servers', { body: { url: 'https://example.invalid:443' } })
  t.equal(https.status, 201, 'https is another server')
  t.equal(https.body.url, 'https://example.invalid')
  t.equal((await list(gw)).length, 2)
})

t.test('unknown ids: GET, PATCH and DELETE answer 404 and change nothing', async t => {
  const gw = await startGateway(t, { UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  const before = await list(gw)
  for (const id of ['nope', '000000000000', serverId('http://127.0.0.1:10'), 'a%20b']) {
    const expected = { statusCode: 404, error: 'Not Found', code: 'SLUICE_SERVER_NOT_FOUND', message: `No server with id "${decodeURIComponent(id)}" is in the pool` }
    const got = await admin(gw, 'GET', `/servers/${id}`)
    t.equal(got.status, 404)
    t.same(got.body, expected)
    const patched = await admin(gw, 'PATCH', `/servers/${id}`, { body: { enabled: false } })
    t.equal(patched.status, 404)
    t.same(patched.body, expected)
    const deleted = await admin(gw, 'DELETE', `/servers/${id}`)
    t.equal(deleted.status, 404)
    t.same(deleted.body, expected)
  }
  t.same(await list(gw), before)
})

const big = JSON.stringify({ url: 'http://big.example', name: 'x'.repeat(17 * 1024) })

/** [description, call, status, code, message pattern] */
const BAD_POSTS: Array<[string, Call, number, string, RegExp]> = [
  ['url of the wrong type', { body: { url: 42 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must be string$/],
  ['missing url', { body: { weight: 2 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url is required$/],
  ['empty url', { body: { url: '' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not have fewer than 1 characters$/],
  ['not a URL', { body: { url: 'not a url' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url is not a URL$/],
  ['ftp://', { body: { url: 'ftp://files.example' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must use http:\/\/ or https:\/\/$/],
  ['a path', { body: { url: 'http://a.example/api' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must be an origin without a path/],
  ['a query', { body: { url: 'http://a.example/?x=1' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not contain a query string$/],
  ['a lone ?', { body: { url: 'http://a.example?' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not contain a query string$/],
  ['credentials', { body: { url: 'http://user:pw@a.example' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not contain credentials$/],
  ['a user only', { body: { url: 'https://user@a.example' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not contain credentials$/],
  ['a fragment', { body: { url: 'http://a.example#top' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url must not contain a fragment$/],
  ['weight 0', { body: { url: 'http://a.example', weight: 0 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be >= 1$/],
  ['weight 1001', { body: { url: 'http://a.example', weight: 1001 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be <= 1000$/],
  ['weight 1.5', { body: { url: 'http://a.example', weight: 1.5 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be integer$/],
  ['weight "2"', { body: { url: 'http://a.example', weight: '2' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be integer$/],
  ['weight null', { body: { url: 'http://a.example', weight: null } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be integer$/],
  ['name too long', { body: { url: 'http://a.example', name: 'n'.repeat(101) } }, 400, 'SLUICE_BAD_REQUEST', /^body\/name must not have more than 100 characters$/],
  ['empty name', { body: { url: 'http://a.example', name: '' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/name must not have fewer than 1 characters$/],
  ['name of the wrong type', { body: { url: 'http://a.example', name: ['b1'] } }, 400, 'SLUICE_BAD_REQUEST', /^body\/name must be string$/],
  ['an unknown field', { body: { url: 'http://a.example', enabled: false } }, 400, 'SLUICE_BAD_REQUEST', /^body\/enabled is not allowed \(unknown property\)$/],
  ['two problems', { body: { url: 'http://a.example', weight: 0, extra: 1 } }, 400, 'SLUICE_BAD_REQUEST', /body\/extra is not allowed.*body\/weight must be >= 1|body\/weight must be >= 1.*body\/extra is not allowed/],
  ['an array', { body: [{ url: 'http://a.example' }] }, 400, 'SLUICE_BAD_REQUEST', /^body must be object$/],
  ['null', { raw: 'null', headers: { 'content-type': 'application/json' } }, 400, 'SLUICE_BAD_REQUEST', /^body must be object$/],
  ['a JSON string', { body: 'http://a.example' }, 400, 'SLUICE_BAD_REQUEST', /^body must be object$/],
  ['invalid JSON', { raw: '{"url": "http://a.example"', headers: { 'content-type': 'application/json' } }, 400, 'SLUICE_BAD_REQUEST', /^body is not valid JSON$/],
  ['a __proto__ key', { raw: '{"url":"http://a.example","__proto__":{"weight":5}}', headers: { 'content-type': 'application/json' } }, 400, 'SLUICE_BAD_REQUEST', /^body/],
  ['an empty JSON body', { raw: '', headers: { 'content-type': 'application/json' } }, 400, 'SLUICE_BAD_REQUEST', /^body must not be empty/],
  ['no body at all', {}, 400, 'SLUICE_BAD_REQUEST', /^body must be object$/],
  ['a body over 16 KiB', { raw: big, headers: { 'content-type': 'application/json' } }, 413, 'SLUICE_PAYLOAD_TOO_LARGE', /^The request body is larger than 16384 bytes$/],
  ['a chunked body over 16 KiB', { raw: Readable.from([big.slice(0, 9000), big.slice(9000)]), headers: { 'content-type': 'application/json' } }, 413, 'SLUICE_PAYLOAD_TOO_LARGE', /16384/],
  ['text/plain', { raw: '{"url":"http://a.example"}', headers: { 'content-type': 'text/plain' } }, 415, 'SLUICE_UNSUPPORTED_MEDIA_TYPE', /^Unsupported content type "text\/plain": send application\/json$/],
  ['a form', { raw: 'url=http://a.example', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'SLUICE_UNSUPPORTED_MEDIA_TYPE', /application\/x-www-form-urlencoded/],
  ['a body without content-type', { raw: '{"url":"http://a.example"}' }, 415, 'SLUICE_UNSUPPORTED_MEDIA_TYPE', /^Unsupported content type "\(none\)"/]
]

const BAD_PATCHES: Array<[string, Call, number, string, RegExp]> = [
  ['an empty object', { body: {} }, 400, 'SLUICE_BAD_REQUEST', /^body must contain at least one of: weight, enabled$/],
  ['weight 0', { body: { weight: 0 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be >= 1$/],
  ['weight 1001', { body: { weight: 1001 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be <= 1000$/],
  ['weight 1.5', { body: { weight: 1.5 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be integer$/],
  ['weight "2"', { body: { weight: '2' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/weight must be integer$/],
  ['enabled "false"', { body: { enabled: 'false' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/enabled must be boolean$/],
  ['enabled 0', { body: { enabled: 0 } }, 400, 'SLUICE_BAD_REQUEST', /^body\/enabled must be boolean$/],
  ['an unknown field', { body: { weight: 2, state: 'healthy' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/state is not allowed \(unknown property\)$/],
  ['the url', { body: { url: 'http://other.example' } }, 400, 'SLUICE_BAD_REQUEST', /^body\/url is not allowed/],
  ['invalid JSON', { raw: '{"weight": 2', headers: { 'content-type': 'application/json' } }, 400, 'SLUICE_BAD_REQUEST', /^body is not valid JSON$/],
  ['no body at all', {}, 400, 'SLUICE_BAD_REQUEST', /^body must be object$/],
  ['a body over 16 KiB', { raw: JSON.stringify({ weight: 2, pad: 'x'.repeat(17 * 1024) }), headers: { 'content-type': 'application/json' } }, 413, 'SLUICE_PAYLOAD_TOO_LARGE', /16384/],
  ['text/plain', { raw: '{"weight":2}', headers: { 'content-type': 'text/plain' } }, 415, 'SLUICE_UNSUPPORTED_MEDIA_TYPE', /text\/plain/]
]

t.test('bad bodies are refused in the SLUICE shape, naming the field, and leave the pool unchanged', async t => {
  const gw = await startGateway(t, { UPSTREAMS: 'http://127.0.0.1:9=2', HEALTH_CHECK_INTERVAL: '0' })
  const { pool } = gw.app.balancer
  const before = await list(gw)
  const id = before[0]!.id as string
  const cases = [
    ...BAD_POSTS.map(([what, call, status, code, message]) => ({ what: `POST ${what}`, method: 'POST' as const, path: '/servers', call, status, code, message })),
    ...BAD_PATCHES.map(([what, call, status, code, message]) => ({ what: `PATCH ${what}`, method: 'PATCH' as const, path: `/servers/${id}`, call, status, code, message }))
  ]
  for (const c of cases) {
    const res = await admin(gw, c.method, c.path, c.call)
    t.equal(res.status, c.status, `${c.what}: status`)
    t.same(Object.keys(res.body).sort(), ERROR_KEYS, `${c.what}: error shape`)
    t.equal(res.body.statusCode, c.status, `${c.what}: statusCode`)
    t.equal(res.body.error, c.status === 400 ? 'Bad Request' : c.status === 413 ? 'Payload Too Large' : 'Unsupported Media Type', `${c.what}: reason phrase`)
    t.equal(res.body.code, c.code, `${c.what}: code`)
    t.match(res.body.message, c.message, `${c.what}: message`)
    t.match(res.headers['content-type'], /^application\/json/, `${c.what}: JSON`)
  }
  t.same(await list(gw), before, 'the pool is unchanged')
  t.equal(pool.size, 1)
  t.equal(pool.get(id)?.weight, 2)
})

t.test('a server added with POST takes traffic once its first health check passed', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv([backends[0]!], { HEALTH_CHECK_INTERVAL: '1m' }))
  const created = await admin(gw, 'POST', '/servers', { body: { url: backends[1]!.url, name: 'b2' } })
  t.equal(created.status, 201)
  const id = created.body.id as string
  // checked at once when added, not after HEALTH_CHECK_INTERVAL (1 minute)
  await waitFor(async () => (await admin(gw, 'GET', `/servers/${id}`)).body.state === 'healthy', 'the first check of the new server')
  t.equal(backends[1]!.hits.get('/health'), 1, 'one health check')
  const before = hitsOn(backends)
  for (let i = 0; i < 10; i++) await servedBy(`${gw.url}/`)
  const after = hitsOn(backends)
  t.same({ b1: after.b1! - before.b1!, b2: after.b2! - before.b2! }, { b1: 5, b2: 5 }, 'round-robin over both')
  t.equal((await admin(gw, 'GET', `/servers/${id}`)).body.totalRequests, 5)
})

t.test('a server added with POST takes no traffic while its health check fails', async t => {
  const backends = await startBackends(t, 2)
  backends[1]!.behaviour.healthy = false
  const gw = await startGateway(t, upstreamsEnv([backends[0]!]))
  const created = await admin(gw, 'POST', '/servers', { body: { url: backends[1]!.url } })
  await waitFor(async () => (await admin(gw, 'GET', `/servers/${created.body.id as string}`)).body.state === 'unhealthy', 'the first check')
  for (let i = 0; i < 6; i++) t.equal(await servedBy(`${gw.url}/`), 'b1')
  t.equal(hitsOn(backends).b2, 0)
})

t.test('PATCH enabled:false stops a server\'s traffic, enabled:true brings it back', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const id = serverId(backends[1]!.url)
  const off = await admin(gw, 'PATCH', `/servers/${id}`, { body: { enabled: false } })
  t.equal(off.status, 200)
  t.match(off.body, { enabled: false, state: 'healthy' })
  const before = hitsOn(backends)
  for (let i = 0; i < 8; i++) t.equal(await servedBy(`${gw.url}/`), 'b1')
  t.equal(hitsOn(backends).b2, before.b2, 'no request reached the disabled server')
  t.match((await admin(gw, 'GET', `/servers/${id}`)).body, { enabled: false }, 'still in the pool')
  await admin(gw, 'PATCH', `/servers/${id}`, { body: { enabled: true } })
  const served = new Set<string>()
  for (let i = 0; i < 4; i++) served.add(await servedBy(`${gw.url}/`))
  t.same([...served].sort(), ['b1', 'b2'])
})

t.test('PATCH weight takes effect under weighted-round-robin', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { BALANCER: 'weighted-round-robin' }))
  const count = async (n: number): Promise<Record<string, number>> => {
    const before = hitsOn(backends)
    for (let i = 0; i < n; i++) await servedBy(`${gw.url}/`)
    const after = hitsOn(backends)
    return { b1: after.b1! - before.b1!, b2: after.b2! - before.b2! }
  }
  t.same(await count(10), { b1: 5, b2: 5 }, 'equal weights')
  const res = await admin(gw, 'PATCH', `/servers/${serverId(backends[0]!.url)}`, { body: { weight: 4 } })
  t.equal(res.status, 200)
  t.equal(res.body.weight, 4)
  t.same(await count(50), { b1: 40, b2: 10 }, '4:1 after the change')
  await admin(gw, 'PATCH', `/servers/${serverId(backends[1]!.url)}`, { body: { weight: 4 } })
  t.same(await count(20), { b1: 10, b2: 10 }, 'equal again')
})

t.test('DELETE drains: the in-flight request finishes, new ones go elsewhere, then 404', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { DRAIN_TIMEOUT: '10s' }))
  const { pool } = gw.app.balancer
  const slow = request(`${gw.url}/?delay=800`).then(async res => {
    await res.body.dump()
    return { status: res.statusCode, servedBy: String(res.headers['x-served-by']), at: Date.now() }
  })
  await waitFor(() => pool.list().some(s => s.inFlight > 0), 'the slow request to be in flight')
  const busy = pool.list().find(s => s.inFlight > 0)!
  const busyName = backends.find(b => b.url === busy.url)!.name
  const otherName = busyName === 'b1' ? 'b2' : 'b1'

  const removed = await admin(gw, 'DELETE', `/servers/${busy.id}`)
  const deletedAt = Date.now()
  t.equal(removed.status, 202)
  t.match(removed.body, { id: busy.id, url: busy.url, state: 'draining', inFlight: 1 })

  const during = await admin(gw, 'GET', `/servers/${busy.id}`)
  t.equal(during.status, 200, 'still found while draining')
  t.match(during.body, { state: 'draining', inFlight: 1 })
  t.ok((await list(gw)).some(s => s.id === busy.id && s.state === 'draining'), 'listed as draining')
  const again = await admin(gw, 'DELETE', `/servers/${busy.id}`)
  t.equal(again.status, 202, 'a second DELETE while draining is harmless')
  t.equal(again.body.state, 'draining')
  const patched = await admin(gw, 'PATCH', `/servers/${busy.id}`, { body: { enabled: true } })
  t.equal(patched.body.state, 'draining', 'enabling a draining server does not bring it back')
  const readd = await admin(gw, 'POST', '/servers', { body: { url: busy.url } })
  t.equal(readd.status, 409, 'it cannot be added again until it is gone')
  t.equal(readd.body.code, 'SLUICE_SERVER_EXISTS')

  const hitsBefore = hitsOn(backends)
  for (let i = 0; i < 10; i++) t.equal(await servedBy(`${gw.url}/`), otherName, 'new requests avoid the draining server')
  t.equal(hitsOn(backends)[busyName], hitsBefore[busyName])
  t.equal(pool.get(busy.id)?.state, 'draining', 'still draining: the slow request has not finished')

  const done = await slow
  t.equal(done.status, 200, 'the in-flight request completed')
  t.equal(done.servedBy, busyName)
  t.ok(done.at - deletedAt > 200, 'the drain waited for it')
  await waitFor(async () => (await admin(gw, 'GET', `/servers/${busy.id}`)).status === 404, 'the drained server to be gone', 2000)
  t.same((await list(gw)).map(s => s.id), [serverId(backends.find(b => b.name === otherName)!.url)])
  t.equal(backends.find(b => b.name === busyName)!.hits.get('/'), 1, 'the removed server saw only the slow request')
})

t.test('DRAIN_TIMEOUT bounds the drain', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { DRAIN_TIMEOUT: '300ms' }))
  const id = serverId(backends[0]!.url)
  let finished = false
  const slow = request(`${gw.url}/?delay=2000`).then(async res => { await res.body.dump(); finished = true; return res.statusCode })
  await waitFor(() => gw.app.balancer.pool.get(id)?.inFlight === 1, 'the slow request to be in flight')
  const start = Date.now()
  t.equal((await admin(gw, 'DELETE', `/servers/${id}`)).status, 202)
  t.equal((await admin(gw, 'GET', `/servers/${id}`)).status, 200, 'draining at first')
  await waitFor(async () => (await admin(gw, 'GET', `/servers/${id}`)).status === 404, 'the drain timeout', 1500)
  const elapsed = Date.now() - start
  t.ok(elapsed >= 250, `gone after the timeout (${elapsed} ms), not at once`)
  t.notOk(finished, 'gone while the slow request was still in flight')
  t.equal((await list(gw)).length, 0)
  await slow.catch(() => {})
})

t.test('with a shared pool: changes reach the other instance; with Redis down they are refused with 503', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 2)
  const env = upstreamsEnv([backends[0]!], { REDIS_URL: redis.url, KEY_PREFIX: 'admin:', RATE_LIMIT: 'off' })
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const created = await admin(a, 'POST', '/servers', { body: { url: backends[1]!.url, weight: 2 } })
  t.equal(created.status, 201)
  const id = created.body.id as string
  await waitFor(async () => (await admin(b, 'GET', `/servers/${id}`)).status === 200, 'B to see the server added on A', 2000)
  t.equal((await admin(b, 'POST', '/servers', { body: { url: `${backends[1]!.url}/` } })).status, 409, 'a duplicate on B')
  t.equal((await admin(b, 'PATCH', `/servers/${id}`, { body: { weight: 5 } })).status, 200)
  await waitFor(async () => (await admin(a, 'GET', `/servers/${id}`)).body.weight === 5, 'A to see the weight set on B', 2000)

  await redis.kill()
  await waitFor(() => a.app.redis?.status !== 'ready', 'the client to notice')
  const before = await list(a)
  const unavailable = { statusCode: 503, error: 'Service Unavailable', code: 'SLUICE_POOL_UNAVAILABLE', message: 'The shared pool cannot be changed while Redis is unreachable; retry when it is back' }
  const posted = await admin(a, 'POST', '/servers', { body: { url: 'http://new.example' } })
  t.equal(posted.status, 503)
  t.same(posted.body, unavailable)
  const patched = await admin(a, 'PATCH', `/servers/${id}`, { body: { enabled: false } })
  t.equal(patched.status, 503)
  t.same(patched.body, unavailable)
  const deleted = await admin(a, 'DELETE', `/servers/${id}`)
  t.equal(deleted.status, 503)
  t.same(deleted.body, unavailable)
  t.equal((await admin(a, 'GET', `/servers/${id}`)).status, 200, 'reads still work')
  t.equal((await admin(a, 'GET', '/servers/nope')).status, 404, 'an unknown id is still a 404')
  t.same((await list(a)).map(s => [s.id, s.weight, s.enabled]), before.map(s => [s.id, s.weight, s.enabled]), 'the pool is unchanged')
})

t.test('error mapping: every schema error names its field; other request errors keep their message', async t => {
  const error = (keyword: string, instancePath: string, params: Record<string, unknown>, message?: string): Parameters<typeof formatValidationErrors>[0][number] =>
    ({ keyword, instancePath, schemaPath: '#', params, message })
  const format = (...errors: Array<ReturnType<typeof error>>): string => formatValidationErrors(errors, 'body', ['weight', 'enabled']).message
  t.equal(format(error('required', '', { requiredProperties: ['url', 'x'.repeat(100)] })), `body/url is required; body/${'x'.repeat(64)}… is required`, 'long names are clipped')
  t.equal(format(error('minProperties', '', { limit: 1 })), 'body must contain at least one of: weight, enabled')
  t.equal(format(error('maximum', '/weight', { limit: 1000 }, 'must be <= 1000'), error('maximum', '/weight', { limit: 1000 }, 'must be <= 1000')), 'body/weight must be <= 1000', 'repeats once')
  t.equal(format(error('format', '/url', {})), 'body/url is invalid', 'an error without a message')
  t.equal(format(), 'body is invalid', 'no detail at all')
  const bad = formatValidationErrors([error('type', '/id', { type: 'string' }, 'must be string')], 'params')
  t.match(bad, { statusCode: 400, code: 'SLUICE_BAD_REQUEST', message: 'params/id must be string' })

  const request = { headers: {} } as Parameters<typeof adminError>[1]
  const fastifyError = Object.assign(new Error('Request body size did not match Content-Length'), { code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH', statusCode: 400 })
  t.match(adminError(fastifyError, request), { statusCode: 400, code: 'SLUICE_BAD_REQUEST', message: 'Request body size did not match Content-Length' })
  t.match(adminError(Object.assign(new Error('x'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }), request), { statusCode: 415, message: 'Unsupported content type "(none)": send application/json' })
  const own = Object.assign(new Error('gone'), { code: 'SLUICE_SERVER_NOT_FOUND', statusCode: 404 })
  t.equal(adminError(own, request), own, 'Sluice errors pass through')
  const bug = new Error('boom') as Parameters<typeof adminError>[0]
  t.equal(adminError(bug, request), bug, 'a bug stays a bug (500, message hidden by sendError)')
})

import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import { startBackends, startBackend } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'

type Echo = { headers: IncomingHttpHeaders, path: string, query: string, method: string }

t.test('a 5 MB body is streamed up and back intact', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const body = randomBytes(5 * 1024 * 1024)
  const res = await request(`${gw.url}/echo`, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(res.statusCode, 200)
  const echoed = Buffer.from(await res.body.arrayBuffer())
  t.equal(echoed.length, body.length)
  t.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(body).digest('hex'))
})

t.test('JSON and text bodies are forwarded as sent, not parsed or re-encoded', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  for (const [type, body] of [['application/json', '{ "a" :1 }'], ['text/plain', 'x'.repeat(2 * 1024 * 1024)]] as const) {
    const res = await request(`${gw.url}/echo`, { method: 'POST', body, headers: { 'content-type': type } })
    t.equal(res.statusCode, 200, type)
    const text = await res.body.text()
    t.ok(text === body, `${type} body byte for byte (${text.length} bytes)`)
  }
})

t.test('expect: 100-continue (curl sends it for bodies over 1 KB): the gateway says continue, the body goes through', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const body = randomBytes(2 * 1024 * 1024)
  const { status, echoed, continued } = await new Promise<{ status: number, echoed: Buffer, continued: boolean }>((resolve, reject) => {
    let continued = false
    const req = httpRequest(`${gw.url}/echo`, {
      method: 'POST', headers: { expect: '100-continue', 'content-type': 'application/octet-stream', 'content-length': String(body.length) }
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, echoed: Buffer.concat(chunks), continued }))
    })
    req.on('continue', () => { continued = true; req.end(body) })
    req.on('error', reject)
  })
  t.ok(continued, '100 Continue came back')
  t.equal(status, 200, 'not a 502 (undici refuses to send expect upstream)')
  t.ok(echoed.equals(body), 'the body arrived intact')
})

t.test('a large response is streamed to the client', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const res = await request(`${gw.url}/big?size=${8 * 1024 * 1024}`)
  t.equal(res.statusCode, 200)
  t.equal((await res.body.arrayBuffer()).byteLength, 8 * 1024 * 1024)
})

t.test('method, path and query are kept; forwarded headers and the request id are set', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const res = await request(`${gw.url}/api/items/7?x=1&y=%20z`, {
    method: 'DELETE',
    headers: { 'x-forwarded-for': '203.0.113.9', host: 'public.example' }
  })
  const echo = await res.body.json() as Echo
  t.equal(echo.method, 'DELETE')
  t.equal(echo.path, '/api/items/7')
  t.equal(echo.query, '?x=1&y=%20z')
  t.equal(echo.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'peer appended to what the client sent')
  t.equal(echo.headers['x-forwarded-proto'], 'http')
  t.equal(echo.headers['x-forwarded-host'], 'public.example')
  t.equal(echo.headers.host, backends[0]!.url.slice('http://'.length), 'the upstream sees its own Host by default')
  const id = res.headers['x-request-id']
  t.match(id, /^[0-9a-f-]{36}$/, 'a request id is generated')
  t.equal(echo.headers['x-request-id'], id, 'and sent upstream')
})

t.test('a client\'s own forwarding headers are replaced, not relayed; repeated headers arrive whole', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const res = await request(`${gw.url}/`, {
    headers: ['x-forwarded-proto', 'https', 'x-forwarded-host', 'spoofed.example', 'host', 'public.example',
      'x-dup', 'one', 'x-dup', 'two', 'cookie', 'a=1', 'cookie', 'b=2', 'expect-ct', 'kept']
  })
  const echo = await res.body.json() as Echo
  t.equal(echo.headers['x-forwarded-proto'], 'http', 'the gateway\'s view, not the untrusted client\'s')
  t.equal(echo.headers['x-forwarded-host'], 'public.example', 'the Host the client sent, not its x-forwarded-host')
  t.equal(echo.headers['x-dup'], 'one, two', 'both lines of a repeated header')
  t.equal(echo.headers.cookie, 'a=1; b=2', 'cookie lines joined as Node joins them')
  t.equal(echo.headers['expect-ct'], 'kept', 'only `expect` itself is held back')
})

t.test('a client x-request-id is kept and echoed; an unusable one is replaced', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const kept = await request(`${gw.url}/`, { headers: { 'x-request-id': 'trace-abc-123' } })
  t.equal(kept.headers['x-request-id'], 'trace-abc-123')
  t.equal((await kept.body.json() as Echo).headers['x-request-id'], 'trace-abc-123')
  const replaced = await request(`${gw.url}/`, { headers: { 'x-request-id': 'x'.repeat(500) } })
  await replaced.body.dump()
  t.match(replaced.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})

t.test('PRESERVE_HOST sends the client Host upstream', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { PRESERVE_HOST: 'true' }))
  const res = await request(`${gw.url}/`, { headers: { host: 'api.example.com' } })
  t.equal((await res.body.json() as Echo).headers.host, 'api.example.com')
})

t.test('hop-by-hop headers are dropped both ways (RFC 9110 §7.6.1)', async t => {
  const upstream = createServer((req, res) => {
    res.setHeader('keep-alive', 'timeout=99')
    res.setHeader('proxy-connection', 'keep-alive')
    res.setHeader('x-private', 'listed in connection')
    res.setHeader('connection', 'x-private')
    res.setHeader('x-kept', 'yes')
    res.setHeader('content-type', 'application/json')
    if (req.url === '/health') return res.end('{}')
    res.end(JSON.stringify(req.headers))
  })
  await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { upstream.close(); upstream.closeAllConnections() })
  const gw = await startGateway(t, upstreamsEnv([{ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }]))
  const { port } = new URL(gw.url)
  // node:http, because undici refuses to send these headers at all
  const { headers, body } = await new Promise<{ headers: IncomingHttpHeaders, body: string }>((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path: '/',
      headers: { connection: 'keep-alive, x-drop-me', 'x-drop-me': '1', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-connection': 'keep-alive', 'x-keep-me': '1' }
    }, res => {
      let data = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { data += chunk })
      res.on('end', () => resolve({ headers: res.headers, body: data }))
    })
    req.on('error', reject)
    req.end()
  })
  const seen = JSON.parse(body) as IncomingHttpHeaders
  for (const name of ['x-drop-me', 'keep-alive', 'te', 'proxy-connection']) t.notOk(name in seen, `upstream did not get ${name}`)
  t.equal(seen['x-keep-me'], '1')
  t.notOk('x-private' in headers, 'a response header named in Connection is dropped')
  t.notOk('proxy-connection' in headers)
  t.not(headers['keep-alive'], 'timeout=99', 'the upstream keep-alive is not relayed')
  t.equal(headers['x-kept'], 'yes')
})

t.test('repeated response headers (set-cookie) all arrive, also on the response that closes the connection', async t => {
  const upstream = createServer((req, res) => {
    res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/'])
    res.setHeader('x-request-id', 'the-upstream-s-own')
    res.end(req.url === '/health' ? '' : 'ok')
  })
  await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { upstream.close(); upstream.closeAllConnections() })
  const gw = await startGateway(t, upstreamsEnv([{ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }], { MAX_REQUESTS_PER_SOCKET: '2' }))
  const agent = new Agent({ connections: 1 })
  t.teardown(() => agent.close())
  for (const n of [1, 2]) {
    const res = await request(`${gw.url}/cookies`, { dispatcher: agent, headers: { 'x-request-id': `mine-${n}` } })
    await res.body.dump()
    t.same(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'], `request ${n}: both cookies`)
    t.equal(res.headers['x-request-id'], `mine-${n}`, 'the gateway\'s request id, not the upstream\'s')
    t.equal(res.headers.connection, n === 2 ? 'close' : 'keep-alive')
  }
})

t.test('no response headers within UPSTREAM_TIMEOUT: 504 SLUICE_UPSTREAM_TIMEOUT, not retried', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { UPSTREAM_TIMEOUT: '200ms', PASSIVE_FAILURE_THRESHOLD: '0' }))
  const res = await request(`${gw.url}/?delay=3000`)
  t.equal(res.statusCode, 504)
  t.same(await res.body.json(), {
    statusCode: 504,
    error: 'Gateway Timeout',
    code: 'SLUICE_UPSTREAM_TIMEOUT',
    message: 'The upstream server sent no response headers within 200 ms'
  })
  const attempts = gw.app.balancer.pool.list().reduce((sum, s) => sum + s.totalRequests, 0)
  t.equal(attempts, 1, 'a response timeout is not retried')
})

t.test('a connection broken before the response: GET is retried elsewhere, POST is not', async t => {
  const good = await startBackend(t, { name: 'good' })
  const breaker = createServer((req, res) => {
    if (req.url === '/health') return res.end('ok')
    req.socket.destroy()
  })
  await new Promise<void>(resolve => breaker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { breaker.close(); breaker.closeAllConnections() })
  const breakerUrl = `http://127.0.0.1:${(breaker.address() as AddressInfo).port}`
  const gw = await startGateway(t, upstreamsEnv([{ url: breakerUrl }, good], { PASSIVE_FAILURE_THRESHOLD: '0' }))
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw.url}/`)
    await res.body.dump()
    t.equal(res.statusCode, 200, `GET ${i} answered`)
  }
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw.url}/`, { method: 'POST', body: 'data' })
    const body = await res.body.json() as { code?: string }
    statuses.push(res.statusCode)
    if (res.statusCode === 502) t.equal(body.code, 'SLUICE_UPSTREAM_UNREACHABLE')
  }
  t.same(statuses.sort(), [200, 200, 502, 502], 'a POST that may have reached the upstream is not replayed')
})

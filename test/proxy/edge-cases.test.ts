import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { request } from 'undici'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

// The fast path's answers where the upstream or the client does something unusual, checked byte
// for byte where an HTTP client would smooth it over.

interface Teardown { teardown: (fn: () => unknown) => void }

/** An upstream whose behaviour per path is given; the health check path always answers 200. Records the targets it saw. */
async function upstreamWith (t: Teardown, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string, seen: string[] }> {
  const seen: string[] = []
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.end()
      return
    }
    seen.push(`${req.method as string} ${req.url as string}`)
    handle(req, res)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close(); server.closeAllConnections() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

/** Sends raw bytes and collects everything until the gateway closes the connection or `ms` pass. */
async function raw (gw: Gateway, text: string, ms = 2000): Promise<string> {
  const socket: Socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  let data = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { data += chunk })
  socket.on('error', () => {})
  socket.write(text)
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => { socket.destroy(); resolve() }, ms)
    socket.once('close', () => { clearTimeout(timer); resolve() })
  })
  return data
}

async function statusCodes (gw: Gateway): Promise<Record<string, number>> {
  const res = await request(`${gw.adminUrl}/admin/status`)
  return (await res.body.json() as { statusCodes: Record<string, number> }).statusCodes
}

t.test('a 304 with a content-length (RFC 9110 allows it) reaches the client as a 304 and is counted as one', async t => {
  const upstream = await upstreamWith(t, (_req, res) => {
    res.writeHead(304, { etag: '"v1"', 'content-length': '5' })
    res.end()
  })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  const res = await request(`${gw.url}/cached`, { headers: { 'if-none-match': '"v1"' } })
  await res.body.dump()
  t.equal(res.statusCode, 304)
  t.equal(res.headers.etag, '"v1"')
  await waitFor(async () => (await statusCodes(gw))['304'] === 1, 'the 304 to be counted')
  t.equal((await statusCodes(gw))['499'], undefined, 'not as a client that left')
})

t.test('an upstream that sends its head and closes before any body byte: 502, counted as 502, server failure noted', async t => {
  const upstream = await upstreamWith(t, (req, res) => {
    res.writeHead(200, { 'content-length': '100' })
    res.flushHeaders()
    setTimeout(() => req.socket.destroy(), 50)
  })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', RETRIES: '2' }))
  const res = await request(`${gw.url}/headless`)
  t.equal(res.statusCode, 502)
  t.match(await res.body.json(), { code: 'SLUICE_UPSTREAM_UNREACHABLE' })
  t.equal(upstream.seen.length, 1, 'an answer that had started is not retried')
  await waitFor(async () => (await statusCodes(gw))['502'] === 1, 'the 502 to be counted')
  t.equal(gw.app.balancer.pool.list()[0]?.inFlight, 0)
})

t.test('an upstream that breaks off mid-body: the client sees a cut connection, counted as 502 not 499', async t => {
  const upstream = await upstreamWith(t, (req, res) => {
    res.writeHead(200, { 'content-length': '100000' })
    res.write('x'.repeat(1000))
    setTimeout(() => req.socket.destroy(), 50)
  })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  const res = await request(`${gw.url}/partial`)
  t.equal(res.statusCode, 200, 'the head had gone out')
  await t.rejects(res.body.text(), 'the body is cut')
  await waitFor(async () => (await statusCodes(gw))['502'] === 1, 'the break to be counted as 502')
  t.equal((await statusCodes(gw))['499'], undefined)
})

t.test('an upstream\'s own rate-limit headers give way to the gateway\'s; every Connection line counts', async t => {
  const upstream = await upstreamWith(t, (_req, res) => {
    res.setHeader('x-ratelimit-limit', '5')
    res.setHeader('x-ratelimit-remaining', '4')
    res.setHeader('x-a', 'secret')
    res.setHeader('x-b', 'kept')
    res.setHeader('connection', ['x-a', 'keep-alive'])
    res.end('ok')
  })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT_MAX: '100' }))
  const head = (await raw(gw, 'GET /limited HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')).split('\r\n\r\n')[0] as string
  const lines = head.toLowerCase().split('\r\n')
  t.same(lines.filter(l => l.startsWith('x-ratelimit-limit:')), ['x-ratelimit-limit: 100'], 'one limit, the gateway\'s')
  t.same(lines.filter(l => l.startsWith('x-ratelimit-remaining:')), ['x-ratelimit-remaining: 99'])
  t.notOk(lines.some(l => l.startsWith('x-a:')), 'a header named on the first of two Connection lines is dropped')
  t.ok(lines.includes('x-b: kept'))

  const unlimited = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  const res = await request(`${unlimited.url}/own`)
  await res.body.dump()
  t.equal(res.headers['x-ratelimit-limit'], '5', 'without the gateway\'s limiter the upstream\'s headers pass')
})

t.test('a header the client names in Connection after a tab is not forwarded (RFC 9110 §5.6.1 whitespace)', async t => {
  const upstream = await upstreamWith(t, (req, res) => { res.end(JSON.stringify(req.headers)) })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  const reply = await raw(gw, 'GET /h HTTP/1.1\r\nHost: gw\r\nConnection: close,\tX-Internal-Auth\r\nX-Internal-Auth: secret\r\nX-Other: kept\r\n\r\n')
  const seen = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as Record<string, string>
  t.equal(seen['x-internal-auth'], undefined, 'dropped')
  t.equal(seen['x-other'], 'kept')
})

t.test('request targets: absolute-form is forwarded in origin form, asterisk-form is refused, any method is proxied', async t => {
  const upstream = await upstreamWith(t, (req, res) => { res.end(`${req.method as string} ${req.url as string}`) })
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  const absolute = await raw(gw, 'GET http://example.test/abs/path?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')
  t.match(absolute, /^HTTP\/1\.1 200 /)
  t.match(absolute, /GET \/abs\/path\?q=1$/, 'the upstream got the origin form')
  const bare = await raw(gw, 'GET http://example.test HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')
  t.match(bare, /GET \/$/, 'an absolute URL without a path asks for /')
  const own = await raw(gw, 'GET http://example.test/admin/servers HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')
  t.match(own, /^HTTP\/1\.1 404 /, 'a gateway path in absolute form is not proxied')
  t.match(own, /SLUICE_NOT_FOUND/)
  const asterisk = await raw(gw, 'OPTIONS * HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')
  t.match(asterisk, /^HTTP\/1\.1 400 /)
  t.match(asterisk, /SLUICE_BAD_REQUEST/)
  const propfind = await request(`${gw.url}/dav`, { method: 'PROPFIND' })
  t.equal(propfind.statusCode, 200)
  t.equal(await propfind.body.text(), 'PROPFIND /dav', 'methods beyond the usual ones are proxied as sent')
  t.same(upstream.seen, ['GET /abs/path?q=1', 'GET /', 'PROPFIND /dav'], 'nothing else reached the upstream')
})

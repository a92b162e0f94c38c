import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { UpstreamAgent, type ResponseHandler, type UpstreamRequest } from '../../src/proxy/h1/agent.js'

// The gateway's own HTTP/1.1 upstream client, against real servers on 127.0.0.1.

interface Outcome {
  heads: Array<{ status: number, headers: string[] }>
  body: string
  error?: Error & { code?: string }
}

type Teardown = { teardown: (fn: () => unknown) => void }

/** Dispatches `request` and resolves when it completed or failed; `tweak` may replace handler parts. */
async function send (agent: UpstreamAgent, origin: string, request: Partial<UpstreamRequest>,
  tweak: (handler: ResponseHandler, outcome: Outcome) => Partial<ResponseHandler> = () => ({})): Promise<Outcome> {
  return await new Promise(resolve => {
    const outcome: Outcome = { heads: [], body: '' }
    const handler: ResponseHandler = {
      onConnect: () => {},
      onHeaders: (status, headers) => { outcome.heads.push({ status, headers }); return true },
      onData: chunk => { outcome.body += chunk.toString('latin1'); return true },
      onComplete: () => { resolve(outcome) },
      onError: error => { outcome.error = error; resolve(outcome) }
    }
    Object.assign(handler, tweak({ ...handler }, outcome))
    agent.dispatch(origin, { path: '/', method: 'GET', headers: [], body: null, ...request }, handler)
  })
}

async function listen (t: Teardown, server: Server): Promise<string> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.()
    await new Promise(resolve => server.close(resolve))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** An HTTP server that counts the connections it accepted. */
async function httpUpstream (t: Teardown, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ origin: string, connections: () => number }> {
  let connections = 0
  const server = createServer(handle)
  server.on('connection', () => { connections++ })
  return { origin: await listen(t, server), connections: () => connections }
}

/** A TCP server that answers each connection's first bytes with `reply` (raw), for responses Node would not send. */
async function rawUpstream (t: Teardown, reply: (socket: Socket) => void): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createTcpServer(socket => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('data', () => { reply(socket) })
  })
  const origin = await listen(t, server)
  // after listen's: teardowns run last first, and the server's close waits for these sockets
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  return origin
}

function newAgent (t: Teardown, options: Partial<ConstructorParameters<typeof UpstreamAgent>[0]> = {}): UpstreamAgent {
  const agent = new UpstreamAgent({ connections: 16, connectTimeoutMs: 2000, timeoutMs: 5000, ...options })
  t.teardown(() => { agent.destroy() })
  return agent
}

/** Waits (≤ 1 s by default) for closed connections to leave the pool: a socket's 'close' comes after the error or end that caused it. */
async function openConnections (agent: UpstreamAgent, origin: string, expected: number, withinMs = 1000): Promise<number> {
  for (let i = 0; i < withinMs / 10 && agent.connections(origin) !== expected; i++) await new Promise(resolve => setTimeout(resolve, 10))
  return agent.connections(origin)
}

const header = (outcome: Outcome, name: string): string | undefined => {
  const headers = outcome.heads.at(-1)?.headers ?? []
  for (let i = 0; i < headers.length; i += 2) if (headers[i]?.toLowerCase() === name) return headers[i + 1]
  return undefined
}

t.test('keeps one connection alive across requests and sends the request as given', async t => {
  const seen: Array<{ method?: string, url?: string, host?: string, custom?: string | string[], length?: string }> = []
  const upstream = await httpUpstream(t, (req, res) => {
    seen.push({ method: req.method, url: req.url, host: req.headers.host, custom: req.headers['x-custom'], length: req.headers['content-length'] })
    res.end(`hello ${req.url ?? ''}`)
  })
  const agent = newAgent(t)
  const first = await send(agent, upstream.origin, { path: '/a?b=1', headers: ['x-custom', 'one'] })
  t.equal(first.heads[0]?.status, 200)
  t.equal(first.body, 'hello /a?b=1')
  const second = await send(agent, upstream.origin, { method: 'DELETE', path: '/c' })
  t.equal(second.body, 'hello /c')
  const post = await send(agent, upstream.origin, { method: 'POST', path: '/d' })
  t.equal(post.heads[0]?.status, 200)
  t.equal(upstream.connections(), 1, 'one connection for three requests')
  t.same(seen[0], { method: 'GET', url: '/a?b=1', host: new URL(upstream.origin).host, custom: 'one', length: undefined }, 'host added when the request has none')
  t.equal(seen[2]?.length, '0', 'an empty POST says content-length: 0')
  const named = await send(agent, upstream.origin, { headers: ['host', 'public.example', 'x-custom', ['a', 'b']] })
  t.equal(named.heads[0]?.status, 200)
  t.equal(seen[3]?.host, 'public.example', 'a host header of the request is kept')
  t.equal(seen[3]?.custom, 'a, b', 'a list value goes as one line each')
})

t.test('never more connections than allowed: the rest wait their turn', async t => {
  let inFlight = 0
  let most = 0
  const upstream = await httpUpstream(t, (_req, res) => {
    most = Math.max(most, ++inFlight)
    setTimeout(() => { inFlight--; res.end('ok') }, 30)
  })
  const agent = newAgent(t, { connections: 2 })
  const outcomes = await Promise.all(Array.from({ length: 6 }, async () => await send(agent, upstream.origin, {})))
  t.same(outcomes.map(o => o.body), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'])
  t.equal(upstream.connections(), 2)
  t.equal(most, 2)
  t.equal(agent.connections(upstream.origin), 2, 'both kept alive')
})

t.test('request bodies: raw with a content-length, chunked without, the upstream reads them whole', async t => {
  const upstream = await httpUpstream(t, (req, res) => {
    let body = ''
    req.setEncoding('latin1').on('data', (chunk: string) => { body += chunk })
    req.on('end', () => { res.end(`${req.headers['transfer-encoding'] ?? 'length ' + String(req.headers['content-length'])}:${body}`) })
  })
  const agent = newAgent(t)
  const sized = await send(agent, upstream.origin, { method: 'PUT', headers: ['content-length', '11'], body: Readable.from([Buffer.from('hello '), Buffer.from('world')]) })
  t.equal(sized.body, 'length 11:hello world')
  const parts = Array.from({ length: 50 }, (_, i) => Buffer.from(`part${i};`))
  const chunked = await send(agent, upstream.origin, { method: 'POST', body: Readable.from(parts) })
  t.equal(chunked.body, `chunked:${parts.join('')}`)
  t.equal(upstream.connections(), 1, 'the connection carried both')
})

t.test('a body that fails before its first byte sends the upstream nothing', async t => {
  let requests = 0
  const upstream = await httpUpstream(t, (_req, res) => { requests++; res.end() })
  const failing = new Readable({ read () { this.destroy(new Error('the client sent a malformed chunk')) } })
  const outcome = await send(newAgent(t), upstream.origin, { method: 'POST', body: failing })
  t.match(outcome.error?.message, /malformed chunk/)
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(requests, 0, 'no request reached the upstream')
})

t.test('a client slow to send its body is not taken for a slow upstream', async t => {
  const upstream = await httpUpstream(t, (req, res) => {
    let body = ''
    req.setEncoding('latin1').on('data', (chunk: string) => { body += chunk })
    req.on('end', () => { res.end(`got ${body}`) })
  })
  let step = 0
  // the second half comes 3 timeouts after the first
  const slow = new Readable({
    read () {
      step++
      if (step === 1) this.push('first,')
      else if (step === 2) setTimeout(() => { this.push('second'); this.push(null) }, 300)
    }
  })
  const outcome = await send(newAgent(t, { timeoutMs: 100 }), upstream.origin, { method: 'POST', body: slow })
  t.equal(outcome.error, undefined)
  t.equal(outcome.body, 'got first,second')
})

t.test('response framing: chunked, until close, HEAD, 204, informational heads', async t => {
  const upstream = await httpUpstream(t, (req, res) => {
    if (req.url === '/chunked') {
      res.write('one,')
      setTimeout(() => { res.end('two') }, 5)
    } else if (req.url === '/head') {
      res.setHeader('content-length', '100')
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(100))
    } else if (req.url === '/none') {
      res.writeHead(204).end()
    } else if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</a.css>; rel=preload' })
      res.end('after hints')
    }
  })
  const agent = newAgent(t)
  t.equal((await send(agent, upstream.origin, { path: '/chunked' })).body, 'one,two')
  const head = await send(agent, upstream.origin, { method: 'HEAD', path: '/head' })
  t.equal(head.heads[0]?.status, 200)
  t.equal(head.body, '', 'no body read after HEAD')
  t.equal((await send(agent, upstream.origin, { path: '/head' })).body.length, 100, 'the connection is still in step after HEAD')
  t.equal((await send(agent, upstream.origin, { path: '/none' })).heads[0]?.status, 204)
  const hinted = await send(agent, upstream.origin, { path: '/hints' })
  t.same(hinted.heads.map(h => h.status), [103, 200], 'the 103 is reported, then the response')
  t.equal(hinted.body, 'after hints')
  t.equal(upstream.connections(), 1)

  const trailing = await rawUpstream(t, socket => {
    const response = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-trailer: t\r\n\r\n'
    socket.write(response)
    socket.once('data', () => { socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-second: 2\r\n\r\nok') })
  })
  const withTrailer = await send(agent, trailing, {})
  t.equal(withTrailer.body, 'abc')
  const next = await send(agent, trailing, {})
  t.same(next.heads[0]?.headers, ['content-length', '2', 'x-second', '2'], 'the trailer of the response before is not part of the next head')
  t.equal(next.body, 'ok')

  const untilClose = await rawUpstream(t, socket => { socket.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nread until the end') })
  const closed = await send(agent, untilClose, {})
  t.equal(closed.body, 'read until the end')
  t.equal(closed.error, undefined)
  t.equal(await openConnections(agent, untilClose, 0), 0, 'not kept after connection: close')
})

t.test('a response head of more than 32 lines arrives whole', async t => {
  const upstream = await httpUpstream(t, (_req, res) => {
    for (let i = 0; i < 40; i++) res.setHeader(`x-h${i}`, String(i))
    res.end('ok')
  })
  const outcome = await send(newAgent(t), upstream.origin, {})
  t.equal(header(outcome, 'x-h0'), '0')
  t.equal(header(outcome, 'x-h39'), '39')
  t.equal(outcome.body, 'ok')
})

t.test('failures carry the codes the retry and error paths read', async t => {
  const agent = newAgent(t, { timeoutMs: 150, connectTimeoutMs: 150 })
  const silentHttp = await httpUpstream(t, () => { /* never answers */ })
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as AddressInfo).port
  await new Promise(resolve => closed.close(resolve))
  t.equal((await send(agent, `http://127.0.0.1:${deadPort}`, {})).error?.code, 'ECONNREFUSED')

  t.equal((await send(agent, silentHttp.origin, {})).error?.code, 'UPSTREAM_HEADERS_TIMEOUT', 'no head in time')

  const stalls = await rawUpstream(t, socket => { socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc') })
  const stalled = await send(agent, stalls, {})
  t.equal(stalled.error?.code, 'UPSTREAM_BODY_TIMEOUT', 'the body stopped coming')
  t.equal(stalled.body, 'abc', 'what came was delivered')

  const cut = await rawUpstream(t, socket => { socket.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc') })
  t.equal((await send(agent, cut, {})).error?.code, 'UPSTREAM_CLOSED', 'closed before the body ended')

  const garbage = await rawUpstream(t, socket => { socket.write('HTTP/1.1 2x0 nonsense\r\n\r\n') })
  t.equal((await send(agent, garbage, {})).error?.code, 'UPSTREAM_BAD_RESPONSE')
  const switching = await rawUpstream(t, socket => { socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n') })
  const switched = await send(agent, switching, {})
  t.equal(switched.error?.code, 'UPSTREAM_BAD_RESPONSE', 'a 101 nobody asked for')
  t.same(switched.heads, [], 'reported to nobody')

  // a second response after the first, unasked: the connection is dropped, not reused
  let accepted = 0
  const chatty = await rawUpstream(t, socket => {
    accepted++
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    setTimeout(() => { socket.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nextra!') }, 50)
    socket.on('data', () => { socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok') })
  })
  t.equal((await send(agent, chatty, {})).body, 'ok')
  t.equal(await openConnections(agent, chatty, 0), 0, 'dropped once it spoke out of turn')
  t.equal((await send(agent, chatty, {})).body, 'ok', 'the next request gets a fresh connection')
  t.equal(accepted, 2)

  // TLS to a server that never answers the handshake: the connection is never made
  const silent = await rawUpstream(t, () => {})
  t.equal((await send(agent, silent.replace('http:', 'https:'), {})).error?.code, 'UPSTREAM_CONNECT_TIMEOUT')
})

t.test('https upstreams are reached over TLS and their certificate is verified', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
  let connections = 0
  const server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, socket => { socket.end() })
  server.on('connection', () => { connections++ })
  const origin = (await listen(t, server)).replace('http:', 'https:')
  const outcome = await send(newAgent(t), origin, {})
  t.equal(outcome.error?.code, 'DEPTH_ZERO_SELF_SIGNED_CERT', 'a self-signed certificate is refused, as undici refused it')
  t.equal(connections, 1, 'it connected to the TLS port')
})

t.test('abort: a waiting request leaves the queue, a running one closes its connection', async t => {
  const upstream = await httpUpstream(t, () => { /* never answers */ })
  const agent = newAgent(t, { connections: 1 })
  const running = send(agent, upstream.origin, {}, () => ({
    onConnect: abort => { setTimeout(() => { abort() }, 50) }
  }))
  const waiting = send(agent, upstream.origin, {}, () => ({
    onConnect: abort => { setTimeout(() => { abort() }, 20) }
  }))
  t.equal((await waiting).error?.code, 'UPSTREAM_ABORTED', 'the waiting one fails at once')
  t.equal((await running).error?.code, 'UPSTREAM_ABORTED')
  t.equal(await openConnections(agent, upstream.origin, 0), 0, 'the running one took its connection with it')
})

t.test('back-pressure: a paused response reads nothing more until resumed', async t => {
  const size = 2 * 1024 * 1024
  const upstream = await httpUpstream(t, (_req, res) => { res.end(Buffer.alloc(size, 97)) })
  let received = 0
  let resumed = false
  const outcome = await send(newAgent(t), upstream.origin, {}, handler => {
    let resume: () => void = () => {}
    return {
      onHeaders: (status, headers, go) => { resume = go; return handler.onHeaders(status, headers, go) },
      onData: chunk => {
        received += chunk.length
        if (!resumed && received >= 64 * 1024) {
          resumed = true
          const at = received
          setTimeout(() => {
            t.ok(received - at < 256 * 1024, `paused: ${received - at} bytes after the pause (one read at most)`)
            resume()
          }, 50)
          return false
        }
        return true
      }
    }
  })
  t.equal(outcome.error, undefined)
  t.equal(received, size, 'all of it after the resume')
})

t.test('an upstream keep-alive timeout is honoured: a connection is not reused past it', async t => {
  const upstream = await httpUpstream(t, (_req, res) => {
    res.setHeader('keep-alive', 'timeout=1')
    res.end('ok')
  })
  const agent = newAgent(t)
  await send(agent, upstream.origin, {})
  await send(agent, upstream.origin, {})
  t.equal(upstream.connections(), 2, 'timeout=1 leaves no safe time to reuse it (1 s margin)')
})

t.test('idle connections are closed once the upstream would no longer keep them', async t => {
  const upstream = await httpUpstream(t, (_req, res) => {
    res.setHeader('keep-alive', 'timeout=2')
    res.end('ok')
  })
  const agent = newAgent(t)
  await send(agent, upstream.origin, {})
  t.equal(agent.connections(upstream.origin), 1, 'kept alive at first')
  // timeout=2 leaves 1 s of reuse; the sweep runs every second
  t.equal(await openConnections(agent, upstream.origin, 0, 3500), 0, 'closed by the gateway, not left to the upstream')
})

import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { failures, runLoad, summary } from '../helpers/load.js'
import { spawnServer } from '../helpers/process.js'
import { freePort } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

// Scenario 5: clients that are slow, idle, oversized, malformed or that leave half-way must neither
// hold the gateway's resources nor leak its counters, and must not cost other clients their answers.

interface Teardown { teardown: (fn: () => unknown) => void }

const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// An upstream that counts what it is sent: it consumes every body and answers {"bytes":n}, so a
// 1 GiB upload is not echoed back. GET /stream streams 16 MiB slowly, GET /slow answers after
// 1.5 s (both for clients that leave mid-way). It records every path it saw, and how many of its
// requests are still open (for "the upstream side was released too").

interface CountingUpstream {
  url: string
  /** Pathnames of every request that reached it (health checks included). */
  seen: string[]
  /** Requests whose response has not closed yet. */
  open: () => number
  /** Body bytes of the last request that completed. */
  lastBytes: () => number
}

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 's')

async function startCountingUpstream (t: Teardown): Promise<CountingUpstream> {
  const seen: string[] = []
  let open = 0
  let lastBytes = -1
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://upstream').pathname
    seen.push(path)
    open++
    res.once('close', () => { open-- })
    if (path === '/stream') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(256 * STREAM_CHUNK.length) })
      let sent = 0
      const timer = setInterval(() => {
        if (sent++ === 255) clearInterval(timer)
        res.write(STREAM_CHUNK)
        if (sent === 256) res.end()
      }, 10)
      res.once('close', () => clearInterval(timer))
      req.resume()
      return
    }
    if (path === '/early') {
      // answers before the upload has arrived, and keeps its body open (a server streaming progress)
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('early')
      const timer = setTimeout(() => res.end(), 5000)
      res.once('close', () => clearTimeout(timer))
      req.resume()
      return
    }
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.once('end', () => {
      lastBytes = bytes
      const answer = (): void => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ bytes })) }
      if (path === '/slow') {
        const timer = setTimeout(answer, 1500)
        res.once('close', () => clearTimeout(timer))
      } else {
        answer()
      }
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    const closed = new Promise(resolve => server.close(resolve))
    server.closeAllConnections()
    await closed
  })
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, seen, open: () => open, lastBytes: () => lastBytes }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over node:net: what a misbehaving client really sends, byte for byte.

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** The body of a chunked message at the start of `rest`, and its length on the wire; null while incomplete. */
function dechunk (rest: string): { body: string, length: number } | null {
  let body = ''
  let at = 0
  for (;;) {
    const lineEnd = rest.indexOf('\r\n', at)
    if (lineEnd === -1) return null
    const size = parseInt(rest.slice(at, lineEnd), 16)
    if (Number.isNaN(size)) throw new Error(`bad chunk size in ${JSON.stringify(rest.slice(at, lineEnd))}`)
    const chunkEnd = lineEnd + 2 + size + 2
    if (rest.length < chunkEnd) return null
    if (size === 0) return { body, length: chunkEnd }
    body += rest.slice(lineEnd + 2, lineEnd + 2 + size)
    at = chunkEnd
  }
}

/** The complete responses at the start of `data`. */
function parseResponses (data: string): RawResponse[] {
  const responses: RawResponse[] = []
  let rest = data
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return responses
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const status = Number(statusLine.split(' ')[1])
    rest = rest.slice(end + 4)
    if (headers['transfer-encoding'] === 'chunked') {
      const message = dechunk(rest)
      if (message === null) return responses
      responses.push({ status, headers, body: message.body })
      rest = rest.slice(message.length)
      continue
    }
    const length = Number(headers['content-length'] ?? 0)
    if (rest.length < length) return responses
    responses.push({ status, headers, body: rest.slice(0, length) })
    rest = rest.slice(length)
  }
}

/** A raw client connection that records what it receives and when the gateway closed it. */
class RawClient {
  data = ''
  received = 0
  /** ms from connecting to the gateway closing the connection; null while open (or when we closed it). */
  closedAfterMs: number | null = null
  readonly closed: Promise<void>
  readonly #socket: Socket
  readonly #opened = performance.now()
  #timer: NodeJS.Timeout | undefined
  #destroyedByUs = false

  constructor (t: Teardown, url: string) {
    const { port } = new URL(url)
    this.#socket = connect(Number(port), '127.0.0.1')
    this.#socket.setEncoding('latin1')
    this.#socket.on('data', (chunk: string) => {
      this.received += chunk.length
      // keep only the head of a large body: the tests read statuses, not megabytes
      if (this.data.length < 1_000_000) this.data += chunk
    })
    this.#socket.on('error', () => {})
    this.closed = new Promise(resolve => this.#socket.once('close', () => {
      clearInterval(this.#timer)
      if (!this.#destroyedByUs) this.closedAfterMs = performance.now() - this.#opened
      resolve()
    }))
    t.teardown(() => { this.destroy() })
  }

  get open (): boolean {
    return !this.#socket.destroyed
  }

  write (text: string | Buffer): void {
    if (!this.#socket.destroyed) this.#socket.write(text)
  }

  /** Sends `piece` every `everyMs` for as long as the connection is open. */
  dribble (piece: string, everyMs: number): void {
    this.#timer = setInterval(() => { this.write(piece) }, everyMs)
  }

  responses (): RawResponse[] {
    return parseResponses(this.data)
  }

  async waitResponses (n: number): Promise<RawResponse[]> {
    await waitFor(() => this.responses().length >= n || !this.open, `${n} response(s)`)
    return this.responses()
  }

  /** Waits for the gateway to close the connection, at most `timeoutMs`; false if it did not. */
  async closedWithin (timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const closed = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), timeoutMs) })
    ])
    clearTimeout(timer)
    return closed
  }

  /** Leaves abruptly, as a crashed or impatient client would. */
  destroy (): void {
    clearInterval(this.#timer)
    if (this.#socket.destroyed) return
    this.#destroyedByUs = true
    this.#socket.destroy()
  }
}

function errorBody (response: RawResponse | undefined): { statusCode?: number, code?: string } {
  try {
    return JSON.parse(response?.body ?? '') as { statusCode?: number, code?: string }
  } catch {
    return {}
  }
}

// ---------------------------------------------------------------------------------------------
// What the gateway says about itself.

async function metricsText (gw: Gateway): Promise<string> {
  const res = await request(`${gw.adminUrl}/metrics`)
  return res.body.text()
}

/** Sum of every sample of `name` whose labels contain `labels` (e.g. `reason="timeout"`). */
function sample (text: string, name: string, labels = ''): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (labels !== '' && !line.includes(labels)) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

async function clientErrors (gw: Gateway, reason: string): Promise<number> {
  return sample(await metricsText(gw), 'sluice_client_errors_total', `reason="${reason}"`)
}

interface Status { requests: { total: number }, statusCodes: Record<string, number>, servers: Array<{ state: string, inFlight: number, failedRequests: number }> }

async function adminStatus (gw: Gateway): Promise<Status> {
  const res = await request(`${gw.adminUrl}/admin/status`)
  return await res.body.json() as Status
}

/** Pool and metrics agree that nothing is in flight any more. */
async function assertNothingInFlight (t: Test, gw: Gateway): Promise<void> {
  const pool = gw.app.balancer.pool
  await waitFor(() => pool.list().every(s => s.inFlight === 0), 'every upstream in-flight back to 0')
  t.same(pool.list().map(s => s.inFlight), pool.list().map(() => 0), 'pool: every upstream has 0 in flight (never negative)')
  const text = await metricsText(gw)
  const gauges = text.split('\n').filter(l => l.startsWith('sluice_upstream_in_flight{'))
  t.equal(gauges.length, pool.list().length, 'one in-flight gauge per upstream')
  t.equal(gauges.filter(l => !l.endsWith(' 0')).length, 0, 'sluice_upstream_in_flight is 0 for every upstream')
}

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: gateway\r\n${extra}\r\n`

// ---------------------------------------------------------------------------------------------
// a) slow clients

t.test('slowloris: 20 clients dribbling headers get 408 and are cut after HEADERS_TIMEOUT while others are served', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', HEADERS_TIMEOUT: '1s', REQUEST_TIMEOUT: '2s' }))
  const timeoutsBefore = await clientErrors(gw, 'timeout')

  const attackers = Array.from({ length: 20 }, () => {
    const client = new RawClient(t, gw.url)
    // a header line every 200 ms, never the blank line that ends the head
    client.write('GET /slowloris HTTP/1.1\r\nHost: gateway\r\n')
    client.dribble('X-Dribble: still-here\r\n', 200)
    return client
  })
  await sleep(200)
  // ordinary clients during the attack, over keep-alive connections
  const load = await runLoad({ url: gw.url, concurrency: 4, durationMs: 700, next: () => ({ path: '/normal' }) })
  const stillAttacking = attackers.filter(a => a.open).length
  const closed = await Promise.all(attackers.map(async a => a.closedWithin(5000)))

  t.equal(stillAttacking, 20, 'the load ran while all 20 slow clients were connected')
  t.ok(load.completed > 0, 'ordinary clients were served during the attack')
  t.equal(failures(load), 0, 'no ordinary request failed')
  t.same(closed, attackers.map(() => true), 'every slow client was disconnected by the gateway')
  const times = attackers.map(a => a.closedAfterMs ?? Infinity)
  for (const [i, a] of attackers.entries()) {
    const [response] = a.responses()
    t.equal(response?.status, 408, `slow client ${i}: 408`)
    t.equal(errorBody(response).code, 'SLUICE_REQUEST_TIMEOUT', `slow client ${i}: SLUICE body`)
    t.equal(response?.headers.connection, 'close')
  }
  // the guard (1 s), checked every 100 ms: not before the timeout, and well within 3 s
  t.ok(Math.min(...times) >= 900, `no slow client cut before HEADERS_TIMEOUT (earliest ${Math.round(Math.min(...times))} ms)`)
  t.ok(Math.max(...times) < 3000, `every slow client cut within HEADERS_TIMEOUT + margin (latest ${Math.round(Math.max(...times))} ms)`)
  t.notOk(upstream.seen.includes('/slowloris'), 'the upstream never saw a slow head')
  t.equal(await clientErrors(gw, 'timeout') - timeoutsBefore, 20, 'sluice_client_errors_total{reason="timeout"} counted all 20')
  t.comment(`FIGURE 5a slowloris: 20 sockets dribbling a header line every 200 ms, HEADERS_TIMEOUT=1s: all answered 408 and closed after ${Math.round(Math.min(...times))}..${Math.round(Math.max(...times))} ms; ` +
    `meanwhile ${summary(load)}`)
})

t.test('slow body: a body dribbled past REQUEST_TIMEOUT is cut with 408, and nothing is left in flight', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', HEADERS_TIMEOUT: '1s', REQUEST_TIMEOUT: '2s', HEALTH_CHECK_INTERVAL: '0' }))
  const before = await adminStatus(gw)
  const timeoutsBefore = await clientErrors(gw, 'timeout')

  const client = new RawClient(t, gw.url)
  client.write('POST /slow-body HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n')
  client.dribble('a', 200)
  const closed = await client.closedWithin(6000)

  t.ok(closed, 'the gateway closed the connection')
  t.ok((client.closedAfterMs ?? Infinity) < 4000, `within REQUEST_TIMEOUT + margin (${Math.round(client.closedAfterMs ?? -1)} ms)`)
  t.ok((client.closedAfterMs ?? 0) >= 1800, 'not before REQUEST_TIMEOUT')
  const [response] = client.responses()
  t.equal(response?.status, 408)
  t.equal(errorBody(response).code, 'SLUICE_REQUEST_TIMEOUT')
  t.equal(await clientErrors(gw, 'timeout') - timeoutsBefore, 1, 'counted as a client timeout')

  await assertNothingInFlight(t, gw)
  await waitFor(() => upstream.open() === 0, 'the upstream request to be closed')
  const after = await adminStatus(gw)
  t.equal(after.requests.total - before.requests.total, 1, 'the cut request is counted once in the request metrics')
  t.equal((after.statusCodes['499'] ?? 0) - (before.statusCodes['499'] ?? 0), 1, '... as 499 (its connection closed before a response)')
  t.equal(after.servers[0]?.state, 'healthy', 'a slow client does not get the upstream ejected')
  t.equal(after.servers[0]?.failedRequests, 0, 'nor counted as an upstream failure')
  t.comment(`FIGURE 5a slow body: content-length 100 dribbled at 1 byte/200 ms, REQUEST_TIMEOUT=2s: 408 and closed after ${Math.round(client.closedAfterMs ?? -1)} ms; in-flight back to 0`)
})

t.test('slow body under a response already started: REQUEST_TIMEOUT closes the connection without a second status line', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', HEADERS_TIMEOUT: '500ms', REQUEST_TIMEOUT: '1s', HEALTH_CHECK_INTERVAL: '0' }))
  const client = new RawClient(t, gw.url)
  client.write('POST /early HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/octet-stream\r\nContent-Length: 100\r\n\r\n')
  client.dribble('a', 100)
  await waitFor(() => client.data.includes('early'), 'the upstream\'s early answer')
  t.ok(await client.closedWithin(4000), 'the gateway closed the connection at REQUEST_TIMEOUT')
  t.match(client.data, /^HTTP\/1\.1 200 /, 'the upstream\'s answer started the response')
  t.notMatch(client.data, /408|SLUICE_REQUEST_TIMEOUT/, 'no 408 written into the middle of it')
  await assertNothingInFlight(t, gw)
})

// ---------------------------------------------------------------------------------------------
// b) connections held open

// Node 20 closes an idle connection KEEP_ALIVE_TIMEOUT + 1 s after its last response (an internal
// buffer against races with clients that reuse a socket just as it expires)
const NODE_KEEP_ALIVE_BUFFER_MS = 1000

t.test('keep-alive: an idle client connection is closed after KEEP_ALIVE_TIMEOUT', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', KEEP_ALIVE_TIMEOUT: '500ms' }))
  const client = new RawClient(t, gw.url)
  client.write(GET('/idle'))
  const [response] = await client.waitResponses(1)
  const answeredAt = performance.now()
  t.equal(response?.status, 200)
  t.equal(response?.headers.connection, 'keep-alive', 'the connection is kept open at first')
  const closed = await client.closedWithin(5000)
  const idleMs = performance.now() - answeredAt
  t.ok(closed, 'the gateway closed the idle connection')
  t.ok(idleMs >= 400 && idleMs < 500 + NODE_KEEP_ALIVE_BUFFER_MS + 1500, `after about KEEP_ALIVE_TIMEOUT + Node's 1 s (idle ${Math.round(idleMs)} ms)`)
  t.comment(`FIGURE 5b keep-alive: KEEP_ALIVE_TIMEOUT=500ms: idle connection closed ${Math.round(idleMs)} ms after its last response`)
})

t.test('MAX_REQUESTS_PER_SOCKET=3: the 3rd response says connection: close and the gateway closes the connection after it', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', MAX_REQUESTS_PER_SOCKET: '3' }))
  const client = new RawClient(t, gw.url)
  for (let n = 1; n <= 3; n++) {
    client.write(GET(`/request-${n}`))
    await client.waitResponses(n)
  }
  const thirdAt = performance.now()
  const responses = client.responses()
  t.same(responses.map(r => r.status), [200, 200, 200], 'three answers on one connection')
  t.same(responses.map(r => r.headers.connection), ['keep-alive', 'keep-alive', 'close'])
  // nginx's keepalive_requests, not Node's maxRequestsPerSocket (which keeps the socket and answers
  // a client that ignores the header with 503s): the socket ends, well before KEEP_ALIVE_TIMEOUT
  const closed = await client.closedWithin(2000)
  const closedAfterMs = performance.now() - thirdAt
  t.ok(closed, `the gateway closed the connection (${Math.round(closedAfterMs)} ms after the 3rd response)`)
  t.equal(client.responses().length, 3, 'no 503 or other answer after the 3rd')
  t.same(upstream.seen.filter(p => p.startsWith('/request-')), ['/request-1', '/request-2', '/request-3'], 'the upstream saw the three')
  t.comment(`FIGURE 5b max requests: MAX_REQUESTS_PER_SOCKET=3: 3rd response connection: close; socket closed ${Math.round(closedAfterMs)} ms after it`)
})

t.test('MAX_REQUESTS_PER_SOCKET counts the 429s and the gateway\'s own routes too', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT_MAX: '1', RATE_LIMIT_WINDOW: '1h', MAX_REQUESTS_PER_SOCKET: '3' }))
  const client = new RawClient(t, gw.url)
  for (const [n, path] of [[1, '/proxied'], [2, '/limited'], [3, '/healthz']] as const) {
    client.write(GET(path))
    await client.waitResponses(n)
  }
  t.same(client.responses().map(r => r.status), [200, 429, 200])
  t.same(client.responses().map(r => r.headers.connection), ['keep-alive', 'keep-alive', 'close'])
  t.ok(await client.closedWithin(2000), 'closed after the 3rd')
})

t.test('MAX_REQUESTS_PER_SOCKET=0: no limit', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off', MAX_REQUESTS_PER_SOCKET: '0' }))
  const client = new RawClient(t, gw.url)
  for (let n = 1; n <= 5; n++) {
    client.write(GET(`/request-${n}`))
    await client.waitResponses(n)
  }
  t.same(client.responses().map(r => r.headers.connection), ['keep-alive', 'keep-alive', 'keep-alive', 'keep-alive', 'keep-alive'])
  t.ok(client.open, 'still open')
})

// ---------------------------------------------------------------------------------------------
// c) oversized heads

for (const { maxHeaderSize, passes, refused } of [
  { maxHeaderSize: undefined, passes: 12_000, refused: 20_000 },
  { maxHeaderSize: 4096, passes: 3_000, refused: 5_000 }
]) {
  const name = maxHeaderSize === undefined ? 'default MAX_HEADER_SIZE (16384)' : `MAX_HEADER_SIZE=${maxHeaderSize}`
  t.test(`${name}: a ${passes / 1000} KB header passes, a ${refused / 1000} KB one gets 431 and never reaches the upstream`, async t => {
    const upstream = await startCountingUpstream(t)
    const extra: Record<string, string> = { RATE_LIMIT: 'off' }
    if (maxHeaderSize !== undefined) extra.MAX_HEADER_SIZE = String(maxHeaderSize)
    const gw = await startGateway(t, upstreamsEnv([upstream], extra))
    const before = await clientErrors(gw, 'headers_too_large')

    const small = new RawClient(t, gw.url)
    small.write(GET('/header-fits', `X-Big: ${'a'.repeat(passes)}\r\n`))
    const [ok] = await small.waitResponses(1)
    t.equal(ok?.status, 200, `${passes} bytes of header: proxied`)

    const big = new RawClient(t, gw.url)
    big.write(GET('/header-too-large', `X-Big: ${'a'.repeat(refused)}\r\n`))
    t.ok(await big.closedWithin(3000), 'the oversized connection is closed')
    const [refusal] = big.responses()
    t.equal(refusal?.status, 431)
    t.equal(errorBody(refusal).code, 'SLUICE_HEADERS_TOO_LARGE')
    t.equal(refusal?.headers.connection, 'close')
    t.same(upstream.seen.filter(p => p.startsWith('/header-')), ['/header-fits'], 'the upstream never saw the oversized request')
    t.equal(await clientErrors(gw, 'headers_too_large') - before, 1, 'counted as headers_too_large')
  })
}

// ---------------------------------------------------------------------------------------------
// d) malformed requests

const MALFORMED: Record<string, string> = {
  'invalid header token': 'GET /malformed-token HTTP/1.1\r\nHost: gateway\r\nBad Header: y\r\n\r\n',
  'bad request line': 'GET /malformed-line HTTP/9.9\r\nHost: gateway\r\n\r\n',
  'garbage request line': 'HELLO-THERE\r\n\r\n',
  'bad chunked encoding': 'POST /malformed-chunk HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'content-length with transfer-encoding': 'POST /malformed-smuggle HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nhello',
  'duplicate content-length': 'POST /malformed-dup HTTP/1.1\r\nHost: gateway\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'
}

t.test('malformed requests get 400 SLUICE_BAD_REQUEST, never reach the upstream and are counted as malformed', async t => {
  const upstream = await startCountingUpstream(t)
  const gw = await startGateway(t, upstreamsEnv([upstream], { RATE_LIMIT: 'off' }))
  // a live keep-alive connection to the upstream, so nothing delays a request that slipped through
  const warm = await request(`${gw.url}/warm-up`)
  await warm.body.dump()
  const before = await clientErrors(gw, 'malformed')

  for (const [variant, bytes] of Object.entries(MALFORMED)) {
    const client = new RawClient(t, gw.url)
    client.write(bytes)
    t.ok(await client.closedWithin(3000), `${variant}: connection closed`)
    const [response] = client.responses()
    t.equal(response?.status, 400, `${variant}: 400`)
    t.equal(errorBody(response).code, 'SLUICE_BAD_REQUEST', `${variant}: SLUICE body`)
  }
  // give anything that slipped through time to arrive
  await sleep(200)
  t.same(upstream.seen.filter(p => p.startsWith('/malformed')), [], 'the upstream saw none of them')
  t.equal(await clientErrors(gw, 'malformed') - before, Object.keys(MALFORMED).length, 'sluice_client_errors_total{reason="malformed"} counted each')
  const after = await request(`${gw.url}/after`)
  t.equal(after.statusCode, 200, 'the gateway still serves')
  await after.body.dump()
  await assertNothingInFlight(t, gw)
})

// ---------------------------------------------------------------------------------------------
// e) a 1 GiB upload through the built gateway

const GiB = 1024 ** 3

async function rssBytes (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]
  return kb === undefined ? 0 : Number(kb) * 1024
}

/** 1 GiB made on the fly: the same 64 KiB chunk 16384 times, never a 1 GB buffer. */
function oneGiB (): Readable {
  const chunk = Buffer.alloc(64 * 1024, 'u')
  let left = GiB / chunk.length
  return new Readable({
    read () {
      this.push(left-- > 0 ? chunk : null)
    }
  })
}

t.test('a 1 GiB upload streams through the built gateway with flat memory', async t => {
  const upstream = await startCountingUpstream(t)
  const port = await freePort()
  const gateway = spawnServer(t, {
    PORT: String(port), HOST: '127.0.0.1', UPSTREAMS: upstream.url, RATE_LIMIT: 'off', LOG_LEVEL: 'warn', HEALTH_CHECK_INTERVAL: '0'
  }, t.testdir())
  const url = `http://127.0.0.1:${port}`
  await waitFor(async () => {
    try {
      const res = await request(`${url}/healthz`)
      await res.body.dump()
      return res.statusCode === 200
    } catch { return false }
  }, 'the gateway to listen', 20_000, 50)
  const pid = gateway.child.pid as number
  // the proxy path warmed up (code loaded and compiled) before the baseline is taken
  const warm = await request(`${url}/upload`, { method: 'POST', body: Buffer.alloc(1024 * 1024) })
  await warm.body.dump()
  await sleep(200)
  const rssAtStart = await rssBytes(pid)

  let maxRss = rssAtStart
  const sampling = { on: true }
  const sampler = (async () => {
    while (sampling.on) {
      maxRss = Math.max(maxRss, await rssBytes(pid))
      await sleep(100)
    }
  })()
  const started = performance.now()
  const res = await request(`${url}/upload`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(GiB) },
    body: oneGiB(),
    headersTimeout: 120_000,
    bodyTimeout: 120_000
  })
  const answer = await res.body.json() as { bytes: number }
  const durationMs = performance.now() - started
  sampling.on = false
  await sampler

  t.equal(res.statusCode, 200)
  t.equal(answer.bytes, GiB, 'the upstream counted exactly 1 GiB')
  t.equal(upstream.lastBytes(), GiB)
  // the idle gateway alone is ~125-165 MB (its modules' code), so the issue's flat-memory bound is
  // checked as growth: buffering the upload would add up to 1 GB; streaming adds GC lag only
  t.ok(maxRss - rssAtStart < 50e6, `gateway RSS grew less than 50 MB while 1 GiB went through (+${((maxRss - rssAtStart) / 1e6).toFixed(1)} MB)`)
  t.comment(`FIGURE 5e 1 GiB upload: ${GiB} bytes in ${(durationMs / 1000).toFixed(1)} s ` +
    `(${(GiB / 1e6 / (durationMs / 1000)).toFixed(0)} MB/s), gateway RSS ${(rssAtStart / 1e6).toFixed(1)} MB at start, max ${(maxRss / 1e6).toFixed(1)} MB`)
})

// ---------------------------------------------------------------------------------------------
// f) clients that leave half-way

t.test('clients that leave mid-response, before the response or mid-upload leak nothing and are counted once, as 499', async t => {
  const upstreams = [await startCountingUpstream(t), await startCountingUpstream(t)]
  // no active checks: an upstream wrongly ejected by the aborts would stay ejected
  const gw = await startGateway(t, upstreamsEnv(upstreams, { RATE_LIMIT: 'off', HEALTH_CHECK_INTERVAL: '0' }))
  const before = await adminStatus(gw)
  const requestsBefore = sample(await metricsText(gw), 'sluice_requests_total')

  // mid-response: leave once part of a 16 MiB streamed body has arrived
  const midResponse = Array.from({ length: 8 }, () => {
    const client = new RawClient(t, gw.url)
    client.write(GET('/stream'))
    return client
  })
  await waitFor(() => midResponse.every(c => c.received > 100 * 1024), 'part of every streamed body')
  for (const c of midResponse) c.destroy()

  // before the response: the upstream takes 1.5 s to answer, the client leaves after 200 ms
  const beforeResponse = Array.from({ length: 4 }, () => {
    const client = new RawClient(t, gw.url)
    client.write(GET('/slow'))
    return client
  })
  await sleep(200)
  for (const c of beforeResponse) c.destroy()

  // mid-upload: half of a 1 MiB body, then gone; PASSIVE_FAILURE_THRESHOLD (3) of them per upstream
  const seenUploads = (): number => upstreams.reduce((n, u) => n + u.seen.filter(p => p === '/upload').length, 0)
  const midUpload = Array.from({ length: 6 }, () => {
    const client = new RawClient(t, gw.url)
    client.write(`POST /upload HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1024 * 1024}\r\n\r\n`)
    client.write(Buffer.alloc(512 * 1024, 'h'))
    return client
  })
  await waitFor(() => seenUploads() === midUpload.length, 'every upload to reach an upstream')
  for (const c of midUpload) c.destroy()

  const aborted = midResponse.length + beforeResponse.length + midUpload.length
  t.ok(midResponse.every(c => c.received < 16 * 1024 * 1024), 'the streamed responses were cut before their end')
  await assertNothingInFlight(t, gw)
  // the upstream side is released too (the slow ones once they have answered into the void)
  await waitFor(() => upstreams.every(u => u.open() === 0), 'every upstream request closed', 5000)
  t.pass('every upstream request was closed')

  const after = await adminStatus(gw)
  const requestsAfter = sample(await metricsText(gw), 'sluice_requests_total')
  t.equal(after.requests.total - before.requests.total, aborted, `/admin/status counted each of the ${aborted} aborted requests once`)
  t.equal((after.statusCodes['499'] ?? 0) - (before.statusCodes['499'] ?? 0), aborted, '... as 499')
  t.equal(requestsAfter - requestsBefore, aborted, 'sluice_requests_total counted each once')
  t.same(after.servers.map(s => s.state), ['healthy', 'healthy'], 'no upstream was ejected because clients left')
  t.same(after.servers.map(s => s.failedRequests), [0, 0], 'no upstream was blamed for it')

  // nothing counted late, twice, or negative once everything has settled
  await sleep(300)
  const settled = await adminStatus(gw)
  t.equal(settled.requests.total, after.requests.total, 'no request counted twice later')
  t.same(gw.app.balancer.pool.list().map(s => s.inFlight), [0, 0], 'in-flight still 0, never negative')
  const res = await request(`${gw.url}/after`)
  t.equal(res.statusCode, 200, 'the gateway still serves')
  await res.body.dump()
  t.comment(`FIGURE 5f aborts: ${midResponse.length} mid-response, ${beforeResponse.length} before the response, ${midUpload.length} mid-upload: ` +
    'in-flight back to 0, each counted once as 499, no upstream ejected')
})

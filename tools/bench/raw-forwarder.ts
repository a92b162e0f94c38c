import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'

// The floor without undici: what a Node proxy could cost per request if its upstream side were
// keep-alive sockets read by Node's own HTTP parser (llhttp, the one node:http uses) instead of
// undici's client. The client side is forwarder.ts's, unchanged, so the two differ only in the
// upstream client. A yardstick for the decision to replace undici, not a product: bodiless requests
// only (others get 501), no timeouts, no retries, no limit on connections per upstream.
// Usage: PORT=8090 UPSTREAMS=http://127.0.0.1:9001,... node dist/tools/bench/raw-forwarder.js

interface Parser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  execute (chunk: Buffer): number | Error
  [key: number]: unknown
}
interface ParserBinding {
  HTTPParser: {
    new (): Parser
    RESPONSE: number
    kOnHeaders: number
    kOnHeadersComplete: number
    kOnBody: number
    kOnMessageComplete: number
  }
}
// Node's internal binding: nothing public exposes llhttp. Its DEP0111 warning would only repeat that.
const silenced = process.noDeprecation === true // and read-only under --no-deprecation
if (!silenced) process.noDeprecation = true
const { HTTPParser } = (process as unknown as { binding: (name: string) => ParserBinding }).binding('http_parser') // eslint-disable-line n/no-deprecated-api
if (!silenced) process.noDeprecation = false

const port = Number(process.env.PORT ?? '8090')
const origins = (process.env.UPSTREAMS ?? '').split(',').filter(Boolean).map(origin => new URL(origin))
if (origins.length === 0 || !Number.isInteger(port)) {
  process.stderr.write('raw-forwarder: set PORT and UPSTREAMS (comma-separated origins)\n')
  process.exit(1)
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'te', 'trailer', 'upgrade'])

/** One keep-alive connection to an upstream, carrying one request at a time. */
class Upstream {
  readonly socket: Socket
  readonly parser = new HTTPParser()
  res: ServerResponse | null = null
  head = false
  raw: string[] = []
  reusable = false

  constructor (readonly pool: Pool) {
    this.socket = connect(Number(pool.url.port), pool.url.hostname)
    this.socket.setNoDelay(true)
    this.parser.initialize(HTTPParser.RESPONSE, {}, 0, 0)
    this.parser[HTTPParser.kOnHeaders] = (headers: string[]) => { this.raw.push(...headers) }
    this.parser[HTTPParser.kOnHeadersComplete] = this.onHead
    this.parser[HTTPParser.kOnBody] = (chunk: Buffer) => { this.res?.write(chunk) }
    this.parser[HTTPParser.kOnMessageComplete] = this.onComplete
    this.socket.on('data', chunk => {
      if (this.parser.execute(chunk) instanceof Error) this.socket.destroy()
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.pool.drop(this)
      const res = this.res
      this.res = null
      if (res !== null && !res.headersSent) res.writeHead(502).end()
      else res?.destroy()
    })
  }

  send (req: IncomingMessage, res: ServerResponse): void {
    this.res = res
    this.head = req.method === 'HEAD'
    let head = `${req.method as string} ${req.url as string} HTTP/1.1\r\n`
    const raw = req.rawHeaders
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      if (!HOP_BY_HOP.has(name.toLowerCase())) head += `${name}: ${raw[i + 1] as string}\r\n`
    }
    this.socket.write(`${head}\r\n`, 'latin1')
  }

  readonly onHead = (_major: number, _minor: number, headers: string[] | undefined, _method: unknown, _url: unknown,
    status: number, _message: string, _upgrade: boolean, keepAlive: boolean): number => {
    // past 32 header lines llhttp hands them over early (kOnHeaders) and passes none here
    const raw = headers === undefined ? this.raw : this.raw.length === 0 ? headers : [...this.raw, ...headers]
    this.raw = []
    this.reusable = keepAlive
    const out: string[] = []
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1] as string)
    }
    this.res?.writeHead(status, out)
    // 1: a response to HEAD has no body, whatever its headers say
    return this.head ? 1 : 0
  }

  readonly onComplete = (): void => {
    const res = this.res
    this.res = null
    res?.end()
    if (this.reusable) this.pool.idle.push(this)
    else this.socket.destroy()
  }
}

class Pool {
  readonly idle: Upstream[] = []
  constructor (readonly url: URL) {}

  send (req: IncomingMessage, res: ServerResponse): void {
    const conn = this.idle.pop() ?? new Upstream(this)
    conn.send(req, res)
  }

  drop (conn: Upstream): void {
    const at = this.idle.indexOf(conn)
    if (at !== -1) this.idle.splice(at, 1)
  }
}

const pools = origins.map(url => new Pool(url))
let next = 0

const server = createServer((req, res) => {
  if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
    res.writeHead(501).end()
    return
  }
  const pool = pools[next] as Pool
  next = (next + 1) % pools.length
  pool.send(req, res)
})
server.keepAliveTimeout = 65_000
server.listen(port, process.env.HOST ?? '127.0.0.1')
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { server.close(); server.closeAllConnections(); process.exit(0) })
}

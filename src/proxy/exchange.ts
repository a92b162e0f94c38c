import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Upstream } from '../pool/upstream.js'
import type { ResponseHandler, UpstreamAgent } from './h1/agent.js'
import { BadRequestError, NoUpstreamError, RouteNotFoundError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors.js'
import { isGatewayPath, pathOf } from '../gateway-paths.js'
import { clientKey } from '../net.js'
import { classifyFailure, mayRetry, transportCode, type FailureKind } from './failure.js'
import { appendForwarded, FORWARDING, HOP_BY_HOP } from './headers.js'
import { AttemptBody } from './replayable-body.js'
import type { ClientAddress } from './client-address.js'

/** nginx's "client closed request": the status counted for a request whose client left before its response ended. */
export const CLIENT_CLOSED_REQUEST = 499

/** What the forwarding of one request needs from the gateway; built once, shared by every exchange. */
export interface ExchangeContext {
  readonly agent: UpstreamAgent
  readonly retries: number
  readonly upstreamTimeout: number
  readonly preserveHost: boolean
  readonly address: ClientAddress
  pick (key: string, tried: readonly Upstream[]): Upstream | undefined
  acquire (server: Upstream): void
  release (server: Upstream): void
  /** The answer of an attempt: success or failure for passive health, latency for `ewma`. */
  answered (server: Upstream, failed: boolean, latencyMs: number, now: number): void
  /** The limiter; undefined with RATE_LIMIT=off. Sets its headers on the exchange, then calls `done`. */
  readonly limit: ((exchange: Exchange, done: (error?: Error) => void) => void) | undefined
  /** Accounts for the request once it has ended (or its client left). */
  finished (exchange: Exchange, status: number): void
  readonly log: {
    info (fields: object, message: string): void
    warn (fields: object, message: string): void
    error (fields: object, message: string): void
  }
  /** True once shutdown started: responses then close their connection. */
  stopping (): boolean
  newRequestId (header: string | string[] | undefined): string
}

type SluiceError = Error & { statusCode: number, code: string }

const NONE: readonly Upstream[] = Object.freeze([])
// response headers never relayed: hop-by-hop ones (RFC 9110 §7.6.1), and the request id the
// gateway sets itself on every response
const DROPPED = new Set<string>(['connection', ...HOP_BY_HOP, 'x-request-id'])
const NOT_FORWARDED = new Set<string>(['connection', ...HOP_BY_HOP, 'expect', ...FORWARDING])
// an upstream's own rate-limit headers give way to the gateway's when its limiter set them: a
// client must not see two different x-ratelimit-remaining values
const LIMIT_HEADERS = new Set(['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-policy', 'ratelimit', 'retry-after'])

/** Scratch for one onHeaders call at a time (it is synchronous): lower-cased names of the upstream's headers. */
const names: string[] = []

/**
 * One proxied request on the fast path, from the client's request to the end of its response,
 * without Fastify: limiter, balancer pick, the upstream client (this object is its response
 * handler, so a request allocates little more than itself), streaming both ways with back-pressure,
 * retries on another upstream, SLUICE error bodies, telemetry once at the end. SPEC §4's rules are
 * the same as the Fastify route's were; `plugins/proxy.ts` wires it.
 */
export class Exchange implements ResponseHandler {
  readonly id: string
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly startedAt = performance.now()
  /** The server of the current attempt; null before the pick. */
  upstream: Upstream | null = null
  /** Servers a retry moved away from (so its retries); null until a retry. */
  tried: Upstream[] | null = null
  readonly #ctx: ExchangeContext
  /** Response headers the gateway adds (request id, rate limits): a flat name, value list. */
  readonly #out: string[]
  #ip: string | undefined
  #attemptAt = 0
  #abort: ((err?: Error) => void) | null = null
  #resume: (() => void) | null = null
  #body: AttemptBody | null = null
  #upstreamHeaders: Array<string | string[]> | null = null
  /** The client left before its response ended. */
  #gone = false
  /** Response body bytes still to come when the upstream sent a content-length; -1 otherwise. */
  #bodyLeft = -1
  /** The upstream's status once its response head arrived; 0 before. Written to the client with the first body bytes. */
  #status = 0
  /** Where the upstream's headers start in `#out` (after the gateway's own). */
  #ownHeaders = 2
  /** The upstream broke its response after it had started: counted as 502, not as the client leaving. */
  #broken = false
  #target: string | undefined

  constructor (ctx: ExchangeContext, req: IncomingMessage, res: ServerResponse) {
    this.#ctx = ctx
    this.req = req
    this.res = res
    this.id = ctx.newRequestId(req.headers['x-request-id'])
    this.#out = ['x-request-id', this.id]
    // 'on', not 'once': a response closes once, and a once-wrapper would be one more allocation per request
    res.on('close', this.#onClose)
  }

  get ip (): string {
    return (this.#ip ??= this.#ctx.address.ip(this.req))
  }

  /** The request target in origin form: an absolute-form target (RFC 9112 §3.2.2) loses its scheme and authority. */
  get url (): string {
    return (this.#target ??= originForm(this.req.url as string))
  }

  get method (): string {
    return this.req.method as string
  }

  get headers (): IncomingHttpHeaders {
    return this.req.headers
  }

  get socket (): Socket {
    return this.req.socket
  }

  get protocol (): string {
    return this.#ctx.address.protocol(this.req)
  }

  /** Adds a response header (the limiter's). */
  header (name: string, value: string | number): this {
    this.#out.push(name, String(value))
    return this
  }

  start (): void {
    // an asterisk-form target (OPTIONS *) has no path to forward
    const url = this.url
    if (url.charCodeAt(0) !== 47) {
      this.fail(new BadRequestError('The request target must be a path starting with / (or an absolute URL)'))
      return
    }
    // an absolute-form target naming one of the gateway's own paths is not sent upstream either
    if (url !== this.req.url && isGatewayPath(url)) {
      this.fail(new RouteNotFoundError(this.method, pathOf(url)))
      return
    }
    const limit = this.#ctx.limit
    if (limit === undefined) this.#forward()
    else limit(this, this.#limited)
  }

  readonly #limited = (error?: Error): void => {
    // may run in a promise callback (the Redis limiter): nothing may escape as a rejection
    try {
      if (error !== undefined) this.fail(error)
      else if (!this.#gone) this.#forward()
    } catch (err) {
      this.fail(err as Error)
    }
  }

  #forward (): void {
    const server = this.#ctx.pick(clientKey(this.ip), NONE)
    if (server === undefined) {
      this.fail(new NoUpstreamError())
      return
    }
    this.upstream = server
    this.#ctx.acquire(server)
    this.#send(server)
  }

  #send (server: Upstream): void {
    const req = this.req
    this.#attemptAt = performance.now()
    // a body goes through a wrapper that reads nothing until the upstream client writes it: a refused
    // attempt leaves the client's stream whole for another upstream, and a failed one never destroys the client's request
    const body = hasBody(req) ? (this.#body = new AttemptBody(req)) : null
    this.#ctx.agent.dispatch(server.url, {
      path: this.url,
      method: req.method as string,
      headers: this.#upstreamHeaders ??= this.#forwardedHeaders(),
      body
    }, this)
  }

  /** The request's headers for the upstream, as a flat name, value list (no object to copy and delete from). */
  #forwardedHeaders (): Array<string | string[]> {
    const headers = this.req.headers
    const connection = headers.connection
    const named = connection === undefined ? undefined : connection.toLowerCase()
    const out: Array<string | string[]> = []
    for (const name in headers) {
      // hop-by-hop ones, those the sender's Connection names, `expect` (Node has answered a client's
      // 100-continue itself and the body follows anyway), and the ones the gateway sets itself
      if (NOT_FORWARDED.has(name) || (named !== undefined && namedIn(named, name))) continue
      // an array is set-cookie's, the one header Node keeps as a list: one line per value upstream
      out.push(name, headers[name] as string | string[])
    }
    appendForwarded(out as string[], this, this.#ctx.preserveHost)
    return out
  }

  // the upstream client's response handler (src/proxy/h1/connection.ts)

  onConnect (abort: (err?: Error) => void): void {
    this.#abort = abort
    if (this.#gone) abort()
  }

  onHeaders (statusCode: number, rawHeaders: string[], resume: () => void): boolean {
    // 1xx are informational (Node answered the client's own expect itself)
    if (statusCode < 200) return true
    const now = performance.now()
    this.#ctx.answered(this.upstream as Upstream, statusCode >= 502 && statusCode <= 504, now - this.#attemptAt, now)
    this.#resume = resume
    this.#status = statusCode
    const out = this.#out
    this.#ownHeaders = out.length
    const limited = out.length > 2
    let connection: string | undefined
    names.length = 0
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = (rawHeaders[i] as string).toLowerCase()
      names.push(name)
      if (name === 'connection') {
        // every line of it counts: `Connection: x-a` and `Connection: keep-alive` name x-a too
        const value = (rawHeaders[i + 1] as string).toLowerCase()
        connection = connection === undefined ? value : `${connection},${value}`
      } else if (name === 'content-length') {
        this.#bodyLeft = Number(rawHeaders[i + 1] as string)
      }
    }
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string
      if (DROPPED.has(name) || (limited && LIMIT_HEADERS.has(name)) || (connection !== undefined && namedIn(connection, name))) continue
      out.push(name, rawHeaders[2 * i + 1] as string)
    }
    // a response without a body ends here: the upstream client may still object to it (a 304 with a
    // content-length, which RFC 9110 allows), and the client has its answer either way
    if (statusCode === 204 || statusCode === 304 || this.req.method === 'HEAD') {
      this.#writeHead(statusCode)
      this.res.end()
    }
    return true
  }

  onData (chunk: Buffer): boolean {
    const res = this.res
    if (res.writableEnded) return true
    // the head goes out with the first bytes of the body (Node sends nothing before them anyway),
    // so an upstream that fails before its first byte can still be answered with a 502
    if (!res.headersSent) this.#writeHead(this.#status)
    if (chunk.length === this.#bodyLeft) {
      // the whole (rest of the) body: one write carries it with the end of the response
      this.#bodyLeft = 0
      res.end(chunk)
      return true
    }
    if (this.#bodyLeft > 0) this.#bodyLeft -= chunk.length
    if (res.write(chunk)) return true
    res.once('drain', this.#resume as () => void)
    return false
  }

  onComplete (): void {
    const res = this.res
    if (res.writableEnded) return
    if (!res.headersSent) this.#writeHead(this.#status)
    res.end()
  }

  onError (err: Error): void {
    const res = this.res
    // the client left: it broke the upload or we aborted the attempt; not the upstream's failure,
    // and nobody is left to answer. Or the response was already complete (a bodiless one).
    if (this.#gone || res.writableEnded || (res.destroyed && !res.headersSent)) return
    const server = this.upstream as Upstream
    const code = transportCode(err as Error & { code?: string })
    this.#ctx.answered(server, true, this.#ctx.upstreamTimeout, performance.now())
    if (this.#status !== 0) {
      // the upstream's head had arrived: not retried
      this.#ctx.log.warn({ reqId: this.id, upstream: server.url, code }, 'upstream response broke off')
      if (res.headersSent) {
        // its body was under way: the client can only see a cut connection
        this.#broken = true
        res.destroy(err)
      } else {
        // none of it had been sent on: answered as unreachable
        this.#out.length = this.#ownHeaders
        this.fail(new UpstreamUnreachableError(code, { cause: err }))
      }
      return
    }
    const kind = classifyFailure(code)
    if (kind !== 'timeout' && this.#retry(kind, server)) return
    this.#ctx.log.warn({ reqId: this.id, upstream: server.url, code, attempts: (this.tried?.length ?? 0) + 1 }, 'upstream request failed')
    this.fail(kind === 'timeout' ? new UpstreamTimeoutError(this.#ctx.upstreamTimeout, { cause: err }) : new UpstreamUnreachableError(code, { cause: err }))
  }

  /** Sends the request again to another upstream when SPEC §4 allows it; false when it does not. */
  #retry (kind: FailureKind, failed: Upstream): boolean {
    const ctx = this.#ctx
    const tried = this.tried ??= []
    if (tried.length >= ctx.retries || !mayRetry(kind, this.method, hasBody(this.req))) return false
    if (this.#body !== null && this.#body.started) return false
    tried.push(failed)
    const next = ctx.pick(clientKey(this.ip), tried)
    if (next === undefined) {
      // no retry after all: `tried` lists only servers a retry moved away from
      tried.pop()
      return false
    }
    ctx.log.info({ reqId: this.id, failed: failed.url, next: next.url, kind }, 'retrying on another upstream')
    ctx.release(failed)
    ctx.acquire(next)
    this.upstream = next
    this.#send(next)
    return true
  }

  /** Answers with the SLUICE error body, or cuts the connection when a response is already under way. */
  fail (error: Error): void {
    const res = this.res
    if (res.headersSent || res.destroyed) {
      res.destroy()
      return
    }
    const sluice = error as Partial<SluiceError>
    const known = typeof sluice.statusCode === 'number' && sluice.code?.startsWith('SLUICE_') === true
    if (!known) this.#ctx.log.error({ reqId: this.id, err: error }, 'unhandled error')
    const statusCode = known ? sluice.statusCode as number : 500
    const body = JSON.stringify({
      statusCode,
      error: STATUS_CODES[statusCode],
      code: known ? sluice.code : 'SLUICE_INTERNAL',
      message: known ? error.message : 'An internal error occurred'
    })
    this.#out.push('content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(body)))
    this.#writeHead(statusCode)
    res.end(body)
  }

  #writeHead (statusCode: number): void {
    const res = this.res
    // on shutdown every response closes its connection, so idle keep-alive sockets do not hold the server open
    if (this.#ctx.stopping()) res.shouldKeepAlive = false
    res.writeHead(statusCode, this.#out)
  }

  readonly #onClose = (): void => {
    const res = this.res
    const finished = res.writableFinished
    if (!finished) {
      this.#gone = true
      this.#abort?.()
    }
    if (this.upstream !== null) this.#ctx.release(this.upstream)
    this.#ctx.finished(this, finished ? res.statusCode : this.#broken ? 502 : CLIENT_CLOSED_REQUEST)
  }
}

/** `http://host:port/path?q` → `/path?q`; anything else unchanged. */
function originForm (target: string): string {
  if (target.charCodeAt(0) === 47 || !/^https?:\/\//i.test(target)) return target
  const path = target.indexOf('/', target.indexOf('//') + 2)
  if (path !== -1) return target.slice(path)
  const query = target.indexOf('?')
  return query === -1 ? '/' : `/${target.slice(query)}`
}

function hasBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined
}

/** Whether a `connection` header's value (lower-cased) names `name` as a hop-by-hop header. */
function namedIn (connection: string, name: string): boolean {
  let at = connection.indexOf(name)
  while (at !== -1) {
    const end = at + name.length
    const before = at === 0 ? 44 : connection.charCodeAt(at - 1)
    const after = end === connection.length ? 44 : connection.charCodeAt(end)
    if (isSeparator(before) && isSeparator(after)) return true
    at = connection.indexOf(name, end)
  }
  return false
}

/** A comma, or the optional whitespace around list elements (RFC 9110 §5.6.1: space, tab). */
const isSeparator = (c: number): boolean => c === 44 || c === 32 || c === 9

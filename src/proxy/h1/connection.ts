import { isIP, connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import type { Readable } from 'node:stream'
import { ResponseParser, type ResponseEvents } from './response-parser.js'

/** One request for an upstream: its headers as a flat name, value list, already filtered by the caller. */
export interface UpstreamRequest {
  readonly path: string
  readonly method: string
  readonly headers: ReadonlyArray<string | string[]>
  readonly body: Readable | null
}

/**
 * What hears of one request's fate, in this order: `onConnect` once (with the way to cancel it),
 * `onHeaders` for every response head (1xx included), `onData` for each body chunk, then exactly
 * one of `onComplete` and `onError`. `false` from `onHeaders` or `onData` pauses the response
 * until `resume` is called.
 */
export interface ResponseHandler {
  onConnect (abort: (error?: Error) => void): void
  onHeaders (statusCode: number, headers: string[], resume: () => void): boolean
  onData (chunk: Buffer): boolean
  onComplete (): void
  onError (error: Error): void
}

/** A failure of the upstream connection or its response; `code` is what logs, retries and error bodies read. */
export class UpstreamError extends Error {
  constructor (readonly code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UpstreamError'
  }
}

/** What a connection needs of the pool that owns it. */
export interface ConnectionOwner {
  readonly url: URL
  /** The `host` header sent when the request has none. */
  readonly host: string
  readonly connectTimeoutMs: number
  readonly timeoutMs: number
  /** The connection finished a response and can carry another request. */
  release (connection: Connection): void
  /** The connection is gone (closed, failed or destroyed). */
  removed (connection: Connection): void
}

/** How long an idle connection is reused when the upstream does not say (undici's default). */
const DEFAULT_KEEP_ALIVE_MS = 4000
/** Reused only this long before the upstream's own `keep-alive: timeout`, against the race with its close. */
const KEEP_ALIVE_MARGIN_MS = 1000
/** Methods whose requests carry a content even when empty (RFC 9110 §8.6: a length of 0 is then sent). */
const PAYLOAD_METHODS = new Set(['POST', 'PUT', 'PATCH'])

/**
 * One keep-alive HTTP/1.1 connection to an upstream, carrying one request at a time: writes the
 * request (its body streamed with back-pressure, chunked when it has no length), reads the response
 * with its own strict parser (response-parser.ts), enforces the connect, headers and body timeouts, and hands the connection back
 * to its pool when the response ended cleanly. Everything per request lives in fields, not closures.
 */
export class Connection implements ResponseEvents {
  readonly #owner: ConnectionOwner
  readonly #socket: Socket
  readonly #parser: ResponseParser
  #connected = false
  #connectTimer: NodeJS.Timeout | undefined
  #timer: NodeJS.Timeout | undefined
  #gone = false

  // the request in progress, if any
  #handler: ResponseHandler | null = null
  #request: UpstreamRequest | null = null
  #body: Readable | null = null
  #chunked = false
  /** The request head, until the body's first bytes go with it. */
  #head = ''
  #requestSent = false
  /** The upstream is not taking the request body as fast as it comes (the socket's buffer is full). */
  #awaitingDrain = false
  #informational = false
  #responseStarted = false
  #keepAlive = false
  #paused = false

  /** When the connection became idle, and how long the upstream keeps an idle connection. */
  idleSince = 0
  keepAliveMs = DEFAULT_KEEP_ALIVE_MS

  constructor (owner: ConnectionOwner) {
    this.#owner = owner
    const { url } = owner
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
    const secure = url.protocol === 'https:'
    const socket = secure
      ? tlsConnect({ host, port, servername: isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'] })
      : tcpConnect({ host, port })
    this.#socket = socket
    socket.setNoDelay(true)
    this.#connectTimer = setTimeout(this.#onConnectTimeout, owner.connectTimeoutMs).unref()
    socket.once(secure ? 'secureConnect' : 'connect', this.#onConnect)
    socket.on('data', this.#onSocketData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onSocketError)
    socket.once('close', this.#onClose)

    this.#parser = new ResponseParser(this)
  }

  /** Sends `request`; the response goes to `handler`. Only on an idle connection. */
  send (request: UpstreamRequest, handler: ResponseHandler): void {
    this.#handler = handler
    this.#request = request
    this.#requestSent = false
    this.#awaitingDrain = false
    this.#parser.expect(request.method)
    this.#responseStarted = false
    this.#informational = false
    this.#keepAlive = false
    this.#paused = false
    if (this.#connected) this.#write()
  }

  /** Fails the request in progress with `error` and closes the connection. */
  abort (error: Error): void {
    this.#fail(error)
  }

  destroy (): void {
    // the rest of a chunk being parsed is not for anyone
    this.#parser.stop()
    if (this.#gone) return
    this.#socket.destroy()
  }

  #write (): void {
    const request = this.#request as UpstreamRequest
    const { headers, body } = request
    let head = `${request.method} ${request.path} HTTP/1.1\r\n`
    let host = false
    let length = false
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string
      const value = headers[i + 1] as string | string[]
      if (name === 'host') host = true
      else if (name === 'content-length') length = true
      if (typeof value === 'string') head += `${name}: ${value}\r\n`
      else for (const line of value) head += `${name}: ${line}\r\n`
    }
    if (!host) head += `host: ${this.#owner.host}\r\n`
    this.#armTimer()
    if (body === null) {
      if (!length && PAYLOAD_METHODS.has(request.method)) head += 'content-length: 0\r\n'
      this.#requestSent = true
      this.#socket.write(`${head}\r\n`, 'latin1')
      return
    }
    this.#chunked = !length
    // the head waits for the body's first bytes (as undici's does): a client whose body turns out
    // malformed before it started sends the upstream nothing at all
    this.#head = this.#chunked ? `${head}transfer-encoding: chunked\r\n\r\n` : `${head}\r\n`
    this.#body = body
    body.on('data', this.#onBodyData)
    body.once('end', this.#onBodyEnd)
    body.once('error', this.#onBodyError)
  }

  readonly #onBodyData = (chunk: Buffer): void => {
    if (chunk.length === 0) return
    const socket = this.#socket
    let flowing: boolean
    socket.cork()
    if (this.#head !== '') {
      socket.write(this.#head, 'latin1')
      this.#head = ''
    }
    if (this.#chunked) {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1')
      socket.write(chunk)
      flowing = socket.write('\r\n', 'latin1')
    } else {
      flowing = socket.write(chunk)
    }
    socket.uncork()
    this.#timer?.refresh()
    if (!flowing) {
      this.#awaitingDrain = true
      this.#body?.pause()
      socket.once('drain', this.#onDrain)
    }
  }

  readonly #onDrain = (): void => {
    this.#awaitingDrain = false
    this.#body?.resume()
  }

  readonly #onBodyEnd = (): void => {
    const head = this.#head
    this.#head = ''
    if (this.#chunked) this.#socket.write(`${head}0\r\n\r\n`, 'latin1')
    else if (head !== '') this.#socket.write(head, 'latin1')
    this.#detachBody()
    this.#requestSent = true
    this.#timer?.refresh()
  }

  readonly #onBodyError = (error: Error): void => {
    this.#fail(error)
  }

  /** Stops sending the request body and destroys it (an AttemptBody then lets go of the client's stream, as undici's failures did). */
  #abandonBody (): void {
    this.#head = ''
    const body = this.#body
    this.#detachBody()
    body?.destroy()
  }

  #detachBody (): void {
    const body = this.#body
    if (body === null) return
    this.#body = null
    body.off('data', this.#onBodyData)
    body.off('end', this.#onBodyEnd)
    body.off('error', this.#onBodyError)
    this.#socket.off('drain', this.#onDrain)
  }

  // the response

  readonly #onSocketData = (chunk: Buffer): void => {
    const error = this.#parser.execute(chunk)
    if (error !== undefined) {
      this.#fail(new UpstreamError('UPSTREAM_BAD_RESPONSE', `the upstream's response is not valid HTTP/1.1 (${error.code}: ${error.message})`))
    }
  }

  // the parser's events (ResponseEvents)

  onHead (statusCode: number, headers: string[], keepAlive: boolean): void {
    const handler = this.#handler
    if (handler === null) {
      // a response nobody asked for: the connection cannot be trusted with another request
      this.destroy()
      return
    }
    if (statusCode < 200) {
      this.#informational = true
      handler.onHeaders(statusCode, headers, this.#resume)
      return
    }
    this.#responseStarted = true
    this.#keepAlive = keepAlive
    if (keepAlive) this.keepAliveMs = keepAliveHint(headers)
    this.#timer?.refresh()
    if (!handler.onHeaders(statusCode, headers, this.#resume)) this.#pause()
  }

  onUpgrade (): void {
    // nothing on this path asked to switch protocols (WebSockets go elsewhere)
    this.#fail(new UpstreamError('UPSTREAM_BAD_RESPONSE', 'the upstream switched protocols unasked'))
  }

  onBody (chunk: Buffer): void {
    const handler = this.#handler
    if (handler === null) return
    this.#timer?.refresh()
    if (!handler.onData(chunk)) this.#pause()
  }

  onComplete (): void {
    if (this.#informational) {
      this.#informational = false
      return
    }
    const handler = this.#handler
    if (handler === null) return
    const reusable = this.#keepAlive && this.#requestSent
    this.#handler = null
    this.#request = null
    // answered before the request body was all sent: the rest is not read, the connection not reused
    if (!this.#requestSent) this.#abandonBody()
    if (this.#paused) this.#resumeSocket()
    handler.onComplete()
    if (reusable && !this.#gone) {
      this.idleSince = performance.now()
      this.#owner.release(this)
    } else {
      this.destroy()
    }
  }

  #pause (): void {
    this.#paused = true
    this.#socket.pause()
  }

  readonly #resume = (): void => {
    if (this.#paused) this.#resumeSocket()
  }

  #resumeSocket (): void {
    this.#paused = false
    this.#timer?.refresh()
    this.#socket.resume()
  }

  // the connection

  readonly #onConnect = (): void => {
    clearTimeout(this.#connectTimer)
    this.#connected = true
    if (this.#request !== null) this.#write()
  }

  readonly #onConnectTimeout = (): void => {
    this.#fail(new UpstreamError('UPSTREAM_CONNECT_TIMEOUT', `no connection to the upstream within ${this.#owner.connectTimeoutMs} ms`))
  }

  #armTimer (): void {
    if (this.#timer === undefined) this.#timer = setTimeout(this.#onTimeout, this.#owner.timeoutMs).unref()
    else this.#timer.refresh()
  }

  /** Fires `timeoutMs` after the last sign of progress; stale when the connection has no request or waits on its client. */
  readonly #onTimeout = (): void => {
    if (this.#handler === null) return
    // waiting on the client (reading the response, or sending the rest of its body) is not the
    // upstream's delay: the client side's own timeouts (REQUEST_TIMEOUT) deal with a client that stalls
    if (this.#paused || (this.#body !== null && !this.#awaitingDrain && !this.#responseStarted)) {
      this.#timer?.refresh()
      return
    }
    const what = this.#responseStarted ? 'body' : 'headers'
    this.#fail(new UpstreamError(this.#responseStarted ? 'UPSTREAM_BODY_TIMEOUT' : 'UPSTREAM_HEADERS_TIMEOUT',
      `no response ${what} from the upstream within ${this.#owner.timeoutMs} ms`))
  }

  readonly #onEnd = (): void => {
    // the upstream closed its side: a body read until close ends here, anything else was cut short
    if (this.#handler !== null) {
      const incomplete = this.#parser.finish()
      if (this.#handler !== null) {
        this.#fail(new UpstreamError('UPSTREAM_CLOSED', 'the upstream closed the connection before its response ended',
          incomplete === undefined ? undefined : { cause: incomplete }))
      }
    }
    this.destroy()
  }

  readonly #onSocketError = (error: Error): void => {
    this.#fail(error)
  }

  readonly #onClose = (): void => {
    this.#gone = true
    clearTimeout(this.#connectTimer)
    clearTimeout(this.#timer)
    this.#fail(new UpstreamError('UPSTREAM_CLOSED', 'the upstream closed the connection before its response ended'))
    this.#owner.removed(this)
  }

  /** Ends the request in progress with `error` (once) and closes the connection. */
  #fail (error: Error): void {
    const handler = this.#handler
    if (handler === null) {
      this.destroy()
      return
    }
    this.#handler = null
    this.#request = null
    this.#abandonBody()
    this.destroy()
    handler.onError(error)
  }
}

/** The last `keep-alive` value read and what it meant: upstreams send the same one on every response. */
let lastHint = ''
let lastHintMs = DEFAULT_KEEP_ALIVE_MS

/** `keep-alive: timeout=N` of a response (seconds), less the margin; the default without one. */
function keepAliveHint (headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string
    if (name.length !== 10 || name.toLowerCase() !== 'keep-alive') continue
    const value = headers[i + 1] as string
    if (value !== lastHint) {
      const match = /timeout=(\d+)/i.exec(value)
      lastHint = value
      lastHintMs = match === null ? DEFAULT_KEEP_ALIVE_MS : Number(match[1]) * 1000 - KEEP_ALIVE_MARGIN_MS
    }
    return lastHintMs
  }
  return DEFAULT_KEEP_ALIVE_MS
}

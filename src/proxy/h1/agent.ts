import { Connection, UpstreamError, type ConnectionOwner, type ResponseHandler, type UpstreamRequest } from './connection.js'

export { UpstreamError, type ResponseHandler, type UpstreamRequest } from './connection.js'

export interface UpstreamAgentOptions {
  /** Connections per upstream at most; requests beyond wait in order. */
  connections: number
  /** UPSTREAM_CONNECT_TIMEOUT. */
  connectTimeoutMs: number
  /** UPSTREAM_TIMEOUT: for the response head after the request, and between body chunks. */
  timeoutMs: number
}

/** A request waiting for a connection of a pool at its limit. */
interface Waiting {
  request: UpstreamRequest
  handler: ResponseHandler
  /** Cancelled (its client left) while it waited. */
  cancelled: boolean
}

/** The keep-alive connections to one upstream origin. */
class UpstreamPool implements ConnectionOwner {
  readonly key: string
  readonly url: URL
  readonly host: string
  readonly connectTimeoutMs: number
  readonly timeoutMs: number
  readonly #max: number
  readonly #idle: Connection[] = []
  readonly #all = new Set<Connection>()
  #waiting: Waiting[] = []
  #closing = false
  /** While connections are idle: closes those the upstream would no longer keep (as undici's keepAliveTimeout did). */
  #sweeper: NodeJS.Timeout | undefined
  readonly #onEmpty: (pool: UpstreamPool) => void

  constructor (origin: string, options: UpstreamAgentOptions, onEmpty: (pool: UpstreamPool) => void) {
    this.key = origin
    this.url = new URL(origin)
    this.host = this.url.host
    this.connectTimeoutMs = options.connectTimeoutMs
    this.timeoutMs = options.timeoutMs
    this.#max = options.connections
    this.#onEmpty = onEmpty
  }

  get size (): number {
    return this.#all.size
  }

  dispatch (request: UpstreamRequest, handler: ResponseHandler): void {
    const idle = this.#takeIdle()
    if (idle !== undefined) {
      // sent first: an abort from onConnect (the client already left) then ends a request, not an idle connection
      idle.send(request, handler)
      handler.onConnect(error => { idle.abort(error ?? aborted()) })
      return
    }
    if (this.#all.size < this.#max) {
      const connection = this.#open()
      connection.send(request, handler)
      handler.onConnect(error => { connection.abort(error ?? aborted()) })
      return
    }
    const waiting: Waiting = { request, handler, cancelled: false }
    handler.onConnect(error => {
      if (waiting.cancelled) return
      waiting.cancelled = true
      handler.onError(error ?? aborted())
    })
    this.#waiting.push(waiting)
  }

  release (connection: Connection): void {
    if (this.#closing) {
      connection.destroy()
      return
    }
    const next = this.#nextWaiting()
    if (next === undefined) {
      this.#idle.push(connection)
      this.#sweeper ??= setInterval(this.#sweep, SWEEP_MS).unref()
      return
    }
    this.#sendWaiting(next, connection)
  }

  /** Oldest first: the idle list is in the order connections were freed. */
  readonly #sweep = (): void => {
    const idle = this.#idle
    const now = performance.now()
    let expired = 0
    while (expired < idle.length && now - (idle[expired] as Connection).idleSince >= (idle[expired] as Connection).keepAliveMs) expired++
    for (const connection of idle.splice(0, expired)) connection.destroy()
    if (idle.length === 0) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }

  removed (connection: Connection): void {
    this.#all.delete(connection)
    const at = this.#idle.indexOf(connection)
    if (at !== -1) this.#idle.splice(at, 1)
    // a request waiting for a free slot gets the one just freed
    const next = this.#nextWaiting()
    if (next !== undefined) this.#sendWaiting(next, this.#open())
    else if (this.#all.size === 0) this.#onEmpty(this)
  }

  /** Closes the idle connections now and the busy ones as their responses end. */
  close (): void {
    this.#closing = true
    clearInterval(this.#sweeper)
    for (const connection of this.#idle.splice(0)) connection.destroy()
  }

  destroy (): void {
    clearInterval(this.#sweeper)
    for (const waiting of this.#waiting.splice(0)) {
      if (!waiting.cancelled) waiting.handler.onError(new UpstreamError('UPSTREAM_CLOSED', 'the gateway is closing its upstream connections'))
    }
    for (const connection of this.#all) connection.destroy()
  }

  #open (): Connection {
    const connection = new Connection(this)
    this.#all.add(connection)
    return connection
  }

  /** The most recently used idle connection the upstream has not given up on yet (LIFO keeps few connections warm). */
  #takeIdle (): Connection | undefined {
    const idle = this.#idle
    if (idle.length === 0) return undefined
    const now = performance.now()
    for (;;) {
      const connection = idle.pop()
      if (connection === undefined) return undefined
      if (now - connection.idleSince < connection.keepAliveMs) return connection
      connection.destroy()
    }
  }

  #nextWaiting (): Waiting | undefined {
    const queue = this.#waiting
    while (queue.length > 0) {
      const waiting = queue.shift() as Waiting
      if (!waiting.cancelled) return waiting
    }
    return undefined
  }

  #sendWaiting (waiting: Waiting, connection: Connection): void {
    // from here a cancellation aborts the connection's request, as for any other
    waiting.cancelled = true
    const { handler } = waiting
    connection.send(waiting.request, handler)
    handler.onConnect(error => { connection.abort(error ?? aborted()) })
  }
}

/**
 * The gateway's HTTP/1.1 client for proxied requests: one pool of keep-alive connections per
 * upstream origin, created on first use and dropped when its last connection closes. It does what
 * the fast path needed of undici's Agent; a forwarder built this way needs ≈ 0.7× the CPU per
 * request of one on undici (docs/benchmarks.md). No pipelining, no HTTP/2: one request per
 * connection at a time.
 */
export class UpstreamAgent {
  readonly #options: UpstreamAgentOptions
  readonly #pools = new Map<string, UpstreamPool>()
  #closed = false

  constructor (options: UpstreamAgentOptions) {
    this.#options = options
  }

  /** Sends `request` to `origin` (`http://host:port`); its fate goes to `handler`. */
  dispatch (origin: string, request: UpstreamRequest, handler: ResponseHandler): void {
    if (this.#closed) {
      handler.onConnect(() => {})
      handler.onError(new UpstreamError('UPSTREAM_CLOSED', 'the gateway is closing its upstream connections'))
      return
    }
    let pool = this.#pools.get(origin)
    if (pool === undefined) {
      pool = new UpstreamPool(origin, this.#options, this.#onEmpty)
      this.#pools.set(origin, pool)
    }
    pool.dispatch(request, handler)
  }

  /** Connections open to `origin` (idle and busy). */
  connections (origin: string): number {
    return this.#pools.get(origin)?.size ?? 0
  }

  /** Stops taking requests and closes idle connections; busy ones close as their responses end. */
  close (): void {
    this.#closed = true
    for (const pool of this.#pools.values()) pool.close()
  }

  /** Closes everything now: waiting and running requests fail. */
  destroy (): void {
    this.#closed = true
    for (const pool of this.#pools.values()) pool.destroy()
  }

  readonly #onEmpty = (pool: UpstreamPool): void => {
    if (this.#pools.get(pool.key) === pool) this.#pools.delete(pool.key)
  }
}

/** How often idle connections are checked against their upstream's keep-alive timeout. */
const SWEEP_MS = 1000

const aborted = (): UpstreamError => new UpstreamError('UPSTREAM_ABORTED', 'the request was aborted')

import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { encodeCommand, ReplyError, ReplyReader, type Reply } from './resp.js'
import { deliver } from './store.js'

export interface ScriptClientOptions {
  /** redis:// or rediss:// URL, with optional user:password@ and /db. */
  url: string
  /** The Lua script every `run` executes (by SHA; loaded on every connect). */
  script: string
  /** A command unanswered after this fails (REDIS_TIMEOUT); the connection is kept. */
  commandTimeoutMs: number
  connectTimeoutMs?: number
}

export interface ScriptClientEvents {
  ready: []
  close: []
  end: []
  error: [err: Error]
}

type Callback = (err: Error | null, reply?: Reply) => void

interface Pending {
  callback: Callback
  deadline: number
  /** Set once answered or timed out: a late reply is then dropped. */
  settled: boolean
  /** To resend as EVAL when Redis lost the script (NOSCRIPT); undefined for handshake commands. */
  retry?: Invocation
}

/** A script call after the script itself: `numkeys key... arg...`, in RESP, and how many bulk strings that is. */
interface Invocation {
  body: string
  count: number
}

export class RedisUnavailableError extends Error {
  constructor (reason: string) {
    super(`Redis is unavailable: ${reason}`)
  }
}

const backoff = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 6), 2000)

/**
 * The limiter's own connection to a single Redis: it runs one Lua script and nothing else, which
 * is the whole hot path of a shared rate limit, at a fraction of a general client's cost per call
 * (docs/benchmarks.md). Commands issued during one turn of the event loop are written together in
 * one write when the loop reaches its check phase (setImmediate), so a burst of requests read in
 * one poll costs one syscall, and their replies usually arrive in one read. Nothing is queued while
 * disconnected; a command unanswered within `commandTimeoutMs` fails (one timer per busy period,
 * not per command); a lost connection reconnects with backoff, reloading the script. Events match
 * ioredis's (`ready`, `close`, `end`, `error`) so the circuit breaker follows either.
 */
export class ScriptClient extends EventEmitter<ScriptClientEvents> {
  readonly #url: URL
  readonly #script: string
  readonly #sha: string
  readonly #timeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #reader = new ReplyReader()
  readonly #queue: Pending[] = []
  #head = 0
  #socket: Socket | undefined
  #ready = false
  #closed = false
  #attempt = 0
  #reconnectTimer: NodeJS.Timeout | undefined
  #timeoutTimer: NodeJS.Timeout | undefined
  #out = ''
  /** The end-of-turn write, while one is due. */
  #flushAt: NodeJS.Immediate | undefined

  constructor (options: ScriptClientOptions) {
    super()
    this.#url = new URL(options.url)
    this.#script = options.script
    this.#sha = createHash('sha1').update(options.script).digest('hex')
    this.#timeoutMs = options.commandTimeoutMs
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 2000
  }

  get ready (): boolean {
    return this.#ready
  }

  /** Starts connecting (in the background: failures are `error` events and retries). */
  connect (): void {
    if (this.#socket !== undefined || this.#closed) return
    const url = this.#url
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const port = Number(url.port || 6379)
    const socket = url.protocol === 'rediss:' ? tlsConnect({ host, port, servername: host }) : tcpConnect({ host, port })
    this.#socket = socket
    socket.setNoDelay(true)
    socket.setTimeout(this.#connectTimeoutMs, () => socket.destroy(new Error(`connect timed out after ${this.#connectTimeoutMs} ms`)))
    socket.once(url.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
      socket.setTimeout(0)
      this.#handshake()
    })
    socket.on('data', chunk => { this.#onData(chunk) })
    socket.on('error', err => { this.emit('error', err) })
    socket.once('close', () => { this.#onClose() })
  }

  /**
   * Runs the script with `keys` and `args`: `callback` gets the script's reply, or an error (Redis
   * error reply, timeout, not connected). Written at the end of the turn, or at `flush()`.
   */
  run (keys: readonly string[], args: ReadonlyArray<string | number>, callback: Callback): void {
    if (!this.#ready) {
      deliver(callback, new RedisUnavailableError('not connected'))
      return
    }
    let body = bulk(String(keys.length))
    for (const key of keys) body += bulk(key)
    for (const arg of args) body += bulk(String(arg))
    const count = 1 + keys.length + args.length
    this.#send(`*${2 + count}\r\n$7\r\nEVALSHA\r\n$40\r\n${this.#sha}\r\n${body}`, callback, { body, count })
  }

  /** Writes the commands queued so far now, for a caller that batches its own turn (the store). */
  flush (): void {
    this.#flush()
  }

  /** Stops for good: pending commands fail, no reconnection. */
  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#reconnectTimer)
    const socket = this.#socket
    if (socket === undefined) return
    await new Promise<void>(resolve => {
      socket.once('close', () => resolve())
      socket.end()
      setTimeout(() => socket.destroy(), 1000).unref()
    })
  }

  #handshake (): void {
    const { username, password, pathname } = this.#url
    const steps: string[] = []
    if (password !== '') {
      const auth = username === '' ? ['AUTH', decodeURIComponent(password)] : ['AUTH', decodeURIComponent(username), decodeURIComponent(password)]
      steps.push(encodeCommand(auth))
    }
    const db = pathname.slice(1)
    if (db !== '' && db !== '0') steps.push(encodeCommand(['SELECT', db]))
    steps.push(encodeCommand(['SCRIPT', 'LOAD', this.#script]))
    let left = steps.length
    let failed = false
    const step: Callback = (err) => {
      if (failed) return
      if (err !== null) {
        failed = true
        this.#socket?.destroy(err)
        return
      }
      if (--left === 0) {
        this.#ready = true
        this.#attempt = 0
        this.emit('ready')
      }
    }
    for (const command of steps) this.#send(command, step)
  }

  #send (command: string, callback: Callback, retry?: Pending['retry']): void {
    const pending: Pending = { callback, deadline: performance.now() + this.#timeoutMs, settled: false, retry }
    this.#queue.push(pending)
    if (this.#timeoutTimer === undefined) this.#armTimeout(this.#timeoutMs)
    this.#out += command
    this.#flushAt ??= setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    // called early (`flush()`), the end-of-turn write has nothing left to do
    clearImmediate(this.#flushAt)
    this.#flushAt = undefined
    const out = this.#out
    this.#out = ''
    if (out !== '' && this.#socket !== undefined && !this.#socket.destroyed) this.#socket.write(out)
  }

  #onData (chunk: Buffer): void {
    try {
      this.#reader.push(chunk, this.#onReply)
    } catch (err) {
      // a byte stream we cannot read: start over on a fresh connection
      this.#socket?.destroy(err as Error)
    }
  }

  readonly #onReply = (reply: Reply): void => {
    const pending = this.#queue[this.#head]
    if (pending === undefined) return
    this.#queue[this.#head++] = undefined as unknown as Pending
    this.#compact()
    if (pending.settled) return
    if (reply instanceof ReplyError && pending.retry !== undefined && reply.message.startsWith('NOSCRIPT')) {
      // Redis lost the script (SCRIPT FLUSH, failover): EVAL sends it along and caches it again
      const { body, count } = pending.retry
      this.#send(`*${2 + count}\r\n$4\r\nEVAL\r\n${bulk(this.#script)}${body}`, pending.callback)
      return
    }
    pending.settled = true
    if (reply instanceof ReplyError) deliver(pending.callback, reply)
    else deliver(pending.callback, null, reply)
  }

  /** Drops answered entries from the front once they are the bulk of the array. */
  #compact (): void {
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  #armTimeout (ms: number): void {
    this.#timeoutTimer = setTimeout(this.#expire, Math.max(1, Math.ceil(ms)))
  }

  /**
   * Deferred to the check phase: when the event loop was stalled past a deadline, timers run before
   * the poll phase, and replies already waiting in the socket must be read before anything is failed
   * for lateness. `#timeoutTimer` stays set meanwhile, so nothing re-arms.
   */
  readonly #expire = (): void => { setImmediate(this.#expireNow) }

  /** Fails every command past its deadline (the oldest first); re-arms for the next one. */
  readonly #expireNow = (): void => {
    this.#timeoutTimer = undefined
    const now = performance.now()
    const queue = this.#queue
    for (let i = this.#head; i < queue.length; i++) {
      const pending = queue[i] as Pending
      if (pending.settled) continue
      if (pending.deadline > now) {
        this.#armTimeout(pending.deadline - now)
        return
      }
      pending.settled = true
      deliver(pending.callback, new RedisUnavailableError(`no reply within ${this.#timeoutMs} ms`))
    }
  }

  #onClose (): void {
    const wasReady = this.#ready
    this.#ready = false
    this.#socket = undefined
    this.#out = ''
    this.#reader.reset()
    clearTimeout(this.#timeoutTimer)
    this.#timeoutTimer = undefined
    const queue = this.#queue.splice(this.#head)
    this.#queue.length = 0
    this.#head = 0
    for (const pending of queue) {
      if (pending.settled) continue
      pending.settled = true
      deliver(pending.callback, new RedisUnavailableError('connection closed'))
    }
    this.emit('close')
    if (this.#closed) {
      this.emit('end')
      return
    }
    if (wasReady) this.#attempt = 0
    this.#reconnectTimer = setTimeout(() => { this.connect() }, backoff(this.#attempt++))
    this.#reconnectTimer.unref()
  }
}

const bulk = (text: string): string => `$${Buffer.byteLength(text)}\r\n${text}\r\n`

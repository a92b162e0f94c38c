import { EventEmitter } from 'node:events'
import { DenyCache } from './deny-cache.js'
import type { Decision, DecisionCallback, LimiterStore } from './store.js'

export type RedisErrorPolicy = 'local' | 'allow' | 'deny'

/** Given to `decide`'s callback when Redis is unavailable and the policy is `allow` or `deny`: the caller decides. */
export class LimiterBypassed extends Error {
  constructor (readonly policy: 'allow' | 'deny') {
    super(`limiter unavailable, policy ${policy}`)
  }
}

/** The connection events of an ioredis client (Redis or Cluster) this store follows. */
export interface ConnectionEvents {
  on (event: 'ready' | 'close' | 'end', listener: () => void): unknown
  on (event: 'error', listener: (err: Error) => void): unknown
}

export interface ResilientEvents {
  degraded: [reason: string]
  recovered: []
}

export interface ResilientOptions {
  policy: RedisErrorPolicy
  /** After a failure, how long requests skip Redis before one probes it (the breaker's cool-down). */
  probeAfterMs?: number
  now?: () => number
  /** Clients Redis refused, answered locally until their ttl (`DenyCache`); undefined: none. */
  denyCache?: DenyCache
}

type State = 'connecting' | 'up' | 'down'

/**
 * The Redis store behind a circuit breaker. While Redis answers, every decision is Redis's (shared
 * across instances). When a command fails or times out, or the connection drops, the breaker opens:
 * requests stop going to Redis and get the fallback (`local`: this instance's memory store;
 * `allow`/`deny`: a `LimiterBypassed` for the caller), one request probes Redis after
 * `probeAfterMs`, and a reconnect closes the breaker at once. `degraded` and `recovered` fire once
 * per outage. Until the first connection, requests get the fallback without an outage being declared.
 */
export class ResilientStore extends EventEmitter<ResilientEvents> implements LimiterStore {
  readonly kind = 'redis' as const
  readonly #redis: LimiterStore
  readonly #local: LimiterStore
  readonly #policy: RedisErrorPolicy
  readonly #probeAfterMs: number
  readonly #now: () => number
  readonly #denied: DenyCache | undefined
  /** Decisions made without Redis (local, allowed or denied by policy). */
  fallbacks = 0
  #state: State = 'connecting'
  #probeAt = 0
  #probing = false

  constructor (redis: LimiterStore, local: LimiterStore, connection: ConnectionEvents, options: ResilientOptions) {
    super()
    this.#redis = redis
    this.#local = local
    this.#policy = options.policy
    this.#probeAfterMs = options.probeAfterMs ?? 1000
    this.#now = options.now ?? Date.now
    this.#denied = options.denyCache
    connection.on('ready', () => this.#up())
    connection.on('close', () => this.#down('connection closed'))
    connection.on('end', () => this.#down('connection ended'))
    connection.on('error', err => this.#down(err.message))
  }

  /** True while decisions are not Redis's (before the first connection, and during an outage). */
  get degraded (): boolean {
    return this.#state !== 'up'
  }

  decide (key: string, windowMs: number, max: number, done: DecisionCallback): void {
    if (this.#state !== 'up') {
      if (this.#state === 'connecting' || this.#probing || this.#now() < this.#probeAt) {
        this.#fallback(key, windowMs, max, done)
        return
      }
      this.#probing = true
    } else if (this.#denied !== undefined) {
      const refused = this.#denied.check(key, max)
      if (refused !== undefined) {
        done(null, refused)
        return
      }
    }
    this.#redis.decide(key, windowMs, max, (err, decision) => {
      if (err !== null) {
        this.#probing = false
        this.#down(err.message)
        this.#fallback(key, windowMs, max, done)
        return
      }
      if (this.#probing) this.#up()
      this.#denied?.note(key, decision as Decision)
      done(null, decision)
    })
  }

  async close (): Promise<void> {
    await this.#local.close()
  }

  #fallback (key: string, windowMs: number, max: number, done: DecisionCallback): void {
    this.fallbacks++
    if (this.#policy === 'local') this.#local.decide(key, windowMs, max, done)
    else done(new LimiterBypassed(this.#policy))
  }

  #up (): void {
    this.#probing = false
    const was = this.#state
    this.#state = 'up'
    if (was !== 'down') return
    // a restarted Redis may have lost the counts behind the cached refusals: ask it again
    this.#denied?.clear()
    this.emit('recovered')
  }

  #down (reason: string): void {
    this.#probeAt = this.#now() + this.#probeAfterMs
    if (this.#state === 'down') return
    this.#state = 'down'
    this.emit('degraded', reason)
  }
}

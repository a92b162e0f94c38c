import type { Cluster, Redis } from 'ioredis'
import { LIMIT_LUA } from './lua.js'
import { encodeArgs, ScriptClient, type EncodedArgs } from './script-client.js'
import type { Reply } from './resp.js'
import { hit, type Algorithm, type Decision, type DecisionCallback, type LimiterStore } from './store.js'

export interface RedisStoreOptions {
  algorithm: Algorithm
  /** Namespace of every key (KEY_PREFIX), e.g. `sluice:`. */
  prefix: string
}

/** The script as ioredis exposes it once defined (EVALSHA, falling back to EVAL by itself). */
interface LimitCommand {
  sluiceLimit (key: string, windowMs: number, max: number, sliding: 0 | 1): Promise<unknown>
}

/** The script's reply as a decision; a reply of another shape (not our script's) is an error, not a crash. */
function answer (reply: unknown, done: DecisionCallback): void {
  if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'number' || typeof reply[2] !== 'number') {
    done(new Error(`unexpected reply from the limiter script: ${JSON.stringify(reply)?.slice(0, 100) ?? String(reply)}`))
    return
  }
  done(null, { allowed: reply[0] === 1, current: reply[1], ttl: reply[2] })
}

/**
 * Shared counters in Redis: one Lua script per decision (atomic, so instances sharing Redis admit
 * exactly `max` together), on Redis's clock, in one hash per client, `<prefix>rl:{<key>}` (a
 * Cluster hash tag), which expires once it no longer counts. It runs over the limiter's own
 * `ScriptClient` (single Redis: the lean hot path) or an ioredis client (Cluster, which routes by
 * slot). No retries here: the caller bounds the time and wraps this store in its circuit breaker.
 * The client is the caller's, so `close` leaves it open.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const
  readonly #script: ScriptClient | undefined
  readonly #ioredis: LimitCommand | undefined
  readonly #prefix: string
  readonly #sliding: 0 | 1
  /** Encoded script arguments by window, then max: a handful of policies, encoded once each. */
  readonly #args = new Map<number, Map<number, EncodedArgs>>()

  constructor (client: ScriptClient | Redis | Cluster, options: RedisStoreOptions) {
    if (client instanceof ScriptClient) {
      this.#script = client
    } else {
      client.defineCommand('sluiceLimit', { numberOfKeys: 1, lua: LIMIT_LUA })
      this.#ioredis = client as unknown as LimitCommand
    }
    this.#prefix = `${options.prefix}rl:`
    this.#sliding = options.algorithm === 'sliding-window' ? 1 : 0
  }

  /** The Redis key holding `key`'s counters. */
  keyFor (key: string): string {
    return `${this.#prefix}{${key}}`
  }

  decide (key: string, windowMs: number, max: number, done: DecisionCallback): void {
    const script = this.#script
    if (script === undefined) {
      (this.#ioredis as LimitCommand).sluiceLimit(this.keyFor(key), windowMs, max, this.#sliding)
        .then(reply => { answer(reply, done) }, (err: Error) => { done(err) })
      return
    }
    script.run(this.keyFor(key), this.#encoded(windowMs, max), (err: Error | null, reply?: Reply) => {
      if (err !== null) done(err)
      else answer(reply, done)
    })
  }

  /** `decide` as a promise (tests, tools). */
  async hit (key: string, windowMs: number, max: number): Promise<Decision> {
    return hit(this, key, windowMs, max)
  }

  close (): void {}

  #encoded (windowMs: number, max: number): EncodedArgs {
    let byMax = this.#args.get(windowMs)
    if (byMax === undefined) this.#args.set(windowMs, byMax = new Map())
    let args = byMax.get(max)
    if (args === undefined) byMax.set(max, args = encodeArgs([windowMs, max, this.#sliding]))
    return args
  }
}

import type { Cluster, Redis } from 'ioredis'
import { LIMIT_LUA } from './lua.js'
import type { Algorithm, Decision, LimiterStore } from './store.js'

export interface RedisStoreOptions {
  algorithm: Algorithm
  /** Namespace of every key (KEY_PREFIX), e.g. `sluice:`. */
  prefix: string
}

/** The script as ioredis exposes it once defined (EVALSHA, falling back to EVAL by itself). */
interface LimitCommand {
  sluiceLimit (key: string, windowMs: number, max: number, sliding: 0 | 1): Promise<unknown>
}

/**
 * Shared counters in Redis: one Lua script per decision (atomic, so instances sharing Redis admit
 * exactly `max` together), on Redis's clock, in one hash per client, `<prefix>rl:{<key>}` (a
 * Cluster hash tag), which expires once it no longer counts. No retries and no timeouts here: the
 * caller configures ioredis and wraps this store in its circuit breaker. The client is the
 * caller's, so `close` leaves it open.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const
  readonly #client: LimitCommand
  readonly #prefix: string
  readonly #sliding: 0 | 1

  constructor (client: Redis | Cluster, options: RedisStoreOptions) {
    client.defineCommand('sluiceLimit', { numberOfKeys: 1, lua: LIMIT_LUA })
    this.#client = client as unknown as LimitCommand
    this.#prefix = `${options.prefix}rl:`
    this.#sliding = options.algorithm === 'sliding-window' ? 1 : 0
  }

  /** The Redis key holding `key`'s counters. */
  keyFor (key: string): string {
    return `${this.#prefix}{${key}}`
  }

  async hit (key: string, windowMs: number, max: number): Promise<Decision> {
    const reply = await this.#client.sluiceLimit(this.keyFor(key), windowMs, max, this.#sliding)
    const [allowed, current, ttl] = reply as [number, number, number]
    return { allowed: allowed === 1, current, ttl }
  }

  close (): void {}
}

import { expiresAt, step, type WindowState } from './algorithm.js'
import type { Algorithm, Decision, DecisionCallback, LimiterStore } from './store.js'

export interface MemoryStoreOptions {
  algorithm: Algorithm
  /** Most clients remembered at once; past it the oldest-inserted are forgotten. */
  maxKeys?: number
  /** How often expired clients are swept (ms). */
  sweepIntervalMs?: number
  now?: () => number
}

/** A client's state plus when it stops mattering (one object per client, mutated in place). */
interface Entry extends WindowState {
  expires: number
}

/**
 * This instance's own counters (no Redis, or Redis down under `local`). `hit` is synchronous.
 * Memory is bounded twice: an unref'd timer sweeps entries whose windows no longer count, and at
 * `maxKeys` the oldest-inserted entry is evicted for each new one. An entry is moved to the end of
 * the map when its window rolls (once per window per client), so the map's order approximates
 * recency and eviction hits idle clients first.
 */
export class MemoryStore implements LimiterStore {
  readonly kind = 'memory' as const
  readonly #algorithm: Algorithm
  readonly #maxKeys: number
  readonly #now: () => number
  readonly #entries = new Map<string, Entry>()
  readonly #timer: NodeJS.Timeout

  constructor (options: MemoryStoreOptions) {
    this.#algorithm = options.algorithm
    this.#maxKeys = Math.max(1, options.maxKeys ?? 100_000)
    this.#now = options.now ?? Date.now
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 10_000)
    this.#timer.unref()
  }

  /** Clients currently remembered. */
  get size (): number {
    return this.#entries.size
  }

  decide (key: string, windowMs: number, max: number, done: DecisionCallback): void {
    done(null, this.hit(key, windowMs, max))
  }

  /** `decide`'s answer, returned: this store never waits. */
  hit (key: string, windowMs: number, max: number): Decision {
    const now = this.#now()
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      if (this.#entries.size >= this.#maxKeys) this.#evictOldest()
      entry = { window: Math.floor(now / windowMs), count: 0, previous: 0, expires: 0 }
      this.#entries.set(key, entry)
    } else if (entry.window !== Math.floor(now / windowMs)) {
      // a new window for this client: move it to the back of the eviction order
      this.#entries.delete(key)
      this.#entries.set(key, entry)
    }
    const decision = step(entry, now, windowMs, max, this.#algorithm)
    entry.expires = expiresAt(entry, windowMs, this.#algorithm)
    return decision
  }

  /** Forgets every client whose counts no longer matter; returns how many. */
  sweep (): number {
    const now = this.#now()
    let removed = 0
    for (const [key, entry] of this.#entries) {
      if (entry.expires <= now) {
        this.#entries.delete(key)
        removed++
      }
    }
    return removed
  }

  close (): void {
    clearInterval(this.#timer)
  }

  #evictOldest (): void {
    const oldest = this.#entries.keys().next()
    if (oldest.done !== true) this.#entries.delete(oldest.value)
  }
}

import type { Decision } from './store.js'

/**
 * Remembers clients Redis refused, until the moment Redis said they may come back, so a client
 * hammering a closed budget costs no Redis call per request. Exact: a refusal's ttl is the earliest
 * time this client's next request could be admitted (admissions elsewhere only push it later, and
 * refused requests are not counted), so answering "no" locally until then is what Redis would say.
 * Times are local and relative (now + ttl), so a clock offset between this host and Redis does not
 * matter. Bounded: past `maxKeys` the oldest entry is forgotten (it then costs a Redis call again).
 */
export class DenyCache {
  readonly #until = new Map<string, number>()
  readonly #maxKeys: number
  readonly #now: () => number

  constructor (options: { maxKeys?: number, now?: () => number } = {}) {
    this.#maxKeys = Math.max(1, options.maxKeys ?? 10_000)
    this.#now = options.now ?? Date.now
  }

  get size (): number {
    return this.#until.size
  }

  /** The refusal to answer with, or undefined when `key` must be asked of Redis. */
  check (key: string, max: number): Decision | undefined {
    if (this.#until.size === 0) return undefined
    const until = this.#until.get(key)
    if (until === undefined) return undefined
    const ttl = until - this.#now()
    if (ttl <= 0) {
      this.#until.delete(key)
      return undefined
    }
    return { allowed: false, current: max + 1, ttl }
  }

  /** Forgets every refusal: after an outage Redis may have lost the counts they came from. */
  clear (): void {
    this.#until.clear()
  }

  /** Records Redis's answer: a refusal is remembered for its ttl. */
  note (key: string, decision: Decision): void {
    if (decision.allowed) return
    if (this.#until.size >= this.#maxKeys && !this.#until.has(key)) {
      const oldest = this.#until.keys().next().value as string
      this.#until.delete(oldest)
    }
    this.#until.set(key, this.#now() + decision.ttl)
  }
}

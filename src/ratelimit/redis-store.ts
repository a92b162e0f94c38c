import type { Cluster, Redis } from 'ioredis'
import { LIMIT_LUA } from './lua.js'
import { ScriptClient } from './script-client.js'
import type { Reply } from './resp.js'
import { deliver, hit, type Algorithm, type Decision, type DecisionCallback, type LimiterStore } from './store.js'

export interface RedisStoreOptions {
  algorithm: Algorithm
  /** Namespace of every key (KEY_PREFIX), e.g. `sluice:`. */
  prefix: string
}

/** The script as ioredis exposes it once defined (EVALSHA, falling back to EVAL by itself). */
interface LimitCommand {
  sluiceLimit (numKeys: 1, key: string, sliding: 0 | 1, windowMs: number, max: number, hits: number): Promise<unknown>
}

/** One client's requests of one event-loop turn: decided together, in arrival order. */
interface Batch {
  key: string
  windowMs: number
  max: number
  waiting: DecisionCallback[]
}

/** Keys per script call: bounds how long one call holds Redis (a few µs per key). */
const KEYS_PER_CALL = 128

/**
 * Shared counters in Redis, in one hash per client, `<prefix>rl:{<key>}` (a Cluster hash tag),
 * which expires once it no longer counts. Decisions are made by a Lua script (lua.ts), atomically,
 * on Redis's clock, so instances sharing Redis admit exactly `max` together.
 *
 * The requests of one event-loop turn are decided together at its end: a client's n requests are
 * one entry of the script (n hits, the first ones admitted while the budget lasts: the same
 * answers as n calls one after the other), and with a single Redis the whole turn is one EVALSHA
 * over the limiter's own `ScriptClient`. Through ioredis (Redis Cluster, which routes by slot)
 * each client is its own call. No retries here: the caller bounds the time and wraps this store in
 * its circuit breaker. The client is the caller's, so `close` leaves it open.
 */
export class RedisStore implements LimiterStore {
  readonly kind = 'redis' as const
  readonly #script: ScriptClient | undefined
  readonly #ioredis: LimitCommand | undefined
  readonly #prefix: string
  readonly #sliding: 0 | 1
  /**
   * This turn's batches, in arrival order, and by key. Both are replaced each turn, never emptied
   * in place: `Map#clear` on a map that has reached the old generation gives it a fresh table
   * there, and the tables left behind keep this turn's requests alive through every scavenge until
   * the next full GC (scavenges 5× slower, the heap growing by tens of MB a second; docs/benchmarks.md).
   */
  #batches: Batch[] = []
  #byKey = new Map<string, Batch>()

  constructor (client: ScriptClient | Redis | Cluster, options: RedisStoreOptions) {
    if (client instanceof ScriptClient) {
      this.#script = client
    } else {
      client.defineCommand('sluiceLimit', { lua: LIMIT_LUA })
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
    let id = key
    let batch = this.#byKey.get(id)
    if (batch !== undefined && (batch.windowMs !== windowMs || batch.max !== max)) {
      // the same client under another policy in this turn (the gateway's keys never are): apart
      id = `${windowMs}/${max}/${key}`
      batch = this.#byKey.get(id)
    }
    if (batch === undefined) {
      if (this.#batches.length === 0) setImmediate(this.#send)
      batch = { key, windowMs, max, waiting: [] }
      this.#byKey.set(id, batch)
      this.#batches.push(batch)
    }
    batch.waiting.push(done)
  }

  /** `decide` as a promise (tests, tools). */
  async hit (key: string, windowMs: number, max: number): Promise<Decision> {
    return hit(this, key, windowMs, max)
  }

  close (): void {}

  readonly #send = (): void => {
    const batches = this.#batches
    this.#batches = []
    this.#byKey = new Map()
    const script = this.#script
    if (script === undefined) {
      for (const batch of batches) this.#sendOne(batch)
      return
    }
    for (let from = 0; from < batches.length; from += KEYS_PER_CALL) {
      const group = batches.slice(from, from + KEYS_PER_CALL)
      const keys: string[] = []
      const args: number[] = [this.#sliding]
      for (const batch of group) {
        keys.push(this.keyFor(batch.key))
        args.push(batch.windowMs, batch.max, batch.waiting.length)
      }
      script.run(keys, args, (err: Error | null, reply?: Reply) => { answer(group, err, reply) })
    }
    // at the end of this turn, not the next one's
    script.flush()
  }

  #sendOne (batch: Batch): void {
    (this.#ioredis as LimitCommand).sluiceLimit(1, this.keyFor(batch.key), this.#sliding, batch.windowMs, batch.max, batch.waiting.length)
      .then(reply => { answer([batch], null, reply) }, (err: Error) => { answer([batch], err) })
  }
}

/** Hands each waiting request its decision from the script's reply; a reply of another shape is an error, not a crash. */
function answer (group: readonly Batch[], err: Error | null, reply?: unknown): void {
  if (err === null && !wellFormed(reply, group.length)) {
    err = new Error(`unexpected reply from the limiter script: ${JSON.stringify(reply)?.slice(0, 100) ?? String(reply)}`)
  }
  for (let i = 0; i < group.length; i++) {
    const { max, waiting } = group[i] as Batch
    if (err !== null) {
      for (const done of waiting) deliver(done, err)
      continue
    }
    const numbers = reply as number[]
    const admitted = numbers[4 * i] as number
    const base = numbers[4 * i + 1] as number
    const remaining = numbers[4 * i + 2] as number
    const refusedTtl = numbers[4 * i + 3] as number
    for (let j = 0; j < waiting.length; j++) {
      const decision: Decision = j < admitted
        ? { allowed: true, current: Math.min(max, base + j + 1), ttl: remaining }
        : { allowed: false, current: max + 1, ttl: refusedTtl }
      deliver(waiting[j] as DecisionCallback, null, decision)
    }
  }
}

function wellFormed (reply: unknown, keys: number): boolean {
  if (!Array.isArray(reply) || reply.length !== 4 * keys) return false
  for (const value of reply) if (typeof value !== 'number') return false
  return true
}

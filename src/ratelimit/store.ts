export const ALGORITHMS = ['sliding-window', 'fixed-window'] as const
export type Algorithm = typeof ALGORITHMS[number]

/**
 * The answer for one request. `current` is the client's count after this request as
 * the limiter reads it (allowed: at most `max`; denied: `max + 1`). `ttl` is in ms: when
 * allowed, the time until the current window ends; when denied, the time until a request would
 * be admitted again (what `retry-after` says).
 */
export interface Decision {
  allowed: boolean
  current: number
  ttl: number
}

/** Gets a decision, or why there is none (Redis failed, or a `LimiterBypassed`). */
export type DecisionCallback = (err: Error | null, decision?: Decision) => void

/**
 * Counts one request for `key` against `max` per `windowMs`. A denied request is not counted,
 * so a client hammering a closed budget does not extend its own ban. A callback, not a promise:
 * the in-memory store answers synchronously, and a Redis answer continues the request straight
 * from the reply, without promise jobs in between (this is the per-request path).
 */
export interface LimiterStore {
  readonly kind: 'memory' | 'redis'
  decide (key: string, windowMs: number, max: number, done: DecisionCallback): void
  close (): Promise<void> | void
}

/** `decide` as a promise, for callers off the request path. */
export async function hit (store: LimiterStore, key: string, windowMs: number, max: number): Promise<Decision> {
  return new Promise((resolve, reject) => {
    store.decide(key, windowMs, max, (err, decision) => {
      if (err !== null) reject(err)
      else resolve(decision as Decision)
    })
  })
}

/**
 * Calls back outside the caller's loop: an exception thrown by `callback` (a bug in it) would
 * otherwise stop the answers after it (a reply loop, a batch), or end in a catch that drops the
 * connection. It is thrown again on its own, as an uncaught exception.
 */
export function deliver<E, V> (callback: (err: E, value?: V) => void, err: E, value?: V): void {
  try {
    callback(err, value)
  } catch (thrown) {
    process.nextTick(() => { throw thrown })
  }
}

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

/**
 * Counts one request for `key` against `max` per `windowMs`. A denied request is not counted,
 * so a client hammering a closed budget does not extend its own ban.
 */
export interface LimiterStore {
  readonly kind: 'memory' | 'redis'
  hit (key: string, windowMs: number, max: number): Decision | Promise<Decision>
  close (): Promise<void> | void
}

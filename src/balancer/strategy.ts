import type { Upstream } from '../pool/upstream.js'

export const BALANCERS = ['round-robin', 'weighted-round-robin', 'least-connections', 'ip-hash', 'p2c', 'ewma'] as const
export type BalancerName = typeof BALANCERS[number]

export interface PickContext {
  /** The client key (its IP): what `ip-hash` hashes. */
  readonly key: string
  /** Servers already tried for this request (a retry must go elsewhere); usually empty. */
  readonly tried: readonly Upstream[]
}

/**
 * A balancing strategy only answers "which one next" among the routable servers; the pool owns
 * health, draining and membership. `servers` is an immutable snapshot: a new array means the set
 * changed, so strategies may cache per-snapshot structures (the ip-hash ring) by identity.
 */
export interface Strategy {
  readonly name: BalancerName
  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined
  /**
   * Called after every attempt with its time to response headers; a failed attempt reports a
   * penalty (the response timeout) so a server that refuses fast does not look fast.
   * `now` is `performance.now()`, the clock strategies read themselves.
   */
  observe? (server: Upstream, latencyMs: number, now: number): void
}

export interface StrategyOptions {
  /** Source of randomness in [0, 1) (p2c); injectable for deterministic tests. */
  random?: () => number
  /** Monotonic clock in ms (ewma); injectable for tests. */
  now?: () => number
}

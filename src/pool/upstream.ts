export type ServerState = 'unknown' | 'healthy' | 'unhealthy' | 'draining'

export interface CheckResult {
  at: string
  ok: boolean
  status: number | null
  latencyMs: number
}

/** The public view of a pool member (SPEC §5 `Server`). */
export interface ServerView {
  id: string
  url: string
  name: string
  weight: number
  enabled: boolean
  state: ServerState
  inFlight: number
  totalRequests: number
  failedRequests: number
  lastCheck: CheckResult | null
  addedAt: string
}

/**
 * One pool member. The object lives as long as the server is in the pool, so its counters
 * (in-flight, EWMA, failure streaks) survive every rebuild of the routable snapshot.
 */
export class Upstream {
  readonly id: string
  readonly url: string
  name: string
  weight: number
  enabled: boolean
  state: ServerState = 'unknown'
  inFlight = 0
  totalRequests = 0
  failedRequests = 0
  lastCheck: CheckResult | null = null
  readonly addedAt: Date

  /** Peak-EWMA of time to response headers, in ms (0 = never observed). */
  ewmaMs = 0
  /** When ewmaMs was last updated (ms, monotonic clock). */
  ewmaStamp = 0
  /** Consecutive passive failures (connect errors, timeouts, 502/503/504). */
  passiveFailures = 0
  /** Consecutive active-check passes and failures. */
  checkPasses = 0
  checkFailures = 0

  constructor (id: string, url: string, name: string, weight: number, enabled: boolean, addedAt = new Date()) {
    this.id = id
    this.url = url
    this.name = name
    this.weight = weight
    this.enabled = enabled
    this.addedAt = addedAt
  }

  get routable (): boolean {
    return this.enabled && this.state === 'healthy'
  }

  toJSON (): ServerView {
    return {
      id: this.id,
      url: this.url,
      name: this.name,
      weight: this.weight,
      enabled: this.enabled,
      state: this.state,
      inFlight: this.inFlight,
      totalRequests: this.totalRequests,
      failedRequests: this.failedRequests,
      lastCheck: this.lastCheck,
      addedAt: this.addedAt.toISOString()
    }
  }
}

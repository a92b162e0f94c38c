import { LatencyHistogram } from './histogram.js'
import { RateWindow } from './rate.js'

export interface RequestCounts {
  /** Proxied requests answered (any status, gateway errors and 429s included). */
  total: number
  /** Of those, answered 5xx (by the upstream or by the gateway). */
  errors: number
  /** Of those, refused 429 by the gateway's rate limiter. */
  rateLimited: number
  /** Mean requests per second over the last 60 s (or since start, when younger). */
  perSecond: number
  /** `errors / total` since start, 0..1 (0 before the first request). */
  errorRate: number
}

export interface LatencySummary {
  avg: number
  min: number
  max: number
  p50: number
  p95: number
  p99: number
}

export interface RequestsSnapshot {
  uptimeSeconds: number
  requests: RequestCounts
  latencyMs: LatencySummary
  /** Responses by status code, only the codes seen: `{ "200": 12, "429": 3 }`. */
  statusCodes: Record<string, number>
}

export interface RequestStatsOptions {
  /** Monotonic clock in ms (tests inject one). */
  now?: () => number
  /** Width of the `perSecond` window. Default 60. */
  windowSeconds?: number
}

const PERCENTILES = [0.5, 0.95, 0.99] as const

/** Rounded to `digits` decimals, for a readable JSON document. */
function round (value: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(value * f) / f
}

/**
 * The aggregates behind GET /admin/status, in bounded memory: counters, one slot per status code,
 * a fixed log-scale latency histogram and a 60-slot per-second ring. Recording is a handful of
 * array increments; nothing grows with traffic.
 */
export class RequestStats {
  readonly #now: () => number
  readonly #startedAt: number
  readonly #latency = new LatencyHistogram()
  readonly #rate: RateWindow
  readonly #codes = new Float64Array(1000)
  #total = 0
  #errors = 0
  #rateLimited = 0

  constructor (options: RequestStatsOptions = {}) {
    this.#now = options.now ?? (() => performance.now())
    this.#startedAt = this.#now()
    this.#rate = new RateWindow(options.windowSeconds ?? 60, this.#now)
  }

  /** One answered request: its status, its duration in ms, and whether the limiter refused it. */
  record (status: number, durationMs: number, limited: boolean): void {
    this.#total++
    if (status >= 500) this.#errors++
    if (limited) this.#rateLimited++
    if (status >= 0 && status < 1000) this.#codes[status] = (this.#codes[status] as number) + 1
    this.#latency.record(durationMs)
    this.#rate.add()
  }

  snapshot (): RequestsSnapshot {
    const latency = this.#latency
    const [p50, p95, p99] = latency.percentiles(PERCENTILES) as [number, number, number]
    const statusCodes: Record<string, number> = {}
    const codes = this.#codes
    for (let code = 0; code < codes.length; code++) {
      if (codes[code] !== 0) statusCodes[String(code)] = codes[code] as number
    }
    return {
      uptimeSeconds: Math.floor((this.#now() - this.#startedAt) / 1000),
      requests: {
        total: this.#total,
        errors: this.#errors,
        rateLimited: this.#rateLimited,
        perSecond: round(this.#rate.perSecond(), 3),
        errorRate: this.#total === 0 ? 0 : round(this.#errors / this.#total, 4)
      },
      latencyMs: {
        avg: round(latency.mean, 3),
        min: round(latency.min, 3),
        max: round(latency.max, 3),
        p50: round(p50, 3),
        p95: round(p95, 3),
        p99: round(p99, 3)
      },
      statusCodes
    }
  }
}

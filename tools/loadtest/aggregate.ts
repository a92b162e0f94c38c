// Counting every response of a load test, in bounded memory (plain functions: no I/O).
import { LatencyHistogram } from '../../src/stats/histogram.js'

/** The upstream label of a response without `x-served-by`. */
export const NONE = '(none)'
/** The label of further upstream names once MAX_UPSTREAMS distinct ones were seen. */
export const OTHER = '(other)'
export const MAX_UPSTREAMS = 100
const MAX_LABEL = 64

/** The machine-readable result (`--json`). */
export interface LoadtestResult {
  url: string
  connections: number
  /** Measured run time, seconds. */
  durationSeconds: number
  requests: { total: number, perSecond: number }
  latencyMs: { p50: number, p95: number, p99: number, max: number }
  statusCodes: Record<string, number>
  /** Share of responses that were 429, 0..1. */
  rateLimitedShare: number
  /** Connection errors (timeouts not included). */
  errors: number
  timeouts: number
  /** Responses by `x-served-by`; `(none)` for those without it. */
  upstreams: Record<string, number>
}

/** Buckets 1 % wide: every latency percentile the report prints is within 0.5 % of the true one. */
export const LATENCY_PRECISION = 0.01

/** Every response of a run: status codes, upstream (from `x-served-by`) and latency. */
export class Tally {
  total = 0
  readonly statusCodes = new Map<number, number>()
  readonly upstreams = new Map<string, number>()
  readonly latency = new LatencyHistogram({ precision: LATENCY_PRECISION })

  record (status: number, servedBy: string | undefined, latencyMs: number): void {
    this.total++
    this.statusCodes.set(status, (this.statusCodes.get(status) ?? 0) + 1)
    let label = servedBy ?? NONE
    if (!this.upstreams.has(label) && this.upstreams.size >= MAX_UPSTREAMS) label = OTHER
    this.upstreams.set(label, (this.upstreams.get(label) ?? 0) + 1)
    this.latency.record(latencyMs)
  }
}

/**
 * The `x-served-by` value of a response, from what autocannon's client emits on 'headers'
 * (http-parser-js: `{ headers: [name, value, name, value, ...] }`; a plain header object is
 * accepted too). Control characters are replaced and the value cut to 64 characters, since it is
 * printed to a terminal; an empty value counts as none.
 */
export function servedByFrom (info: unknown): string | undefined {
  if (typeof info !== 'object' || info === null) return undefined
  const headers: unknown = (info as { headers?: unknown }).headers ?? info
  let value: unknown
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'x-served-by') { value = headers[i + 1]; break }
    }
  } else if (typeof headers === 'object' && headers !== null) {
    const entry = Object.entries(headers).find(([name]) => name.toLowerCase() === 'x-served-by')
    value = Array.isArray(entry?.[1]) ? entry[1][0] : entry?.[1]
  }
  if (typeof value !== 'string') return undefined
  const label = value.trim().replace(/\p{Cc}/gu, '?').slice(0, MAX_LABEL)
  return label === '' ? undefined : label
}

/** Upstream names in natural order (b2 before b10), `(other)` and `(none)` last. */
export function upstreamOrder (a: string, b: string): number {
  const rank = (s: string): number => s === NONE ? 2 : s === OTHER ? 1 : 0
  return rank(a) - rank(b) || a.localeCompare(b, 'en', { numeric: true })
}

export interface RunFacts {
  url: string
  connections: number
  /** Measured run time, seconds. */
  elapsedSeconds: number
  /** autocannon's count: connection errors and timeouts. */
  errors: number
  timeouts: number
}

export function toResult (tally: Tally, facts: RunFacts): LoadtestResult {
  const round = (n: number, digits: number): number => Number(n.toFixed(digits))
  const statusCodes: Record<string, number> = {}
  for (const [code, n] of [...tally.statusCodes].sort((a, b) => a[0] - b[0])) statusCodes[String(code)] = n
  const upstreams: Record<string, number> = {}
  for (const name of [...tally.upstreams.keys()].sort(upstreamOrder)) upstreams[name] = tally.upstreams.get(name)!
  const { latency } = tally
  const [p50, p95, p99] = latency.percentiles([0.5, 0.95, 0.99]) as [number, number, number]
  return {
    url: facts.url,
    connections: facts.connections,
    durationSeconds: round(facts.elapsedSeconds, 2),
    requests: {
      total: tally.total,
      perSecond: facts.elapsedSeconds > 0 ? round(tally.total / facts.elapsedSeconds, 1) : 0
    },
    latencyMs: {
      p50: round(p50, 2),
      p95: round(p95, 2),
      p99: round(p99, 2),
      max: round(latency.max, 2)
    },
    statusCodes,
    rateLimitedShare: tally.total > 0 ? (tally.statusCodes.get(429) ?? 0) / tally.total : 0,
    errors: Math.max(0, facts.errors - facts.timeouts),
    timeouts: facts.timeouts,
    upstreams
  }
}

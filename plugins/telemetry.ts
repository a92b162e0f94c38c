import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { Upstream, CheckResult } from '../src/pool/upstream.js'
import type { Limiter } from './rate-limit.js'
import type { ClientErrorReason } from '../src/client-error.js'
// for its declaration of `fastify.balancer`, read here (erased at run time)
import type {} from './balancer.js'
import { AccessLog, type AccessEntry } from '../src/access-log.js'
import { pathOf } from '../src/gateway-paths.js'
import { BucketHistograms } from '../src/stats/buckets.js'
import { RequestStats } from '../src/stats/requests.js'
import { UpstreamSeries } from '../src/stats/series.js'

export interface Telemetry {
  /** Sluice's own Prometheus registry (never prom-client's global one): what GET /metrics serves. */
  readonly registry: Registry
  /** The bounded aggregates behind GET /admin/status. */
  readonly stats: RequestStats
  /** Counts a connection refused by Node's parser or timeouts before any route saw it. */
  clientError (reason: ClientErrorReason): void
  /**
   * Accounts for one finished (or, with status 499, abandoned) proxied request: counters, the
   * duration histogram, the status aggregates and the access log line. Synchronous and cheap; the
   * caller counts each request once.
   */
  requestDone (done: FinishedRequest): void
}

/** What the metrics, the status aggregates and the access log line need of a finished request. */
export interface FinishedRequest {
  reqId: string
  method: string
  /** The request target as received (the query string is cut for the log). */
  url: string
  status: number
  upstream: Upstream | null
  durationMs: number
  clientIp: string
  /** Extra attempts on other upstreams. */
  retried: number
}

declare module 'fastify' {
  interface FastifyInstance {
    telemetry: Telemetry
  }
}

/** Label values of `method`: the standard methods, anything else is OTHER (bounded cardinality). */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'OTHER'] as const
const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]))
const OTHER = METHODS.length - 1
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
const NO_UPSTREAM = 'none'
const CHECK_RESULTS = ['success', 'failure'] as const
const CLIENT_ERROR_REASONS: readonly ClientErrorReason[] = ['timeout', 'headers_too_large', 'malformed']
/** Seconds; from sub-millisecond answers up to the default UPSTREAM_TIMEOUT. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** pino's numeric levels: the access line is written only when `info` is enabled. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }

/**
 * Bounds of the client-controlled fields of the access line (a path can be as long as Node's header
 * limit, x-forwarded-for under TRUST_PROXY too), so a line stays under PIPE_BUF (4 KiB): a pipe then
 * takes it whole, and other WORKERS writing the same pipe cannot cut into it.
 */
const MAX_LOGGED_PATH = 1024
const MAX_LOGGED_IP = 64
const bounded = (text: string, max: number): string => text.length <= max ? text : `${text.slice(0, max)}...`

const classIndex = (status: number): number => {
  const i = Math.floor(status / 100) - 1
  return i < 0 ? 0 : i > 4 ? 4 : i
}

const telemetryPlugin: FastifyPluginAsync = async (fastify) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const stats = new RequestStats()

  // the pool and the limiter are decorated by plugins registered after this one: read them late
  const poolHas = (id: string): boolean => fastify.hasDecorator('balancer') && fastify.balancer.pool.get(id) !== undefined
  const requests = new UpstreamSeries(METHODS.length * CLASSES.length, poolHas, [NO_UPSTREAM])
  const checks = new UpstreamSeries(CHECK_RESULTS.length, poolHas)

  // counted in plain arrays on the hot path; copied into prom-client only when scraped
  new Counter({ // eslint-disable-line no-new
    name: 'sluice_requests_total',
    help: 'Proxied requests answered, by upstream server id ("none" when none was picked), method and status class. 429s and gateway 5xx included.',
    labelNames: ['upstream', 'method', 'status_class'],
    registers: [registry],
    collect () {
      this.reset()
      requests.forEach((upstream, column, value) => {
        this.inc({ upstream, method: METHODS[Math.floor(column / CLASSES.length)] as string, status_class: CLASSES[column % CLASSES.length] as string }, value)
      })
    }
  })
  const durations = new BucketHistograms(DURATION_BUCKETS, CLASSES.length)
  new DurationHistogram(registry, durations) // eslint-disable-line no-new
  const retries = new Counter({
    name: 'sluice_retries_total',
    help: 'Extra attempts made on another upstream after a failed attempt.',
    registers: [registry]
  })
  new Counter({ // eslint-disable-line no-new
    name: 'sluice_health_checks_total',
    help: 'Active health checks, by upstream server id and result (success: 2xx/3xx; failure: another status, a timeout or no connection).',
    labelNames: ['upstream', 'result'],
    registers: [registry],
    collect () {
      this.reset()
      checks.forEach((upstream, column, value) => { this.inc({ upstream, result: CHECK_RESULTS[column] as string }, value) })
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'sluice_upstream_in_flight',
    help: 'Requests in flight to each upstream server.',
    labelNames: ['upstream'],
    registers: [registry],
    collect () {
      this.reset()
      for (const server of servers(fastify)) this.set({ upstream: server.id }, server.inFlight)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'sluice_upstream_healthy',
    help: 'Whether each upstream server is healthy (1) or not (0: unknown, unhealthy or draining).',
    labelNames: ['upstream'],
    registers: [registry],
    collect () {
      this.reset()
      for (const server of servers(fastify)) this.set({ upstream: server.id }, server.state === 'healthy' ? 1 : 0)
    }
  })
  const clientErrors = new Counter({
    name: 'sluice_client_errors_total',
    help: 'Client connections answered 400, 408 or 431 and closed by the HTTP parser or its timeouts before routing, by reason.',
    labelNames: ['reason'],
    registers: [registry]
  })
  for (const reason of CLIENT_ERROR_REASONS) clientErrors.inc({ reason }, 0)
  const limiter = (): Limiter | undefined => fastify.hasDecorator('limiter') ? fastify.limiter : undefined
  limiterCounter(registry, 'sluice_rate_limited_total', 'Proxied requests refused with 429 by the rate limiter.', () => limiter()?.stats.limited ?? 0)
  limiterCounter(registry, 'sluice_limiter_fallbacks_total', 'Rate-limit decisions made without Redis because it was unavailable (RATE_LIMIT_ON_REDIS_ERROR applied).', () => limiter()?.stats.fallbacks ?? 0)
  limiterCounter(registry, 'sluice_redis_outages_total', 'Times the rate limiter lost Redis.', () => limiter()?.stats.outages ?? 0)
  new Gauge({ // eslint-disable-line no-new
    name: 'sluice_limiter_degraded',
    help: '1 while the rate limiter cannot use Redis and follows RATE_LIMIT_ON_REDIS_ERROR, else 0.',
    registers: [registry],
    collect () { this.set(limiter()?.degraded === true ? 1 : 0) }
  })

  const log = fastify.log
  // the same line as log.info(entry, 'request'), without pino's generic serialiser
  const accessLog = AccessLog.of(log)
  function requestDone (done: FinishedRequest): void {
    const { status, upstream, durationMs, retried } = done
    const method = METHOD_INDEX.get(done.method) ?? OTHER
    const cls = classIndex(status)
    // the limiter runs before the balancer, so a 429 without an upstream is the gateway's own
    const limited = status === 429 && upstream === null

    requests.add(upstream === null ? NO_UPSTREAM : upstream.id, method * CLASSES.length + cls)
    durations.observe(cls, durationMs / 1000)
    if (retried > 0) retries.inc(retried)
    stats.record(status, durationMs, limited)

    if ((LEVELS[log.level] ?? 0) <= 30) {
      const entry: AccessEntry = {
        reqId: done.reqId,
        method: done.method,
        path: bounded(pathOf(done.url), MAX_LOGGED_PATH),
        status,
        upstream: upstream === null ? null : upstream.id,
        durationMs: Math.round(durationMs * 1000) / 1000,
        clientIp: bounded(done.clientIp, MAX_LOGGED_IP),
        limited,
        retried
      }
      if (accessLog === undefined) log.info(entry, 'request')
      else accessLog.write(entry)
    }
  }

  const clientError = (reason: ClientErrorReason): void => { clientErrors.inc({ reason }) }
  fastify.decorate('telemetry', { registry, stats, clientError, requestDone } satisfies Telemetry)

  fastify.addHook('onReady', async () => {
    // before the balancer's own onReady starts the checks (this plugin is registered first)
    if (!fastify.hasDecorator('balancer')) return
    fastify.balancer.active?.on('checked', (server: Upstream, result: CheckResult) => {
      checks.add(server.id, result.ok ? 0 : 1)
    })
  })
}

const DURATION_NAME = 'sluice_request_duration_seconds'
const DURATION_HELP = 'Time from receiving a proxied request to the end of its response, by status class.'
type HistogramValues = Awaited<ReturnType<Histogram['get']>>

/**
 * `sluice_request_duration_seconds`: a prom-client histogram in the registry (same HELP/TYPE and
 * exposition), whose values come from `BucketHistograms`, counted without prom-client's per-call
 * label hashing and allocation (about 30 times cheaper per request).
 */
class DurationHistogram extends Histogram {
  readonly #source: BucketHistograms

  constructor (registry: Registry, source: BucketHistograms) {
    super({
      name: DURATION_NAME,
      help: DURATION_HELP,
      labelNames: ['status_class'],
      buckets: [...source.bounds],
      registers: [registry]
    })
    this.#source = source
  }

  override async get (): Promise<HistogramValues> {
    return this.#values()
  }

  /** What the registry reads for the text format (prom-client calls it instead of `get` when present). */
  async getForPromString (): Promise<HistogramValues> {
    return this.#values()
  }

  #values (): HistogramValues {
    const source = this.#source
    const name = DURATION_NAME
    const values: HistogramValues['values'] = []
    for (let series = 0; series < source.series; series++) {
      const count = source.count(series)
      if (count === 0) continue
      const statusClass = CLASSES[series] as string
      const cumulative = source.cumulative(series)
      source.bounds.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { le, status_class: statusClass }, value: cumulative[i] as number }))
      values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', status_class: statusClass }, value: count })
      values.push({ metricName: `${name}_sum`, labels: { status_class: statusClass }, value: source.sum(series) })
      values.push({ metricName: `${name}_count`, labels: { status_class: statusClass }, value: count })
    }
    return { name, help: DURATION_HELP, type: 'histogram', aggregator: 'sum', values } as unknown as HistogramValues
  }
}

function servers (fastify: FastifyInstance): readonly Upstream[] {
  return fastify.hasDecorator('balancer') ? fastify.balancer.pool.list() : []
}

/** A counter whose value is read from the limiter's own statistics when scraped. */
function limiterCounter (registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({ // eslint-disable-line no-new
    name,
    help,
    registers: [registry],
    collect () {
      this.reset()
      this.inc(read())
    }
  })
}

export default fp(telemetryPlugin, { name: 'sluice-telemetry', fastify: '5.x' })

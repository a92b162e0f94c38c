import { availableParallelism } from 'node:os'
import { z } from 'zod'
import { BALANCERS } from '../balancer/strategy.js'
import { ALGORITHMS } from '../ratelimit/store.js'
import {
  Invalid, parseAddressList, parseDuration, parseHostPorts, parseInteger, parseLimitKey, parseRedisUrl, parseTrustProxy, parseUpstreams
} from './parsers.js'

/**
 * One configuration variable: its environment name, default, what it accepts (printed when a value
 * is refused) and what it means (the README table is checked against this list).
 */
export interface Variable<S extends z.ZodType = z.ZodType> {
  env: string
  default: string
  accepts: string
  doc: string
  schema: S
}

function variable<S extends z.ZodType> (env: string, def: string, accepts: string, doc: string, schema: S): Variable<S> {
  return { env, default: def, accepts, doc, schema }
}

/** Adapts a domain parser (`Invalid` on refusal) to a zod schema over the raw string. */
function parsed<T> (parse: (raw: string) => T | Invalid) {
  return z.string().transform((raw, ctx): T => {
    const value = parse(raw)
    if (value instanceof Invalid) {
      ctx.addIssue({ code: 'custom', message: 'refused', params: { reason: value.reason } })
      return z.NEVER
    }
    return value
  })
}

// not z.coerce.number(): it takes "0x10", "1e3" and "" (0) as integers
const integer = (min: number, max: number) => parsed(raw => parseInteger(raw, min, max))
const duration = parsed(parseDuration)
const DURATION = 'a duration: milliseconds (1500) or with a unit (500ms, 5s, 1m, 2h)'

// the limiter's arithmetic multiplies counts by the window in ms: these bounds keep it exact
const MAX_LIMIT = 100_000_000
const MAX_WINDOW_MS = 86_400_000

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** The configuration schema, keyed by the camelCase name also used in CONFIG_FILE. */
export const VARIABLES = {
  port: variable('PORT', '8080', 'an integer 0..65535', 'public listener port',
    integer(0, 65535)),
  host: variable('HOST', '0.0.0.0', 'an address or host name to listen on', 'public listener address',
    z.string().min(1)),
  upstreams: variable('UPSTREAMS', '', 'comma-separated http(s) origins, each with an optional =weight (1..1000), e.g. http://10.0.0.5:3000=3',
    'initial pool; servers are added if missing, never removed', parsed(parseUpstreams)),
  balancer: variable('BALANCER', 'round-robin', `one of ${BALANCERS.join(', ')}`, 'balancing strategy',
    z.enum(BALANCERS)),
  redisUrl: variable('REDIS_URL', '', 'a redis:// or rediss:// URL, or empty', 'shared state in Redis; unset keeps the limiter and pool in process memory',
    parsed(parseRedisUrl)),
  redisClusterNodes: variable('REDIS_CLUSTER_NODES', '', 'comma-separated host:port seeds, or empty', 'use Redis Cluster through these nodes instead of REDIS_URL',
    parsed(parseHostPorts)),
  keyPrefix: variable('KEY_PREFIX', 'sluice:', '1..64 characters without spaces or braces', 'namespace of every Redis key and channel',
    z.string().regex(/^[^\s{}]{1,64}$/)),
  redisTimeout: variable('REDIS_TIMEOUT', '100ms', `${DURATION}, at least 1ms`, 'longest a request waits on the limiter before the fallback applies',
    duration.pipe(z.number().min(1))),
  rateLimit: variable('RATE_LIMIT', 'on', 'on or off', 'count proxied requests per client; off removes the limiter entirely',
    z.stringbool()),
  rateLimitMax: variable('RATE_LIMIT_MAX', '100', 'an integer 1..100000000', 'requests allowed per client per window',
    integer(1, MAX_LIMIT)),
  rateLimitWindow: variable('RATE_LIMIT_WINDOW', '1m', `${DURATION}, 1s..24h`, 'the rate-limit window',
    duration.pipe(z.number().min(1000).max(MAX_WINDOW_MS))),
  rateLimitAlgorithm: variable('RATE_LIMIT_ALGORITHM', 'sliding-window', `one of ${ALGORITHMS.join(', ')}`,
    'sliding-window weighs the previous window by its overlap; fixed-window counts per aligned window', z.enum(ALGORITHMS)),
  rateLimitKey: variable('RATE_LIMIT_KEY', 'ip', 'ip, or header:<name>', 'what identifies a client; a missing header falls back to the IP',
    parsed(parseLimitKey)),
  rateLimitAllow: variable('RATE_LIMIT_ALLOW', '', 'comma-separated IPs/CIDRs, or empty', 'clients never limited (and sent no rate-limit headers)',
    parsed(parseAddressList)),
  rateLimitHeaders: variable('RATE_LIMIT_HEADERS', 'legacy', 'one of legacy, ietf, both, none',
    'legacy: x-ratelimit-*; ietf: RateLimit-Policy + RateLimit (draft-ietf-httpapi-ratelimit-headers-10)', z.enum(['legacy', 'ietf', 'both', 'none'])),
  rateLimitOnRedisError: variable('RATE_LIMIT_ON_REDIS_ERROR', 'local', 'one of local, allow, deny',
    'with Redis down: local limits from this instance\'s memory, allow admits, deny answers 503', z.enum(['local', 'allow', 'deny'])),
  trustProxy: variable('TRUST_PROXY', 'false', 'false, true, a hop count, or a comma-separated list of IPs/CIDRs',
    'which X-Forwarded-For hops to trust for the client IP (Fastify trustProxy)', parsed(parseTrustProxy)),
  healthCheckPath: variable('HEALTH_CHECK_PATH', '/health', 'a path starting with /', 'active check: GET, 2xx/3xx passes',
    z.string().regex(/^\/[^\s?#]*(\?[^\s#]*)?$/)),
  healthCheckInterval: variable('HEALTH_CHECK_INTERVAL', '5s', DURATION, 'time between active checks of a server; 0 turns them off',
    duration),
  healthCheckTimeout: variable('HEALTH_CHECK_TIMEOUT', '2s', `${DURATION}, at least 1ms`, 'an active check slower than this fails',
    duration.pipe(z.number().min(1))),
  healthyThreshold: variable('HEALTHY_THRESHOLD', '2', 'an integer 1..100', 'consecutive passes that make a server healthy',
    integer(1, 100)),
  unhealthyThreshold: variable('UNHEALTHY_THRESHOLD', '3', 'an integer 1..100', 'consecutive failures that make a server unhealthy',
    integer(1, 100)),
  passiveFailureThreshold: variable('PASSIVE_FAILURE_THRESHOLD', '3', 'an integer 0..1000 (0 turns passive ejection off)',
    'consecutive connect errors, timeouts or 502/503/504 that eject an upstream', integer(0, 1000)),
  passiveEjectionTime: variable('PASSIVE_EJECTION_TIME', '30s', DURATION,
    'with active checks off, how long an ejected upstream rests before it is tried again', duration),
  upstreamConnectTimeout: variable('UPSTREAM_CONNECT_TIMEOUT', '2s', `${DURATION}, at least 1ms`, 'longest wait for a connection to an upstream',
    duration.pipe(z.number().min(1))),
  upstreamTimeout: variable('UPSTREAM_TIMEOUT', '30s', `${DURATION}, at least 1ms`,
    'longest wait for response headers (then 504), and for each chunk of a response body', duration.pipe(z.number().min(1))),
  retries: variable('RETRIES', '2', 'an integer 0..10', 'extra attempts, each on another upstream',
    integer(0, 10)),
  preserveHost: variable('PRESERVE_HOST', 'false', 'true or false', 'send the client\'s Host upstream instead of the upstream\'s',
    z.stringbool()),
  drainTimeout: variable('DRAIN_TIMEOUT', '30s', DURATION, 'longest a removed server keeps its in-flight requests',
    duration),
  adminToken: variable('ADMIN_TOKEN', '', 'a token of 16..256 visible ASCII characters, or empty', 'admin calls need Authorization: Bearer <token>; empty: admin calls only from loopback',
    z.string().regex(/^[\x21-\x7e]{16,256}$/).optional().or(z.literal('').transform(() => undefined))),
  adminPort: variable('ADMIN_PORT', '', 'an integer 1..65535, or empty', 'serve /admin, /docs and /metrics on this port only (same HOST), not on PORT',
    parsed(raw => raw.trim() === '' ? undefined : parseInteger(raw, 1, 65535))),
  headersTimeout: variable('HEADERS_TIMEOUT', '10s', `${DURATION}, 1ms..5m`,
    'a client must send its request headers within this (slowloris guard; answered 408)', duration.pipe(z.number().min(1).max(300_000))),
  requestTimeout: variable('REQUEST_TIMEOUT', '5m', `${DURATION}, 0 (off) or at least HEADERS_TIMEOUT`,
    'a client must send its whole request, body included, within this (answered 408)', duration),
  keepAliveTimeout: variable('KEEP_ALIVE_TIMEOUT', '65s', `${DURATION}, at least 1ms`,
    'an idle client connection is closed after this; longer than the 60 s idle timeout of common load balancers in front', duration.pipe(z.number().min(1))),
  maxRequestsPerSocket: variable('MAX_REQUESTS_PER_SOCKET', '1000', 'an integer 0..1000000 (0: unlimited)',
    'a client connection closes after this many requests, so clients rebalance over gateway instances', integer(0, 1_000_000)),
  maxHeaderSize: variable('MAX_HEADER_SIZE', '16384', 'an integer 1024..1048576 (bytes)',
    'largest request head (request line and headers) a client may send; larger is answered 431', integer(1024, 1_048_576)),
  logLevel: variable('LOG_LEVEL', 'info', `one of ${LOG_LEVELS.join(', ')}`, 'pino log level',
    z.enum(LOG_LEVELS)),
  workers: variable('WORKERS', '1', 'an integer 1..64, or auto (one per CPU core)',
    'worker processes sharing PORT (node:cluster); more than 1 needs REDIS_URL or REDIS_CLUSTER_NODES so limits and pool stay shared',
    parsed(raw => raw.trim().toLowerCase() === 'auto' ? Math.min(64, availableParallelism()) : parseInteger(raw, 1, 64))),
  shutdownTimeout: variable('SHUTDOWN_TIMEOUT', '10s', DURATION, 'graceful shutdown bound: in-flight requests get this long to finish',
    duration)
} as const

export type ConfigKey = keyof typeof VARIABLES

/** CONFIG_FILE only: per-route limits, e.g. `{ "rules": [{ "path": "/api/search", "method": "GET", "max": 10, "window": "1m" }] }`. */
export const FileRateLimit = z.strictObject({
  rules: z.array(z.strictObject({
    path: z.string().regex(/^\/[^\s?#]*$/, 'a path starting with /'),
    method: z.string().regex(/^[A-Za-z]+$/).transform(m => m.toUpperCase()).optional(),
    max: z.number().int().min(1).max(MAX_LIMIT),
    window: z.union([z.number().int(), z.string()]).transform((value, ctx) => {
      const ms = typeof value === 'number' ? value : parseDuration(value)
      if (ms instanceof Invalid || ms < 1000 || ms > MAX_WINDOW_MS) {
        ctx.addIssue({ code: 'custom', message: `window must be a duration of 1s..24h, got ${JSON.stringify(value)}` })
        return z.NEVER
      }
      return ms
    })
  })).max(100)
})
export type RateLimitRule = z.output<typeof FileRateLimit>['rules'][number]

/** The validated configuration; its type is derived from the schemas above, never written twice. */
export type Config = { readonly [K in ConfigKey]: z.output<typeof VARIABLES[K]['schema']> } & {
  readonly rateLimitRules: readonly RateLimitRule[]
}

/** CONFIG_FILE only: named upstreams, e.g. `[{ "url": "http://b1:3000", "weight": 2, "name": "b1" }]`. */
export const FileUpstreams = z.array(z.strictObject({
  url: z.string(),
  weight: z.number().int().min(1).max(1000).optional(),
  name: z.string().min(1).max(100).optional()
}))

import type { IncomingHttpHeaders } from 'node:http'
import { BlockList, isIPv6 } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Config, RateLimitRule } from '../src/config/index.js'
import { LimiterUnavailableError, RateLimitedError } from '../src/errors.js'
import { clientKey, limitIdentity } from '../src/net.js'
import { pathOf } from '../src/gateway-paths.js'
import { MemoryStore } from '../src/ratelimit/memory-store.js'
import { DenyCache } from '../src/ratelimit/deny-cache.js'
import { LIMIT_LUA } from '../src/ratelimit/lua.js'
import { RedisStore } from '../src/ratelimit/redis-store.js'
import { ScriptClient } from '../src/ratelimit/script-client.js'
import type { RedisClient } from '../src/redis.js'
import { LimiterBypassed, ResilientStore, type RedisErrorPolicy } from '../src/ratelimit/resilient-store.js'
import type { Algorithm, Decision, LimiterStore } from '../src/ratelimit/store.js'

export interface LimiterStats {
  /** Requests answered 429. */
  limited: number
  /** Requests decided without Redis because it was unavailable (any policy). */
  readonly fallbacks: number
  /** Outages: times the limiter lost Redis. */
  outages: number
}

export interface Limiter {
  readonly enabled: boolean
  readonly store: 'memory' | 'redis'
  readonly algorithm: Algorithm
  readonly policy: RedisErrorPolicy
  /** True while Redis is configured but not answering (decisions follow `policy`). */
  readonly degraded: boolean
  readonly stats: LimiterStats
  /** The hook the proxied routes run first; undefined with RATE_LIMIT=off. */
  readonly onRequest: ((request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void) | undefined
  /**
   * The same decision without Fastify, for the proxy's fast path: sets the rate-limit headers on
   * `sink` and calls `done` with nothing (admitted) or the error to answer (429, or 503 under the
   * deny policy). Undefined with RATE_LIMIT=off.
   */
  readonly check: ((request: LimitedRequest, sink: HeaderSink, done: LimitDone) => void) | undefined
}

/** What the limiter reads of a request: Fastify's, or the fast path's exchange. */
export interface LimitedRequest {
  readonly ip: string
  readonly url: string
  readonly method: string
  readonly headers: IncomingHttpHeaders
}

/** Where the limiter's headers go: a Fastify reply, or the fast path's response headers. */
export interface HeaderSink {
  header (name: string, value: string | number): unknown
}

export type LimitDone = (error?: Error) => void

declare module 'fastify' {
  interface FastifyInstance {
    limiter: Limiter
  }
}

export interface RateLimitPluginOptions {
  config: Config
}

interface Policy {
  /** `"default"` or `"rule-N"` (SPEC §3), quoted as a structured-field string. */
  name: string
  max: number
  windowMs: number
  rule: RateLimitRule | undefined
  /** The client's key in the store (the rule's own namespace for rules). */
  key: (request: LimitedRequest) => string
  /** The constant `RateLimit-Policy` value. */
  policyHeader: string
}

const rateLimitPlugin: FastifyPluginAsync<RateLimitPluginOptions> = async (fastify, { config }) => {
  const memory = new MemoryStore({ algorithm: config.rateLimitAlgorithm })
  const client = config.rateLimit ? limiterConnection(fastify, config) : undefined
  const resilient = client === undefined
    ? undefined
    : new ResilientStore(new RedisStore(client, { algorithm: config.rateLimitAlgorithm, prefix: config.keyPrefix }), memory, client, {
      policy: config.rateLimitOnRedisError,
      denyCache: new DenyCache()
    })
  const store: LimiterStore = resilient ?? memory
  const stats: LimiterStats = { limited: 0, outages: 0, get fallbacks () { return resilient?.fallbacks ?? 0 } }
  // before any early return: the memory store runs a sweep timer even when nothing uses it
  fastify.addHook('onClose', async () => { await store.close() })

  const log = fastify.log.child({ component: 'rate-limit' })
  resilient?.on('degraded', reason => {
    stats.outages++
    log.error({ reason, policy: config.rateLimitOnRedisError }, `Redis unreachable: rate limiting is degraded (${config.rateLimitOnRedisError})`)
  })
  resilient?.on('recovered', () => log.info('Redis reachable again: rate limits are shared again'))

  const limiter: { -readonly [K in keyof Limiter]: Limiter[K] } = {
    enabled: config.rateLimit,
    store: store.kind,
    algorithm: config.rateLimitAlgorithm,
    policy: config.rateLimitOnRedisError,
    get degraded () { return resilient?.degraded ?? false },
    stats,
    onRequest: undefined,
    check: undefined
  }
  fastify.decorate('limiter', limiter)
  if (!config.rateLimit) return

  const keyOf = clientIdentity(config)
  const policies: Policy[] = [
    policy('"default"', config.rateLimitMax, config.rateLimitWindow, undefined, keyOf),
    ...config.rateLimitRules.map((rule, i) => policy(`"rule-${i + 1}"`, rule.max, rule.window, rule,
      (request: LimitedRequest) => `r${i + 1}|${keyOf(request)}`))
  ]
  // longest path first; for equal paths a rule that names the method is the more specific one
  const rules = policies.slice(1).sort((a, b) =>
    (b.rule as RateLimitRule).path.length - (a.rule as RateLimitRule).path.length ||
    Number((b.rule as RateLimitRule).method !== undefined) - Number((a.rule as RateLimitRule).method !== undefined))
  const fallback = policies[0] as Policy
  const allow = allowList(config.rateLimitAllow)
  const { rateLimitHeaders: mode } = config
  const legacy = mode === 'legacy' || mode === 'both'
  const ietf = mode === 'ietf' || mode === 'both'

  /** Headers, and the 429 when the budget is spent; `done` continues (or ends) the request. */
  function apply (chosen: Policy, decision: Decision, sink: HeaderSink, done: LimitDone): void {
    const remaining = chosen.max > decision.current ? chosen.max - decision.current : 0
    const seconds = Math.ceil(decision.ttl / 1000)
    // on a 429 the reset is the retry-after, so the two never disagree
    const reset = decision.allowed || seconds > 1 ? seconds : 1
    if (legacy) {
      sink.header('x-ratelimit-limit', chosen.max)
      sink.header('x-ratelimit-remaining', remaining)
      sink.header('x-ratelimit-reset', reset)
    }
    if (ietf) {
      sink.header('ratelimit-policy', chosen.policyHeader)
      sink.header('ratelimit', `${chosen.name};r=${remaining};t=${reset}`)
    }
    if (decision.allowed) {
      done()
      return
    }
    stats.limited++
    sink.header('retry-after', reset)
    done(new RateLimitedError(reset))
  }

  function bypassed (err: unknown, done: LimitDone): void {
    if (!(err instanceof LimiterBypassed)) done(err as Error)
    else if (err.policy === 'deny') done(new LimiterUnavailableError())
    else done()
  }

  // callbacks, not promises, all the way from the store: the in-memory store answers synchronously
  // and the request goes on at once; a Redis reply continues it straight from the socket read
  const check = limiter.check = function check (request: LimitedRequest, sink: HeaderSink, done: LimitDone): void {
    if (allow !== undefined && isAllowed(allow, clientKey(request.ip))) {
      done()
      return
    }
    const chosen = rules.length === 0 ? fallback : matchRule(rules, request) ?? fallback
    store.decide(chosen.key(request), chosen.windowMs, chosen.max, (err, decision) => {
      if (err !== null) bypassed(err, done)
      else apply(chosen, decision as Decision, sink, done)
    })
  }
  limiter.onRequest = function limit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    check(request, reply, done)
  }
}

function policy (name: string, max: number, windowMs: number, rule: RateLimitRule | undefined,
  key: (request: LimitedRequest) => string): Policy {
  return { name, max, windowMs, rule, key, policyHeader: `${name};q=${max};w=${Math.ceil(windowMs / 1000)}` }
}

/**
 * The connection the limiter's decisions travel on. With one Redis, a `ScriptClient` of its own
 * (the hot path: one script, batched writes), connected when the app is ready without waiting and
 * closed with it; with Redis Cluster, the shared ioredis Cluster, which knows the slots.
 */
function limiterConnection (fastify: FastifyInstance, config: Config): ScriptClient | RedisClient | undefined {
  if (config.redisClusterNodes.length > 0) return fastify.redis ?? undefined
  if (config.redisUrl === undefined) return undefined
  const client = new ScriptClient({ url: config.redisUrl, script: LIMIT_LUA, commandTimeoutMs: config.redisTimeout })
  // the breaker logs outages once; every failed reconnect is also an 'error' event
  client.on('error', () => {})
  fastify.addHook('onReady', async () => { client.connect() })
  fastify.addHook('onClose', async () => { await client.close() })
  return client
}

/** What identifies a client: its IP (IPv4-mapped folded, IPv6 by /64) or a header, falling back to the IP. */
function clientIdentity (config: Config): (request: LimitedRequest) => string {
  const ipKey = (request: LimitedRequest): string => `ip|${limitIdentity(request.ip)}`
  const key = config.rateLimitKey
  if (key.kind === 'ip') return ipKey
  const name = key.name
  return request => {
    const value = request.headers[name]
    const first = Array.isArray(value) ? value[0] : value
    // bounded, so a client cannot make the store hold arbitrarily long keys
    return first === undefined || first === '' ? ipKey(request) : `h|${first.slice(0, 256)}`
  }
}

/** SPEC §2: a rule matches by whole path segments and, when it names one, by method. */
function matchRule (rules: readonly Policy[], request: LimitedRequest): Policy | undefined {
  const path = pathOf(request.url)
  for (const candidate of rules) {
    const rule = candidate.rule as RateLimitRule
    if (rule.method !== undefined && rule.method !== request.method) continue
    const prefix = rule.path
    if (path === prefix || prefix === '/' || (path.startsWith(prefix) && (prefix.endsWith('/') || path.charCodeAt(prefix.length) === 47))) {
      return candidate
    }
  }
  return undefined
}

function allowList (entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined
  const list = new BlockList()
  for (const entry of entries) {
    const [address, bits] = entry.split('/') as [string, string | undefined]
    const family = isIPv6(address) ? 'ipv6' : 'ipv4'
    if (bits === undefined) list.addAddress(address, family)
    else list.addSubnet(address, Number(bits), family)
  }
  return list
}

function isAllowed (list: BlockList, ip: string): boolean {
  return list.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4')
}

export default fp(rateLimitPlugin, { name: 'sluice-rate-limit', fastify: '5.x', dependencies: ['sluice-redis'] })

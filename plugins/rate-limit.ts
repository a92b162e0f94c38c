import { BlockList, isIPv6 } from 'node:net'
import fp from 'fastify-plugin'
import rateLimit, { normalizeIP, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Config, RateLimitRule } from '../src/config/index.js'
import { LimiterUnavailableError, RateLimitedError } from '../src/errors.js'
import { clientKey } from '../src/net.js'
import { MemoryStore } from '../src/ratelimit/memory-store.js'
import { RedisStore } from '../src/ratelimit/redis-store.js'
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
  readonly onRequest: ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    limiter: Limiter
  }
}

export interface RateLimitPluginOptions {
  config: Config
}

type Check = ReturnType<import('fastify').FastifyInstance['createRateLimit']>

interface Policy {
  /** `"default"` or `"rule-N"` (SPEC §3), quoted as a structured-field string. */
  name: string
  max: number
  windowMs: number
  rule: RateLimitRule | undefined
  check: Check
  /** The constant `RateLimit-Policy` value. */
  policyHeader: string
}

const rateLimitPlugin: FastifyPluginAsync<RateLimitPluginOptions> = async (fastify, { config }) => {
  const memory = new MemoryStore({ algorithm: config.rateLimitAlgorithm })
  const client = config.rateLimit ? fastify.redis ?? undefined : undefined
  const resilient = client === undefined
    ? undefined
    : new ResilientStore(new RedisStore(client, { algorithm: config.rateLimitAlgorithm, prefix: config.keyPrefix }), memory, client, {
      policy: config.rateLimitOnRedisError
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
    onRequest: undefined
  }
  fastify.decorate('limiter', limiter)
  if (!config.rateLimit) return

  await fastify.register(rateLimit, { global: false, store: adapt(store) })

  const keyOf = clientIdentity(config)
  const policies: Policy[] = [
    policy(fastify, '"default"', config.rateLimitMax, config.rateLimitWindow, undefined, keyOf),
    ...config.rateLimitRules.map((rule, i) => policy(fastify, `"rule-${i + 1}"`, rule.max, rule.window, rule,
      (request: FastifyRequest) => `r${i + 1}|${keyOf(request)}`))
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

  limiter.onRequest = async function limit (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (allow !== undefined && isAllowed(allow, clientKey(request.ip))) return
    const chosen = rules.length === 0 ? fallback : matchRule(rules, request) ?? fallback
    let result: Awaited<ReturnType<Check>>
    try {
      result = await chosen.check(request)
    } catch (err) {
      if (!(err instanceof LimiterBypassed)) throw err
      if (err.policy === 'deny') throw new LimiterUnavailableError()
      return
    }
    if (result.isAllowed) return
    const exceeded = result.isExceeded
    // on a 429 the reset is the retry-after, so the two never disagree
    const reset = exceeded ? Math.max(1, result.ttlInSeconds) : result.ttlInSeconds
    if (legacy) {
      reply.header('x-ratelimit-limit', result.max)
      reply.header('x-ratelimit-remaining', result.remaining)
      reply.header('x-ratelimit-reset', reset)
    }
    if (ietf) {
      reply.header('ratelimit-policy', chosen.policyHeader)
      reply.header('ratelimit', `${chosen.name};r=${result.remaining};t=${reset}`)
    }
    if (exceeded) {
      stats.limited++
      reply.header('retry-after', reset)
      throw new RateLimitedError(reset)
    }
  }
}

function policy (fastify: import('fastify').FastifyInstance, name: string, max: number, windowMs: number,
  rule: RateLimitRule | undefined, keyGenerator: (request: FastifyRequest) => string): Policy {
  return {
    name,
    max,
    windowMs,
    rule,
    check: fastify.createRateLimit({ max, timeWindow: windowMs, keyGenerator }),
    policyHeader: `${name};q=${max};w=${Math.ceil(windowMs / 1000)}`
  }
}

/** What identifies a client: its IP (IPv4-mapped folded, IPv6 by /64) or a header, falling back to the IP. */
function clientIdentity (config: Config): (request: FastifyRequest) => string {
  const ipKey = (request: FastifyRequest): string => `ip|${normalizeIP(request.ip, 64)}`
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
function matchRule (rules: readonly Policy[], request: FastifyRequest): Policy | undefined {
  const url = request.url
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
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

/** @fastify/rate-limit's store contract (callback `incr`) over a `LimiterStore`. */
function adapt (store: LimiterStore): FastifyRateLimitStoreCtor {
  const adapter = {
    incr (key: string, callback: (error: Error | null, result?: Decision) => void, timeWindow: number, max: number): void {
      let result: Decision | Promise<Decision>
      try {
        result = store.hit(key, timeWindow, max)
      } catch (err) {
        callback(err as Error)
        return
      }
      if (result instanceof Promise) result.then(decision => callback(null, decision), (err: Error) => callback(err))
      else callback(null, result)
    },
    child () { return adapter }
  }
  // @fastify/rate-limit constructs the store itself; a constructor returning an object yields it
  return function SluiceStore () { return adapter } as unknown as FastifyRateLimitStoreCtor
}

export default fp(rateLimitPlugin, { name: 'sluice-rate-limit', fastify: '5.x', dependencies: ['sluice-redis'] })

import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { createStrategy, type Strategy, type PickContext } from '../src/balancer/index.js'
import { Pool } from '../src/pool/pool.js'
import type { Upstream } from '../src/pool/upstream.js'
import { ActiveHealthChecker } from '../src/health/active.js'
import { PassiveHealth } from '../src/health/passive.js'
import type { Config } from '../src/config/index.js'

export interface Balancer {
  readonly pool: Pool
  readonly strategy: Strategy
  readonly passive: PassiveHealth
  readonly active: ActiveHealthChecker | undefined
  /** The next server for a client, skipping those already tried; undefined when none is routable. */
  pick (key: string, tried: readonly Upstream[]): Upstream | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    balancer: Balancer
  }
}

export interface BalancerPluginOptions {
  config: Config
}

const balancerPlugin: FastifyPluginAsync<BalancerPluginOptions> = async (fastify, { config }) => {
  const activeChecks = config.healthCheckInterval > 0
  const pool = new Pool({ initialState: activeChecks ? 'unknown' : 'healthy' })
  const strategy = createStrategy(config.balancer)
  const passive = new PassiveHealth(pool, {
    threshold: config.passiveFailureThreshold,
    ejectionTimeMs: config.passiveEjectionTime,
    activeChecks
  })
  const active = activeChecks
    ? new ActiveHealthChecker(pool, {
      path: config.healthCheckPath,
      intervalMs: config.healthCheckInterval,
      timeoutMs: config.healthCheckTimeout,
      healthyThreshold: config.healthyThreshold,
      unhealthyThreshold: config.unhealthyThreshold
    })
    : undefined

  const log = fastify.log.child({ component: 'pool' })
  pool.on('state', (server, from, reason) => {
    const level = server.state === 'unhealthy' ? 'warn' : 'info'
    log[level]({ server: server.id, url: server.url, from, to: server.state, reason }, `upstream ${server.url} is ${server.state}`)
  })
  pool.on('added', server => log.info({ server: server.id, url: server.url, weight: server.weight }, `upstream ${server.url} added`))
  pool.on('removed', server => log.info({ server: server.id, url: server.url }, `upstream ${server.url} removed`))

  for (const seed of config.upstreams) pool.add(seed)

  // one context object reused: pick is synchronous, so no request sees another's values
  const ctx: { key: string, tried: readonly Upstream[] } = { key: '', tried: [] }
  const balancer: Balancer = {
    pool,
    strategy,
    passive,
    active,
    pick (key, tried) {
      ctx.key = key
      ctx.tried = tried
      return strategy.pick(pool.routable, ctx as PickContext)
    }
  }
  fastify.decorate('balancer', balancer)

  fastify.addHook('onReady', async () => { active?.start() })
  fastify.addHook('onClose', async () => {
    active?.close()
    passive.close()
    pool.close()
  })
}

export default fp(balancerPlugin, { name: 'sluice-balancer', fastify: '5.x' })

import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../src/config/index.js'
import { LocalPoolAdmin, type PoolAdmin } from '../src/pool/admin.js'
import { SharedPool } from '../src/pool/shared-pool.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** How the admin API changes the pool: this process's pool, or the one shared in Redis. */
    poolAdmin: PoolAdmin
  }
}

export interface PoolAdminPluginOptions {
  config: Config
}

/** Without Redis the pool is this process's own; with it, every instance shares one (SPEC §5). */
const poolAdminPlugin: FastifyPluginAsync<PoolAdminPluginOptions> = async (fastify, { config }) => {
  const { pool } = fastify.balancer
  const client = fastify.redis
  if (client === null) {
    fastify.decorate('poolAdmin', new LocalPoolAdmin(pool, config.drainTimeout))
    return
  }
  const shared = new SharedPool(pool, client, {
    prefix: config.keyPrefix,
    drainTimeoutMs: config.drainTimeout,
    seeds: config.upstreams,
    log: fastify.log.child({ component: 'shared-pool' })
  })
  fastify.decorate('poolAdmin', shared)
  fastify.addHook('onReady', async () => { shared.start() })
  fastify.addHook('onClose', async () => { await shared.close() })
}

export default fp(poolAdminPlugin, { name: 'sluice-pool-admin', fastify: '5.x', dependencies: ['sluice-balancer', 'sluice-redis'] })

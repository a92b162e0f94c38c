import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../src/config/index.js'
import { LocalPoolAdmin, type PoolAdmin } from '../src/pool/admin.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** How the admin API changes the pool: this process's pool, or the shared one in Redis. */
    poolAdmin: PoolAdmin
  }
}

export interface PoolAdminPluginOptions {
  config: Config
}

const poolAdminPlugin: FastifyPluginAsync<PoolAdminPluginOptions> = async (fastify, { config }) => {
  fastify.decorate('poolAdmin', new LocalPoolAdmin(fastify.balancer.pool, config.drainTimeout))
}

export default fp(poolAdminPlugin, { name: 'sluice-pool-admin', fastify: '5.x', dependencies: ['sluice-balancer'] })

import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../src/config/index.js'

export interface StatusRoutesOptions {
  config: Config
}

const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (fastify) => {
  fastify.get('/status', async () => ({ servers: fastify.balancer.pool.list().map(s => s.toJSON()) }))
}

export default statusRoutes

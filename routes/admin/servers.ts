import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../src/config/index.js'

export interface ServersRoutesOptions {
  config: Config
}

const serversRoutes: FastifyPluginAsync<ServersRoutesOptions> = async (fastify) => {
  fastify.get('/servers', async () => ({ servers: fastify.balancer.pool.list().map(s => s.toJSON()) }))
}

export default serversRoutes

import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../src/config/index.js'
import { adminGuard } from '../../src/admin/auth.js'
import dashboardRoutes from './dashboard.js'
import serversRoutes from './servers.js'
import statusRoutes from './status.js'

export interface AdminRoutesOptions {
  config: Config
}

/** Everything under /admin, behind the admin guard (SPEC §5). */
const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (fastify, { config }) => {
  const guard = adminGuard(config.adminToken)
  fastify.addHook('onRequest', async (request, reply) => {
    // the dashboard page only: it asks for the token and sends it on every call it makes
    if (request.routeOptions.config.adminPage === true) return
    const refused = guard(request)
    if (refused === undefined) return
    // RFC 9110 §11.6.1: a 401 names the scheme the client should use
    if (config.adminToken !== undefined) reply.header('www-authenticate', 'Bearer realm="sluice-admin"')
    throw refused
  })
  await fastify.register(serversRoutes, { config })
  await fastify.register(statusRoutes, { config })
  await fastify.register(dashboardRoutes)
  // the rest of /admin is the gateway's too: an unknown admin path is a 404 here, never proxied
  // upstream with the admin token on it
  for (const url of ['/', '/*']) fastify.all(url, { schema: { hide: true } }, async (_request, reply) => reply.callNotFound())
}

export default adminRoutes

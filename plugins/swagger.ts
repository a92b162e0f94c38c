import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyPluginAsync } from 'fastify'

/**
 * OpenAPI 3 document at /docs/json and Swagger UI at /docs, built from the route schemas.
 * Registered before the routes it documents (it collects them as they are added); the proxy's
 * catch-all routes (`config.proxied`) are left out.
 */
const swaggerPlugin: FastifyPluginAsync = async (fastify) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Sluice gateway',
        description: 'The gateway\'s own API: runtime pool administration, status, health and metrics. Every other path is proxied.',
        version: '0.1.0'
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      tags: [
        { name: 'admin', description: 'Runtime pool administration (ADMIN_TOKEN bearer, or loopback only when none is set)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'metrics', description: 'Prometheus metrics' }
      ]
    },
    transform ({ schema, url, route }) {
      const proxied = (route.config as { proxied?: boolean } | undefined)?.proxied === true
      return { schema: proxied ? { ...schema, hide: true } : schema, url }
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
}

export default fp(swaggerPlugin, { name: 'sluice-swagger', fastify: '5.x' })

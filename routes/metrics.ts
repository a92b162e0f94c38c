import type { FastifyPluginAsync } from 'fastify'
// for its declaration of `fastify.telemetry` (erased at run time)
import type {} from '../plugins/telemetry.js'

const EXPOSITION = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * GET /metrics: the Prometheus text exposition of the gateway's own registry (Sluice's `sluice_*`
 * metrics and prom-client's process defaults). Open like /docs; ADMIN_PORT moves it off the public port.
 */
const metricsRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/metrics', {
    schema: {
      tags: ['metrics'],
      summary: 'Prometheus metrics',
      description: 'Prometheus text exposition format 0.0.4. Sluice\'s own metrics are prefixed `sluice_`; process metrics keep their standard names.',
      hide: false,
      response: {
        200: {
          description: 'The metrics, one family per `# HELP`/`# TYPE` pair',
          content: { [EXPOSITION]: { schema: { type: 'string' } } }
        }
      }
    }
  }, async (_request, reply) => {
    const { registry } = fastify.telemetry
    const body = await registry.metrics()
    return reply.type(registry.contentType).send(body)
  })
}

export default metricsRoutes

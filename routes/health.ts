import type { FastifyPluginAsync } from 'fastify'

/**
 * Liveness and readiness. `/healthz` answers while the process serves; `/readyz` answers 200 only
 * when a request could be served now (a routable upstream, a usable limiter, not shutting down), 503 with reasons
 * otherwise, so an orchestrator stops sending traffic before it would fail.
 */
const healthRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/healthz', async () => ({ status: 'ok' }))

  fastify.get('/readyz', async (_request, reply) => {
    const { pool } = fastify.balancer
    const { limiter } = fastify
    const routable = pool.routable.length
    const reasons: string[] = []
    if (fastify.shuttingDown) reasons.push('shutting down')
    if (routable === 0) reasons.push(pool.size === 0 ? 'the pool is empty' : 'no upstream server is healthy')
    // degraded under local/allow still serves requests; under deny every request would be a 503
    if (limiter.degraded && limiter.policy === 'deny') reasons.push('the rate limiter cannot reach Redis (policy deny)')
    const body = {
      status: reasons.length === 0 ? 'ready' : 'unavailable',
      reasons,
      servers: { routable, total: pool.size },
      limiter: { enabled: limiter.enabled, store: limiter.store, algorithm: limiter.algorithm, degraded: limiter.degraded }
    }
    return reply.code(reasons.length === 0 ? 200 : 503).send(body)
  })
}

export default healthRoutes

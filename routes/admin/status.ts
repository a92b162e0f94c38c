import { Type } from 'typebox'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../../src/config/index.js'
import { ServerSchema, guardErrors } from '../../src/admin/schemas.js'
// for their declarations of `fastify.telemetry`, `.limiter` and `.balancer` (erased at run time)
import type {} from '../../plugins/telemetry.js'

export interface StatusRoutesOptions {
  config: Config
}

const Count = Type.Integer({ minimum: 0 })
const Ms = Type.Number({ minimum: 0 })

export const StatusSchema = Type.Object({
  uptimeSeconds: Type.Integer({ minimum: 0, description: 'Since the gateway started' }),
  requests: Type.Object({
    total: Type.Integer({ minimum: 0, description: 'Proxied requests answered since start (429s and gateway 5xx included; the gateway\'s own routes are not)' }),
    errors: Type.Integer({ minimum: 0, description: 'Of those, answered 5xx' }),
    rateLimited: Type.Integer({ minimum: 0, description: 'Of those, refused 429 by the rate limiter' }),
    perSecond: Type.Number({ minimum: 0, description: 'Mean requests per second over the last 60 s' }),
    errorRate: Type.Number({ minimum: 0, maximum: 1, description: 'errors / total since start (0 before the first request)' })
  }),
  latencyMs: Type.Object({
    avg: Ms,
    min: Ms,
    max: Ms,
    p50: Ms,
    p95: Ms,
    p99: Ms
  }, { description: 'Time from request to end of response, since start; percentiles within 1% (log-scale histogram); all 0 before the first request' }),
  statusCodes: Type.Object({}, { additionalProperties: Count, description: 'Responses by status code, e.g. { "200": 12, "429": 3 }' }),
  limiter: Type.Object({
    store: Type.Union([Type.Literal('memory'), Type.Literal('redis')]),
    algorithm: Type.Union([Type.Literal('sliding-window'), Type.Literal('fixed-window')]),
    degraded: Type.Boolean({ description: 'Redis configured but not answering: decisions follow RATE_LIMIT_ON_REDIS_ERROR' })
  }),
  servers: Type.Array(ServerSchema)
}, { additionalProperties: false, title: 'Status' })

const statusRoutes: FastifyPluginAsync<StatusRoutesOptions> = async (fastify) => {
  fastify.get('/status', {
    schema: {
      tags: ['admin'],
      security: [{ bearer: [] }],
      operationId: 'getStatus',
      summary: 'Traffic, latency, status codes, limiter and servers',
      description: 'Aggregates of the proxied requests this instance answered since it started (the gateway\'s own routes are not counted), ' +
        'the rate limiter\'s state and every server in the pool. Memory is bounded whatever the traffic.',
      response: { 200: StatusSchema, ...guardErrors }
    }
  }, async () => {
    const { limiter, balancer, telemetry } = fastify
    return {
      ...telemetry.stats.snapshot(),
      limiter: { store: limiter.store, algorithm: limiter.algorithm, degraded: limiter.degraded },
      servers: balancer.pool.list().map(s => s.toJSON())
    }
  })
}

export default statusRoutes

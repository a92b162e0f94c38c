import { randomUUID } from 'node:crypto'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Config } from './config/index.js'
import { sendError } from './error-handler.js'
import { requestIdFrom } from './proxy/headers.js'
import rateLimit from '../plugins/rate-limit.js'
import balancer from '../plugins/balancer.js'
import proxy from '../plugins/proxy.js'
import healthRoutes from '../routes/health.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set when shutdown starts: /readyz turns 503 and responses close their connection. */
    shuttingDown: boolean
  }
}

export interface AppOptions {
  /** Overrides the logger built from LOG_LEVEL (tests pass false, the demo a pretty printer). */
  logger?: FastifyServerOptions['logger']
}

const newRequestId = (): string => randomUUID()

/** Builds the gateway from a validated configuration. Nothing connects or listens until `listen`. */
export async function buildApp (config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const fastifyOptions: FastifyServerOptions = {
    logger: options.logger ?? { level: config.logLevel },
    // a hop count is valid at run time (proxy-addr), though Fastify's types omit it
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    requestIdHeader: false,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id'], newRequestId),
    // one line per request at info costs ~25% throughput; the access log is opt-in at debug
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true
  }
  const app = Fastify(fastifyOptions)

  app.decorate('shuttingDown', false)
  app.setErrorHandler(sendError)

  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
  // at send time, so responses already in flight when shutdown starts close their keep-alive
  // connection too; otherwise an idle client socket holds server.close() open
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (app.shuttingDown) reply.header('connection', 'close')
    done(null, payload)
  })

  await app.register(rateLimit, { config })
  await app.register(balancer, { config })
  await app.register(healthRoutes)
  // last: the catch-all proxy gets every path the gateway does not own
  await app.register(proxy, { config })
  return app
}

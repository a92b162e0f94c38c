import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyServerFactory, type FastifyServerOptions } from 'fastify'
import type { Config } from './config/index.js'
import { clientErrorHandler } from './client-error.js'
import { limitRequestsPerSocket } from './connection-budget.js'
import { sendError } from './error-handler.js'
import { RouteNotFoundError } from './errors.js'
import { requestIdFrom } from './proxy/headers.js'
import { clientAddress, trustFunction, type TrustFn } from './proxy/client-address.js'
import { isGatewayPath, pathOf } from './gateway-paths.js'
import telemetry from '../plugins/telemetry.js'
import redis from '../plugins/redis.js'
import rateLimit from '../plugins/rate-limit.js'
import balancer from '../plugins/balancer.js'
import poolAdmin from '../plugins/pool-admin.js'
import swagger from '../plugins/swagger.js'
import proxy from '../plugins/proxy.js'
import healthRoutes from '../routes/health.js'
import metricsRoutes from '../routes/metrics.js'
import adminRoutes from '../routes/admin/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set when shutdown starts: /readyz turns 503 and responses close their connection. */
    shuttingDown: boolean
    /** With ADMIN_PORT: the second listener serving /admin, /docs and /metrics. */
    adminApp: FastifyInstance | null
  }
}

export interface AppOptions {
  /** Overrides the logger built from LOG_LEVEL (tests pass false, the demo a pretty printer). */
  logger?: FastifyServerOptions['logger']
}

const newRequestId = (): string => randomUUID()

/** How often Node looks for requests past HEADERS_TIMEOUT / REQUEST_TIMEOUT: a tenth of the guard, 50 ms..1 s. */
const checkingInterval = (headersTimeout: number): number => Math.min(1000, Math.max(50, Math.floor(headersTimeout / 10)))

/** Node's HTTP server options: the client side's guards (slowloris, oversized heads). */
function httpOptions (config: Config): ServerOptions {
  return {
    headersTimeout: config.headersTimeout,
    requestTimeout: config.requestTimeout,
    maxHeaderSize: config.maxHeaderSize,
    // Node checks those two timeouts only every 30 s by default: a 10 s guard would let a slow
    // client hold its socket up to 40 s
    connectionsCheckingInterval: checkingInterval(config.headersTimeout)
  }
}

type Forward = (req: IncomingMessage, res: ServerResponse) => void

/**
 * The public listener: proxied requests go straight to the proxy's fast path, the gateway's own
 * paths (and everything before the proxy is ready) to Fastify. WebSocket upgrades are 'upgrade'
 * events, not requests: Fastify handles them.
 */
function gatewayServer (config: Config, forward: () => Forward | undefined): FastifyServerFactory {
  return (handler) => {
    const server = createServer(httpOptions(config), (req, res) => {
      const fast = forward()
      if (fast === undefined || isGatewayPath(req.url as string)) handler(req, res)
      else fast(req, res)
    })
    server.keepAliveTimeout = config.keepAliveTimeout
    server.requestTimeout = config.requestTimeout
    return server
  }
}

function serverOptions (config: Config, logger: FastifyServerOptions['logger'] | FastifyBaseLogger, shared: boolean,
  trust: TrustFn | false): FastifyHttpOptions<Server> {
  return {
    ...(shared ? { loggerInstance: logger as FastifyBaseLogger } : { logger: logger as FastifyServerOptions['logger'] }),
    trustProxy: trust,
    requestIdHeader: false,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id'], newRequestId),
    // Fastify's two lines per request cost ~25% throughput; proxied requests get one access line
    logController: new LogController({ disableRequestLogging: true }),
    // a request already on a kept-alive connection when shutdown starts is served (with connection:
    // close), not refused with a bare 503
    return503OnClosing: false,
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    http: httpOptions(config),
    clientErrorHandler,
    // a malformed URL or header is refused before routing; it still gets the SLUICE error body
    frameworkErrors: (error, request, reply) => { sendError(error, request, reply) }
  }
}

/** What every listener shares: the error body, the request id, connection: close while stopping. */
function common (app: FastifyInstance, config: Config, stopping: () => boolean): void {
  limitRequestsPerSocket(app.server, config.maxRequestsPerSocket)
  app.setErrorHandler(sendError)
  app.setNotFoundHandler((request, reply) => { sendError(new RouteNotFoundError(request.method, pathOf(request.url)), request, reply) })
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
  // at send time, so responses already in flight when shutdown starts close their keep-alive
  // connection too; otherwise an idle client socket holds server.close() open. The same switch as
  // the proxy's fast path and MAX_REQUESTS_PER_SOCKET: Node then sends connection: close and ends the socket
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (stopping()) reply.raw.shouldKeepAlive = false
    done(null, payload)
  })
}

/**
 * Builds the gateway from a validated configuration. Nothing connects or listens until `listen`
 * (and, with ADMIN_PORT, `adminApp.listen`).
 */
export async function buildApp (config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const trust = trustFunction(config.trustProxy)
  let forward: Forward | undefined
  const app = Fastify({
    ...serverOptions(config, options.logger ?? { level: config.logLevel }, false, trust),
    serverFactory: gatewayServer(config, () => forward)
  })
  app.decorate('shuttingDown', false)
  common(app, config, () => app.shuttingDown)

  // first: counts every proxied request, whatever answers it (limiter, balancer, proxy)
  await app.register(telemetry)
  await app.register(redis, { config })
  await app.register(rateLimit, { config })
  await app.register(balancer, { config })
  await app.register(poolAdmin, { config })

  const admin = config.adminPort === undefined ? app : await buildAdminApp(app, config, trust)
  app.decorate('adminApp', admin === app ? null : admin)
  await admin.register(swagger)
  await admin.register(healthRoutes)
  await admin.register(metricsRoutes)
  if (admin !== app) {
    await app.register(healthRoutes)
    // not served here, and not proxied either: the control plane must not leak to upstreams
    await app.register(async function hidden (scope) {
      for (const url of ['/admin', '/admin/*', '/docs', '/docs/*', '/metrics', '/metrics/*']) scope.all(url, async (_request, reply) => reply.callNotFound())
    })
  }
  await admin.register(adminRoutes, { config, prefix: '/admin' })
  // last: the catch-all proxy gets every path the gateway does not own
  await app.register(proxy, { config, address: clientAddress(trust), stopping: () => app.shuttingDown })
  app.addHook('onReady', async () => { forward = app.forward })
  return app
}

/** The ADMIN_PORT listener: its own Fastify instance over the gateway's shared state. */
async function buildAdminApp (gateway: FastifyInstance, config: Config, trust: TrustFn | false): Promise<FastifyInstance> {
  const admin = Fastify(serverOptions(config, gateway.log.child({ listener: 'admin' }), true, trust))
  admin.decorate('shuttingDown', { getter: () => gateway.shuttingDown })
  admin.decorate('balancer', gateway.balancer)
  admin.decorate('limiter', gateway.limiter)
  admin.decorate('telemetry', gateway.telemetry)
  admin.decorate('poolAdmin', gateway.poolAdmin)
  admin.decorate('adminApp', null)
  common(admin, config, () => gateway.shuttingDown)
  gateway.addHook('onReady', async () => { await admin.ready() })
  gateway.addHook('onClose', async () => { await admin.close() })
  return admin
}

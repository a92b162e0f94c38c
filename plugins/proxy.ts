import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import httpProxy from '@fastify/http-proxy'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Upstream } from '../src/pool/upstream.js'
import type { Config } from '../src/config/index.js'
import { NoUpstreamError } from '../src/errors.js'
import type { ClientAddress } from '../src/proxy/client-address.js'
import { Exchange, type ExchangeContext } from '../src/proxy/exchange.js'
import { UpstreamAgent } from '../src/proxy/h1/agent.js'
import { appendForwarded, FORWARDING, requestIdFrom } from '../src/proxy/headers.js'
import { clientKey } from '../src/net.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Forwards one raw request (anything the gateway does not own) on the fast path: the public
     * listener hands requests here without Fastify's routing, hooks and request objects.
     */
    forward: (req: IncomingMessage, res: ServerResponse) => void
  }
  interface FastifyRequest {
    /** The server a WebSocket session went to (null before the balancer picked one). */
    upstream: Upstream | null
  }
}

export interface ProxyPluginOptions {
  config: Config
  /** TRUST_PROXY as the app computes it, so the fast path and Fastify agree on the client IP. */
  address: ClientAddress
  /** True once shutdown started. */
  stopping: () => boolean
}

const NONE: readonly Upstream[] = Object.freeze([])
// hop-by-hop and handshake headers the WebSocket client sets itself
// (and the forwarding headers the gateway sets itself)
const WS_OWN_HEADERS = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'content-length', ...FORWARDING])

const newRequestId = (): string => randomUUID()

/**
 * The last stage of the pipeline. HTTP requests go through `Exchange` (src/proxy/exchange.ts):
 * limiter, balancer, the upstream client (src/proxy/h1), telemetry, without Fastify in the way.
 * WebSocket upgrades go through @fastify/http-proxy's WebSocket support, behind the same limiter
 * and balancer.
 */
const proxyPlugin: FastifyPluginAsync<ProxyPluginOptions> = async (fastify, { config, address, stopping }) => {
  const { balancer, limiter, telemetry } = fastify
  const { pool, passive, strategy } = balancer
  const { preserveHost } = config

  // keep-alive pools per upstream origin: the largest single factor in proxy throughput
  const agent = new UpstreamAgent({
    connections: 128,
    connectTimeoutMs: config.upstreamConnectTimeout,
    timeoutMs: config.upstreamTimeout
  })

  const check = limiter.check
  const ctx: ExchangeContext = {
    agent,
    retries: config.retries,
    upstreamTimeout: config.upstreamTimeout,
    preserveHost,
    address,
    pick: (key, tried) => balancer.pick(key, tried),
    acquire: server => { pool.acquire(server) },
    release: server => { pool.release(server) },
    answered (server, failed, latencyMs, now) {
      strategy.observe?.(server, latencyMs, now)
      if (failed) passive.failure(server)
      else passive.success(server)
    },
    limit: check === undefined ? undefined : (exchange, done) => { check(exchange, exchange, done) },
    finished (exchange, status) {
      telemetry.requestDone({
        reqId: exchange.id,
        method: exchange.method,
        url: exchange.url,
        status,
        upstream: exchange.upstream,
        durationMs: performance.now() - exchange.startedAt,
        clientIp: exchange.ip,
        retried: exchange.tried?.length ?? 0
      })
    },
    log: fastify.log,
    stopping,
    newRequestId: header => requestIdFrom(header, newRequestId)
  }

  function forward (req: IncomingMessage, res: ServerResponse): void {
    const exchange = new Exchange(ctx, req, res)
    try {
      exchange.start()
    } catch (err) {
      exchange.fail(err as Error)
    }
  }
  fastify.decorate('forward', forward)
  fastify.decorateRequest('upstream', null)

  /** WebSocket sessions only: picks their upstream and keeps it in flight while the socket is open. */
  function preHandler (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    // HTTP requests reach this route only to be handed to the fast path, which picks for itself
    if (request.raw.headers.upgrade === undefined) {
      done()
      return
    }
    const server = balancer.pick(clientKey(request.ip), NONE)
    if (server === undefined) {
      done(new NoUpstreamError())
      return
    }
    request.upstream = server
    pool.acquire(server)
    // 'close' fires on completion and on client abort alike, so in-flight never leaks
    reply.raw.once('close', () => { pool.release(server) })
    done()
  }

  // Proxied bodies are streams, never parsed: the scope keeps the gateway's own routes parsing JSON.
  await fastify.register(async function proxyScope (scope) {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
    // a WebSocket upgrade is limited like a request; HTTP requests are limited by the exchange
    const { onRequest: limit } = limiter
    if (limit !== undefined) {
      scope.addHook('onRequest', (request, reply, done) => {
        if (request.raw.headers.upgrade === undefined) done()
        else limit(request, reply, done)
      })
    }
    await scope.register(httpProxy, {
      upstream: '',
      prefix: '/',
      // marks the catch-all for the OpenAPI document (hidden)
      config: { proxied: true },
      websocket: true,
      disableRequestLogging: true,
      preHandler,
      // an HTTP request reaches this route only when a listener dispatches everything to Fastify
      // (a test's app.inject, say): it takes the fast path from here
      handler: (request: FastifyRequest, reply: FastifyReply) => {
        reply.hijack()
        forward(request.raw, reply.raw)
      },
      replyOptions: { getUpstream: (request: FastifyRequest) => (request.upstream as Upstream).url },
      wsClientOptions: {
        rewriteRequestHeaders: (_headers: Record<string, string>, request: FastifyRequest) => wsHeaders(request, preserveHost)
      }
    } as never)
  })

  fastify.addHook('onClose', async () => { agent.close() })
}

function wsHeaders (request: FastifyRequest, preserveHost: boolean): Record<string, string> {
  const headers: IncomingHttpHeaders = {}
  for (const name in request.headers) {
    if (!WS_OWN_HEADERS.has(name)) headers[name] = request.headers[name]
  }
  const forwarding: string[] = []
  appendForwarded(forwarding, request, preserveHost)
  for (let i = 0; i < forwarding.length; i += 2) headers[forwarding[i] as string] = forwarding[i + 1]
  return headers as Record<string, string>
}

export default fp(proxyPlugin, {
  name: 'sluice-proxy',
  fastify: '5.x',
  dependencies: ['sluice-rate-limit', 'sluice-balancer']
})

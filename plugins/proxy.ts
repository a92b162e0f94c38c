import fp from 'fastify-plugin'
import httpProxy from '@fastify/http-proxy'
import { Agent } from 'undici'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Upstream } from '../src/pool/upstream.js'
import type { Config } from '../src/config/index.js'
import { NoUpstreamError, UpstreamTimeoutError, UpstreamUnreachableError } from '../src/errors.js'
import { classifyFailure, mayRetry, transportCode } from '../src/proxy/failure.js'
import { setForwarded, stripHopByHop } from '../src/proxy/headers.js'
import { AttemptBody } from '../src/proxy/replayable-body.js'
import { clientKey } from '../src/net.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The server the current attempt went to (null before the balancer picked one). */
    upstream: Upstream | null
    /** Servers this request failed on and was retried away from (so its retries); null until a retry. */
    upstreamTried: Upstream[] | null
    /** When the current attempt was sent (performance.now()), for latency-aware balancing. */
    upstreamStartedAt: number
    /** The path reply-from was asked for, kept for a retry. */
    upstreamPath: string
  }
}

export interface ProxyPluginOptions {
  config: Config
}

type ReplyFromOptions = Parameters<FastifyReply['from']>[1]
type ProxyHandler = (request: FastifyRequest, reply: FastifyReply, dest: string, options: ReplyFromOptions) => FastifyReply

const NONE: readonly Upstream[] = Object.freeze([])
// hop-by-hop and handshake headers the WebSocket client sets itself
const WS_OWN_HEADERS = new Set(['host', 'connection', 'upgrade', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'content-length'])

const proxyPlugin: FastifyPluginAsync<ProxyPluginOptions> = async (fastify, { config }) => {
  const { balancer } = fastify
  const { pool, passive, strategy } = balancer
  const { retries, preserveHost, upstreamTimeout } = config

  // keep-alive pools per upstream origin: the largest single factor in proxy throughput
  const agent = new Agent({
    connect: { timeout: config.upstreamConnectTimeout },
    headersTimeout: upstreamTimeout,
    bodyTimeout: upstreamTimeout,
    connections: 128,
    pipelining: 1
  })

  fastify.decorateRequest('upstream', null)
  fastify.decorateRequest('upstreamTried', null)
  fastify.decorateRequest('upstreamStartedAt', 0)
  fastify.decorateRequest('upstreamPath', '')

  const upstreamOf = (request: FastifyRequest): string => (request.upstream as Upstream).url

  function preHandler (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const server = balancer.pick(clientKey(request.ip), NONE)
    if (server === undefined) {
      done(new NoUpstreamError())
      return
    }
    request.upstream = server
    pool.acquire(server)
    // 'close' fires on completion and on client abort alike, so in-flight never leaks
    reply.raw.once('close', () => { pool.release(request.upstream as Upstream) })
    done()
  }

  const replyOptions = {
    getUpstream: upstreamOf,
    // reply-from's own retries resend to the same origin (and retry an upstream 503 up to 10
    // times); retries here go to another upstream instead, in onError
    retryDelay: () => null,
    rewriteRequestHeaders (request: FastifyRequest, headers: Record<string, unknown>) {
      stripHopByHop(headers)
      // Node has already answered the client's `expect: 100-continue`; undici refuses to send it
      // (UND_ERR_NOT_SUPPORTED, a 502 for every curl upload over 1 KB)
      delete headers.expect
      setForwarded(headers as IncomingHttpHeaders, request, preserveHost)
      return headers
    },
    rewriteHeaders (headers: Record<string, unknown>) {
      stripHopByHop(headers)
      return headers
    },
    onResponse (request: FastifyRequest, reply: FastifyReply, res: { statusCode: number, stream: unknown }) {
      const server = request.upstream as Upstream
      const now = performance.now()
      strategy.observe?.(server, now - request.upstreamStartedAt, now)
      const status = res.statusCode
      if (status >= 502 && status <= 504) passive.failure(server)
      else passive.success(server)
      reply.send(res.stream)
    },
    onError (reply: FastifyReply, { error }: { error: Error & { code?: string } }) {
      const request = reply.request
      const server = request.upstream as Upstream
      const code = transportCode(error)
      if (reply.raw.destroyed) {
        // the client left mid-body (aborted, or cut by REQUEST_TIMEOUT), which broke the upload:
        // not the upstream's failure, so no passive ejection; nobody is left to answer either
        request.log.debug({ upstream: server.url, code }, 'client went away during the upstream request')
        reply.send(new UpstreamUnreachableError(code, { cause: error }))
        return
      }
      const kind = classifyFailure(code)
      strategy.observe?.(server, upstreamTimeout, performance.now())
      passive.failure(server)
      const attempts = (request.upstreamTried?.length ?? 0) + 1
      if (kind !== 'timeout' && retryOn(reply, kind, server)) return
      request.log.warn({ upstream: server.url, code, attempts }, 'upstream request failed')
      reply.send(kind === 'timeout'
        ? new UpstreamTimeoutError(upstreamTimeout, { cause: error })
        : new UpstreamUnreachableError(code, { cause: error }))
    }
  }

  /** Sends the request again to another upstream when SPEC §4 allows it; false when it does not. */
  function retryOn (reply: FastifyReply, kind: 'refused' | 'broken', failed: Upstream): boolean {
    const request = reply.request
    const tried = request.upstreamTried ?? (request.upstreamTried = [])
    if (tried.length >= retries || !mayRetry(kind, request.method, hasBody(request))) return false
    const body = request.body
    if (body instanceof AttemptBody) {
      if (body.started) return false
      request.body = new AttemptBody(request.raw)
    }
    tried.push(failed)
    const next = balancer.pick(clientKey(request.ip), tried)
    if (next === undefined) {
      // no retry after all: `upstreamTried` lists only servers a retry moved away from
      tried.pop()
      return false
    }
    request.log.info({ failed: failed.url, next: next.url, kind }, 'retrying on another upstream')
    pool.release(failed)
    pool.acquire(next)
    request.upstream = next
    request.upstreamStartedAt = performance.now()
    reply.from(request.upstreamPath, retryOptions)
    return true
  }

  // http-proxy hands the handler its options with getUpstream pinned to the first pick (and its
  // own header sanitiser wrapped around ours); a retry keeps those but follows request.upstream
  let retryOptions: ReplyFromOptions

  const handler: ProxyHandler = (request, reply, dest, options) => {
    retryOptions ??= { ...options, getUpstream: upstreamOf } as ReplyFromOptions
    request.upstreamStartedAt = performance.now()
    request.upstreamPath = dest
    // a body is sent through a wrapper so that a refused attempt leaves it whole for a retry
    if (retries > 0 && request.body === request.raw) request.body = new AttemptBody(request.raw)
    return reply.from(dest, options)
  }

  // Proxied bodies are streams, never parsed: Fastify's built-in text/plain and JSON parsers would
  // buffer them (and cap them at bodyLimit). The scope keeps the gateway's own routes parsing JSON.
  await fastify.register(async function proxyScope (scope) {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
    // first in the pipeline, so a client that leaves while its request waits on the limiter is
    // counted too (499)
    const { telemetry } = fastify
    scope.addHook('onRequest', (request, reply, done) => {
      // a WebSocket upgrade never finishes an HTTP response: its session is not a request to count
      if (request.raw.headers.upgrade === undefined) telemetry.watch(request, reply)
      done()
    })
    // then the limiter: a limited request never reaches the balancer or an upstream
    const { onRequest: limit } = fastify.limiter
    if (limit !== undefined) scope.addHook('onRequest', limit)
    // every proxied answer (429s and the gateway's own 5xx included): metrics, status, access log
    scope.addHook('onResponse', (request, reply, done) => { telemetry.record(request, reply); done() })
    await scope.register(httpProxy, {
      upstream: '',
      prefix: '/',
      // marks the catch-all for the OpenAPI document (hidden) and for telemetry
      config: { proxied: true },
      websocket: true,
      undici: agent as unknown as Record<string, unknown>,
      disableRequestLogging: true,
      preHandler,
      handler: handler as never,
      replyOptions: replyOptions as never,
      wsClientOptions: {
        rewriteRequestHeaders: (_headers: Record<string, string>, request: FastifyRequest) => wsHeaders(request, preserveHost)
      }
    } as never)
  })

  fastify.addHook('onClose', async () => { await agent.close() })
}

function hasBody (request: FastifyRequest): boolean {
  const length = request.headers['content-length']
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined
}

function wsHeaders (request: FastifyRequest, preserveHost: boolean): Record<string, string> {
  const headers: IncomingHttpHeaders = {}
  for (const name in request.headers) {
    if (!WS_OWN_HEADERS.has(name)) headers[name] = request.headers[name]
  }
  setForwarded(headers, request, preserveHost)
  if (!preserveHost) delete headers.host
  return headers as Record<string, string>
}

export default fp(proxyPlugin, {
  name: 'sluice-proxy',
  fastify: '5.x',
  dependencies: ['sluice-rate-limit', 'sluice-balancer']
})

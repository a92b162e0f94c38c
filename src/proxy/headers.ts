import type { IncomingHttpHeaders } from 'node:http'

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones intermediaries still see.
export const HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate'] as const

/** What `appendForwarded` reads of a request: a Fastify request, or the fast path's exchange. */
export interface ForwardedFrom {
  readonly id: string
  readonly headers: IncomingHttpHeaders
  readonly socket: { readonly remoteAddress?: string | undefined }
  /** http or https, x-forwarded-proto under TRUST_PROXY. */
  readonly protocol: string
}

/** Request headers the gateway sets itself on the way upstream: a client's own are replaced, not relayed. */
export const FORWARDING = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'host'] as const

/**
 * Appends, as name, value pairs, the headers the gateway sets on a request bound upstream:
 * x-forwarded-for (the peer appended to what the client sent), -proto, -host, the request id, and
 * the client's host under PRESERVE_HOST (without it the upstream client sends the upstream's own).
 */
export function appendForwarded (out: string[], request: ForwardedFrom, preserveHost: boolean): void {
  const peer = request.socket.remoteAddress ?? ''
  const prior = request.headers['x-forwarded-for']
  out.push('x-forwarded-for', prior === undefined || prior === '' ? peer : `${String(prior)}, ${peer}`)
  out.push('x-forwarded-proto', request.protocol)
  const host = request.headers.host
  if (host !== undefined) {
    out.push('x-forwarded-host', host)
    if (preserveHost) out.push('host', host)
  }
  out.push('x-request-id', request.id)
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/

/** Keeps a client's x-request-id when it is sane (printable, bounded), otherwise makes one. */
export function requestIdFrom (header: string | string[] | undefined, generate: () => string): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : generate()
}

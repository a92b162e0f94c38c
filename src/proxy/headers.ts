import type { IncomingHttpHeaders } from 'node:http'

// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones intermediaries still see.
export const HOP_BY_HOP = ['keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authenticate'] as const

export function stripHopByHop (headers: Record<string, unknown>): void {
  const connection = headers.connection
  if (typeof connection === 'string') {
    // the sender declared these hop-by-hop too (RFC 9110 §7.6.1)
    for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()]
    delete headers.connection
  }
  for (let i = 0; i < HOP_BY_HOP.length; i++) delete headers[HOP_BY_HOP[i] as string]
}

/** What `setForwarded` reads of a request: a Fastify request, or the fast path's exchange. */
export interface ForwardedFrom {
  readonly id: string
  readonly headers: IncomingHttpHeaders
  readonly socket: { readonly remoteAddress?: string | undefined }
  /** http or https, x-forwarded-proto under TRUST_PROXY. */
  readonly protocol: string
}

/**
 * Sets x-forwarded-for (the peer appended to what the client sent), -proto, -host and the
 * request id on a header object bound upstream.
 */
export function setForwarded (headers: IncomingHttpHeaders, request: ForwardedFrom, preserveHost: boolean): void {
  const peer = request.socket.remoteAddress ?? ''
  const prior = request.headers['x-forwarded-for']
  headers['x-forwarded-for'] = prior === undefined || prior === '' ? peer : `${String(prior)}, ${peer}`
  headers['x-forwarded-proto'] = request.protocol
  const host = request.headers.host
  if (host !== undefined) {
    headers['x-forwarded-host'] = host
    if (preserveHost) headers.host = host
  }
  headers['x-request-id'] = request.id
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/

/** Keeps a client's x-request-id when it is sane (printable, bounded), otherwise makes one. */
export function requestIdFrom (header: string | string[] | undefined, generate: () => string): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : generate()
}

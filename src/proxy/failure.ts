/**
 * What a transport failure says about whether the upstream saw the request:
 * - `refused`: it provably never reached the upstream (connection refused, connect timeout, DNS):
 *   safe to retry elsewhere for any method;
 * - `broken`: the connection broke before a response: retried only when the request is idempotent
 *   and has no body to replay;
 * - `timeout`: no response headers in time: not retried (504).
 */
export type FailureKind = 'refused' | 'broken' | 'timeout'

const REFUSED = new Set(['ECONNREFUSED', 'UPSTREAM_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])
const TIMEOUT = new Set(['UPSTREAM_HEADERS_TIMEOUT'])

/** The code of an upstream client's failure (src/proxy/h1: the socket's own, or UPSTREAM_*). */
export function transportCode (error: Error & { code?: string }): string {
  return typeof error.code === 'string' ? error.code : 'UNKNOWN'
}

export function classifyFailure (code: string): FailureKind {
  if (REFUSED.has(code)) return 'refused'
  if (TIMEOUT.has(code)) return 'timeout'
  return 'broken'
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export function mayRetry (kind: FailureKind, method: string, hasBody: boolean): boolean {
  if (kind === 'refused') return true
  if (kind === 'broken') return IDEMPOTENT.has(method) && !hasBody
  return false
}

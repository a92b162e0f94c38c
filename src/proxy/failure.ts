/**
 * What a transport failure says about whether the upstream saw the request:
 * - `refused`: it provably never reached the upstream (connection refused, connect timeout, DNS):
 *   safe to retry elsewhere for any method;
 * - `broken`: the connection broke before a response: retried only when the request is idempotent
 *   and has no body to replay;
 * - `timeout`: no response headers in time: not retried (504).
 */
export type FailureKind = 'refused' | 'broken' | 'timeout'

const REFUSED = new Set(['ECONNREFUSED', 'UPSTREAM_CONNECT_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])
const TIMEOUT = new Set(['UPSTREAM_HEADERS_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'FST_REPLY_FROM_GATEWAY_TIMEOUT'])

export function transportCode (error: Error & { code?: string, cause?: unknown }): string {
  let current: unknown = error
  // reply-from wraps the undici error; the innermost code is the informative one
  while (typeof current === 'object' && current !== null && 'cause' in current && current.cause !== undefined) {
    current = current.cause
  }
  const code = (current as { code?: unknown }).code
  return typeof code === 'string' ? code : (error.code ?? 'UNKNOWN')
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

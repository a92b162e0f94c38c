import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { AdminForbiddenError, AdminUnauthorizedError } from '../errors.js'

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

/** 127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6. */
export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  if (address === '::1') return true
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address
  return v4.startsWith('127.') && v4.split('.').length === 4
}

/**
 * The admin guard. With a token: `Authorization: Bearer <token>`, compared in constant time
 * (both sides hashed first, so neither the length nor the content leaks through timing).
 * Without one: only loopback callers, and both the socket peer and the client IP resolved under
 * TRUST_PROXY must be loopback, so a local reverse proxy cannot relay remote callers in.
 */
export function adminGuard (token: string | undefined): (request: FastifyRequest) => Error | undefined {
  if (token === undefined) {
    return request => isLoopback(request.socket.remoteAddress) && isLoopback(request.ip) ? undefined : new AdminForbiddenError()
  }
  const expected = digest(token)
  return request => {
    const header = request.headers.authorization
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match === null) return new AdminUnauthorizedError()
    return timingSafeEqual(digest(match[1] as string), expected) ? undefined : new AdminUnauthorizedError()
  }
}

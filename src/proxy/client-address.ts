import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import proxyAddr from '@fastify/proxy-addr'
import type { TrustProxy } from '../config/parsers.js'

/** Whether the hop at `address`, `index` hops away (0: the socket peer), may be believed. */
export type TrustFn = (address: string, index: number) => boolean

/**
 * TRUST_PROXY as one function, given to Fastify (its own routes and WebSocket upgrades) and used by
 * the proxy's fast path, so both agree on the client IP. A hop count trusts that many hops whatever
 * their address (Express's semantics): Fastify 5 now ignores a numeric trustProxy altogether, which
 * would silently turn TRUST_PROXY=2 into "trust nothing".
 */
export function trustFunction (trust: TrustProxy): TrustFn | false {
  if (trust === false) return false
  if (trust === true) return () => true
  if (typeof trust === 'number') return (_address, index) => index < trust
  return proxyAddr.compile([...trust])
}

/** The client IP and protocol of a raw request under TRUST_PROXY, as Fastify computes them. */
export interface ClientAddress {
  ip (req: IncomingMessage): string
  protocol (req: IncomingMessage): string
}

const protocolOf = (req: IncomingMessage): string => (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'

/** The last entry of a header that may have been sent more than once (as Fastify reads it). */
function lastEntry (value: string | string[]): string {
  const text = Array.isArray(value) ? value[value.length - 1] as string : value
  const comma = text.lastIndexOf(',')
  return (comma === -1 ? text : text.slice(comma + 1)).trim()
}

export function clientAddress (trust: TrustFn | false): ClientAddress {
  if (trust === false) {
    return { ip: req => req.socket.remoteAddress ?? '', protocol: protocolOf }
  }
  return {
    ip (req) {
      const all = proxyAddr.all(req, trust)
      return all[all.length - 1] ?? ''
    },
    protocol (req) {
      const forwarded = req.headers['x-forwarded-proto']
      if (forwarded !== undefined && forwarded !== '' && trust(req.socket.remoteAddress ?? '', 0)) return lastEntry(forwarded)
      return protocolOf(req)
    }
  }
}

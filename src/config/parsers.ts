import { isIP } from 'node:net'
import { normaliseOrigin } from '../pool/origin.js'

/** A value a parser refused, with why; the config loader turns it into one line on stderr. */
export class Invalid {
  constructor (readonly reason?: string) {}
}

const DURATION = /^(\d+)(ms|s|m|h)?$/
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const
/** Longest delay `setTimeout` honours; a longer one fires after 1 ms (TimeoutOverflowWarning). */
export const MAX_DURATION_MS = 2 ** 31 - 1

/** `1500`, `500ms`, `5s`, `1m`, `2h` → milliseconds. */
export function parseDuration (raw: string): number | Invalid {
  const match = DURATION.exec(raw.trim())
  if (match === null) return new Invalid()
  const value = Number(match[1]) * UNIT_MS[(match[2] ?? 'ms') as keyof typeof UNIT_MS]
  return value <= MAX_DURATION_MS ? value : new Invalid(`too large: at most ${MAX_DURATION_MS} ms (about 24 days)`)
}

export function parseInteger (raw: string, min: number, max: number): number | Invalid {
  if (!/^-?\d+$/.test(raw.trim())) return new Invalid()
  const value = Number(raw)
  return value >= min && value <= max ? value : new Invalid(`out of range ${min}..${max}`)
}

export interface UpstreamSeed {
  url: string
  weight: number
  name?: string
}

/** `http://a:3000=3,http://b:3000` → normalised origins with weights; an empty string is an empty pool. */
export function parseUpstreams (raw: string): UpstreamSeed[] | Invalid {
  const seeds: UpstreamSeed[] = []
  for (const part of raw.split(',')) {
    const entry = part.trim()
    if (entry === '') continue
    const eq = entry.lastIndexOf('=')
    const url = eq === -1 ? entry : entry.slice(0, eq)
    // the URL first, named as written: in `http://h/?a=b` the '=' belongs to a query, not a weight
    const origin = normaliseOrigin(url)
    if (!origin.ok) return new Invalid(`"${entry}" ${origin.message}`)
    let weight = 1
    if (eq !== -1) {
      const parsed = parseInteger(entry.slice(eq + 1), 1, 1000)
      if (parsed instanceof Invalid) return new Invalid(`weight of "${url}" must be an integer 1..1000`)
      weight = parsed
    }
    seeds.push({ url: origin.origin, weight })
  }
  return seeds
}

export type TrustProxy = boolean | number | string[]

/** Fastify `trustProxy`: `true`, `false`, a hop count, or a list of IPs/CIDRs. */
export function parseTrustProxy (raw: string): TrustProxy | Invalid {
  const value = raw.trim()
  if (value === 'true' || value === 'false' || value === '') return value === 'true'
  if (/^\d+$/.test(value)) return parseInteger(value, 0, 100)
  const list = value.split(',').map(s => s.trim()).filter(s => s !== '')
  for (const item of list) {
    if (!isAddressOrCidr(item)) return new Invalid(`"${item}" is not an IP address or CIDR`)
  }
  return list
}

export function isAddressOrCidr (value: string): boolean {
  const slash = value.indexOf('/')
  const address = slash === -1 ? value : value.slice(0, slash)
  const family = isIP(address)
  if (family === 0) return false
  if (slash === -1) return true
  const bits = parseInteger(value.slice(slash + 1), 0, family === 4 ? 32 : 128)
  return !(bits instanceof Invalid)
}

/** `redis://` or `rediss://`, as ioredis accepts it; an empty value keeps state in memory. */
export function parseRedisUrl (raw: string): string | undefined | Invalid {
  const value = raw.trim()
  if (value === '') return undefined
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return new Invalid('not a URL')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return new Invalid('must use redis:// or rediss://')
  return value
}

export interface HostPort { host: string, port: number }

/** `host:port,host:port` (IPv6 hosts in brackets); an empty value means none. */
export function parseHostPorts (raw: string): HostPort[] | Invalid {
  const nodes: HostPort[] = []
  for (const part of raw.split(',')) {
    const entry = part.trim()
    if (entry === '') continue
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(entry)
    const port = match === null ? new Invalid() : parseInteger(match[2] as string, 1, 65535)
    if (match === null || port instanceof Invalid) return new Invalid(`"${entry}" is not host:port`)
    nodes.push({ host: (match[1] as string).replace(/^\[|\]$/g, ''), port })
  }
  return nodes
}

export type LimitKey = { kind: 'ip' } | { kind: 'header', name: string }

/** `ip`, or `header:<name>` (a valid HTTP header name). */
export function parseLimitKey (raw: string): LimitKey | Invalid {
  const value = raw.trim()
  if (value === 'ip') return { kind: 'ip' }
  const match = /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(value)
  if (match === null) return new Invalid()
  return { kind: 'header', name: (match[1] as string).toLowerCase() }
}

/** A comma-separated list of IPs and CIDRs; empty means none. */
export function parseAddressList (raw: string): string[] | Invalid {
  const list = raw.split(',').map(s => s.trim()).filter(s => s !== '')
  for (const item of list) {
    if (!isAddressOrCidr(item)) return new Invalid(`"${item}" is not an IP address or CIDR`)
  }
  return list
}

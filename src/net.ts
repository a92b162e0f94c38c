const MAPPED_V4 = '::ffff:'

/**
 * The client's identity for hashing and limiting: an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`,
 * what a dual-stack listener reports for IPv4 peers) is folded to plain IPv4 so one client has
 * one key whichever way it connected.
 */
export function clientKey (ip: string): string {
  return ip.startsWith(MAPPED_V4) && ip.includes('.') ? ip.slice(MAPPED_V4.length) : ip
}

/**
 * The identity the limiter counts a client IP under: IPv4 as is, IPv4-mapped IPv6 folded to IPv4
 * (dotted or hex form), other IPv6 addresses by their /64 network (`2001:db8:1:2::`), since one
 * subscriber usually holds a whole /64. Anything unparsable is returned lower-cased, unchanged.
 */
export function limitIdentity (ip: string): string {
  if (!ip.includes(':')) return ip
  const groups = ipv6Groups(ip)
  if (groups === undefined) return ip.toLowerCase()
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    const high = groups[6] as number
    const low = groups[7] as number
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  return `${(groups[0] as number).toString(16)}:${(groups[1] as number).toString(16)}:${(groups[2] as number).toString(16)}:${(groups[3] as number).toString(16)}::`
}

/** The eight 16-bit groups of an IPv6 address (zone ignored, embedded IPv4 accepted), or undefined. */
function ipv6Groups (ip: string): number[] | undefined {
  const zone = ip.indexOf('%')
  const address = zone === -1 ? ip : ip.slice(0, zone)
  const halves = address.split('::')
  if (halves.length > 2) return undefined
  const parse = (part: string | undefined): number[] | undefined => {
    if (part === undefined || part === '') return []
    const out: number[] = []
    const pieces = part.split(':')
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string
      if (i === pieces.length - 1 && piece.includes('.')) {
        const octets = piece.split('.').map(Number)
        if (octets.length !== 4 || octets.some(o => !Number.isInteger(o) || o < 0 || o > 255)) return undefined
        const [a, b, c, d] = octets as [number, number, number, number]
        out.push((a << 8) | b, (c << 8) | d)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined
        out.push(parseInt(piece, 16))
      }
    }
    return out
  }
  const head = parse(halves[0])
  const tail = parse(halves[1])
  if (head === undefined || tail === undefined) return undefined
  const missing = 8 - head.length - tail.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  return [...head, ...new Array<number>(missing).fill(0), ...tail]
}

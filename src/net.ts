const MAPPED_V4 = '::ffff:'

/**
 * The client's identity for hashing and limiting: an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`,
 * what a dual-stack listener reports for IPv4 peers) is folded to plain IPv4 so one client has
 * one key whichever way it connected.
 */
export function clientKey (ip: string): string {
  return ip.startsWith(MAPPED_V4) && ip.includes('.') ? ip.slice(MAPPED_V4.length) : ip
}

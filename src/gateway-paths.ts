/**
 * The paths the gateway answers itself (through Fastify) on its public listener; every other path is
 * proxied. Each owns itself and everything below it (`/admin`, `/admin/servers/x`), never a mere
 * prefix (`/administrator` is proxied). Routes the gateway adds must live under one of these; a test
 * checks every registered route against this list.
 */
export const GATEWAY_PATHS: readonly string[] = ['/admin', '/docs', '/healthz', '/metrics', '/readyz']

/** The path of a request target: everything before its query string. */
export function pathOf (url: string): string {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** Whether `url` (a request target, query included) is the gateway's own. Called per request: no allocation. */
export function isGatewayPath (url: string): boolean {
  for (let i = 0; i < GATEWAY_PATHS.length; i++) {
    const owned = GATEWAY_PATHS[i] as string
    if (!url.startsWith(owned)) continue
    const next = url.charCodeAt(owned.length)
    // end of string (NaN), '/', '?' or '#'
    if (Number.isNaN(next) || next === 47 || next === 63 || next === 35) return true
  }
  return false
}

import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

const served = Symbol('sluice.requestsServed')
type CountedSocket = Socket & { [served]?: number }

/**
 * MAX_REQUESTS_PER_SOCKET the way nginx's `keepalive_requests` works: the Nth response on a client
 * connection carries `connection: close` and Node ends the socket once it is sent. Node's own
 * `maxRequestsPerSocket` only sends the header and keeps the socket, answering every further request
 * on it with a bare 503; a client that ignores the header (autocannon does) then loops on 503s.
 * Runs before the gateway's listener, so it holds whatever answers the request.
 */
export function limitRequestsPerSocket (server: Server, max: number): void {
  if (max === 0) return
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket as CountedSocket
    const count = (socket[served] ?? 0) + 1
    socket[served] = count
    // not a `connection` header: a response written with writeHead(status, rawHeaderList) would
    // then be merged header by header (and repeated headers such as set-cookie collapsed)
    if (count >= max) res.shouldKeepAlive = false
  })
}

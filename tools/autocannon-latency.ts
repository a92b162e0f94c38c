import type autocannon from 'autocannon'

interface ClientInternals {
  _connect?: () => void
  pipelinedRequests?: { clear?: () => void }
}

/**
 * For autocannon's `setupClient`: keeps its latencies honest on connections the server closes.
 *
 * autocannon 9 sends the next request as soon as a response ends, even one that carried
 * `connection: close` (the gateway sends it on every MAX_REQUESTS_PER_SOCKET-th response). That
 * request dies with the connection but stays first in the client's queue of requests awaiting an
 * answer: from then on each response on the new connection is matched with the request before its
 * own, and its latency counts from that one's start, about twice the real value. With 50 connections
 * recycled every 1000 requests, a whole run's p50 doubled while req/s was right (req/s × mean
 * latency came out above the number of connections, which a closed loop cannot do). This forgets
 * the requests a closed connection took with it before autocannon opens the next one, as its own
 * timeout path already does.
 */
export function forgetRequestsOfClosedConnections (client: autocannon.Client): void {
  const internals = client as unknown as ClientInternals
  const connect = internals._connect
  if (typeof connect !== 'function' || typeof internals.pipelinedRequests?.clear !== 'function') {
    throw new Error('autocannon\'s client internals changed: review tools/autocannon-latency.ts')
  }
  internals._connect = function reconnect (this: ClientInternals): void {
    this.pipelinedRequests?.clear?.()
    connect.call(this)
  }
}

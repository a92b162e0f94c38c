import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'
import t from 'tap'
import { forgetRequestsOfClosedConnections } from '../../tools/autocannon-latency.js'

const DELAY_MS = 25
const CLOSE_EVERY = 3
const RESPONSES = 12

/** A server that answers after DELAY_MS and closes every CLOSE_EVERY-th connection's keep-alive, as MAX_REQUESTS_PER_SOCKET does. */
async function closingServer (t: { teardown: (fn: () => void) => void }): Promise<string> {
  const server = createServer((req, res) => {
    const socket = req.socket as typeof req.socket & { served?: number }
    socket.served = (socket.served ?? 0) + 1
    if (socket.served >= CLOSE_EVERY) res.shouldKeepAlive = false
    setTimeout(() => { res.end('ok') }, DELAY_MS)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}

/** Latencies autocannon reports for RESPONSES requests on one connection. */
async function latencies (url: string, fix: boolean): Promise<number[]> {
  const seen: number[] = []
  await new Promise<void>((resolve, reject) => {
    autocannon({
      url,
      connections: 1,
      amount: RESPONSES,
      timeout: 5,
      setupClient: client => {
        if (fix) forgetRequestsOfClosedConnections(client)
        client.on('response', (_status: number, _bytes: number, ms: number) => { seen.push(ms) })
      }
    }, err => { if (err === null || err === undefined) resolve(); else reject(err) })
  })
  return seen
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number

t.test('after the server closes a connection, each latency counts from its own request', async t => {
  const url = await closingServer(t)
  // the first connection's responses are right either way; the rest come after a close
  const fixed = (await latencies(url, true)).slice(CLOSE_EVERY)
  // autocannon's `amount` counts requests sent, those lost with a closed connection too
  t.ok(fixed.length >= 4, `responses after a close (${fixed.length})`)
  t.ok(median(fixed) < 2 * DELAY_MS, `median ${median(fixed).toFixed(1)} ms, one answer's delay (${DELAY_MS} ms), not two`)

  // without it, autocannon matches each response with the request before: at least two delays
  const raw = (await latencies(url, false)).slice(CLOSE_EVERY)
  t.ok(median(raw) >= 2 * DELAY_MS, `autocannon alone: median ${median(raw).toFixed(1)} ms (the miscount this works around)`)
})

t.test('refuses a client whose internals it does not know', async t => {
  t.throws(() => { forgetRequestsOfClosedConnections({} as autocannon.Client) }, /internals changed/)
})

import t from 'tap'
import WebSocket from 'ws'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

interface Session { socket: WebSocket, greeting: { server: string, path: string }, next: () => Promise<string> }

async function connect (url: string): Promise<Session> {
  const socket = new WebSocket(url)
  const queue: string[] = []
  const waiting: Array<(m: string) => void> = []
  socket.on('message', data => {
    const text = String(data)
    const resolve = waiting.shift()
    if (resolve !== undefined) resolve(text)
    else queue.push(text)
  })
  const next = async (): Promise<string> => queue.length > 0 ? queue.shift()! : new Promise(resolve => waiting.push(resolve))
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  const greeting = JSON.parse(await next()) as Session['greeting']
  return { socket, greeting, next }
}

t.test('WebSocket upgrades are proxied, balanced and echo both ways', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const wsUrl = gw.url.replace('http:', 'ws:')
  const a = await connect(`${wsUrl}/chat?room=1`)
  const b = await connect(`${wsUrl}/chat?room=2`)
  t.same([a.greeting.server, b.greeting.server].sort(), ['b1', 'b2'], 'two connections, two servers')
  t.equal(a.greeting.path, '/chat?room=1', 'path and query kept')
  a.socket.send('hello through the gateway')
  t.equal(await a.next(), 'hello through the gateway')
  const { pool } = gw.app.balancer
  t.same(pool.list().map(s => s.inFlight), [1, 1], 'an open WebSocket counts as in flight')
  a.socket.close()
  b.socket.close()
  await waitFor(() => pool.list().every(s => s.inFlight === 0), 'in-flight to drop when sockets close')
})

t.test('a WebSocket with no routable upstream is refused with 503', async t => {
  const backends = await startBackends(t, 1, { healthy: false })
  const gw = await startGateway(t, upstreamsEnv(backends))
  const socket = new WebSocket(gw.url.replace('http:', 'ws:') + '/chat')
  const status = await new Promise<number>(resolve => {
    socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    socket.on('error', () => resolve(-1))
  })
  t.equal(status, 503)
})

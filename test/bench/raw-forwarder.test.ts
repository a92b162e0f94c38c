import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { freePort } from '../../tools/free-port.js'
import { startBackends } from '../helpers/backends.js'
import { spawnBuilt } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

// The bench's undici-free yardstick must forward like the other contenders, or its numbers mean nothing.

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

async function call (port: number, method: string, path = '/', body?: string): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: body === undefined ? {} : { 'content-type': 'text/plain' } }, res => {
      let text = ''
      res.setEncoding('latin1').on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function startForwarder (t: { teardown: (fn: () => void) => void }, upstreams: string[]): Promise<{ port: number, stderr: () => string }> {
  const port = await freePort()
  const spawned = spawnBuilt(t, 'tools/bench/raw-forwarder.js', { PORT: String(port), UPSTREAMS: upstreams.join(',') })
  await waitFor(async () => await call(port, 'GET').then(() => true, () => false), 'the raw forwarder to answer', 10_000, 50)
  return { port, stderr: spawned.stderr }
}

t.test('forwards round robin, relays status, headers and whole bodies, keeps connections across HEAD', async t => {
  const backends = await startBackends(t, 2)
  const { port, stderr } = await startForwarder(t, backends.map(b => b.url))
  const served: string[] = []
  for (let i = 0; i < 4; i++) {
    const answer = await call(port, 'GET')
    t.equal(answer.status, 200)
    served.push(answer.headers['x-served-by'] as string)
  }
  t.same(served.sort(), ['b1', 'b1', 'b2', 'b2'], 'each backend twice')

  const big = await call(port, 'GET', '/?size=300000')
  t.equal(big.body.length, 300_000, 'a body of many reads arrives whole')

  const head = await call(port, 'HEAD', '/?size=1000')
  t.equal(head.status, 200)
  t.equal(head.body, '', 'no body after HEAD')
  const after = await call(port, 'GET', '/?status=418')
  t.equal(after.status, 418, 'the connection that carried HEAD still parses the next response')

  t.equal((await call(port, 'POST', '/echo', 'hello')).status, 501, 'a request with a body is refused, not half forwarded')
  t.equal(stderr(), '', 'nothing on stderr (no deprecation warning either)')
})

t.test('a response head of more than 32 header lines arrives whole', async t => {
  const server = createServer((_req, res) => {
    for (let i = 0; i < 40; i++) res.setHeader(`x-h${i}`, String(i))
    res.end('ok')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const { port } = await startForwarder(t, [`http://127.0.0.1:${(server.address() as AddressInfo).port}`])
  const answer = await call(port, 'GET')
  t.equal(answer.body, 'ok')
  t.equal(answer.headers['x-h0'], '0')
  t.equal(answer.headers['x-h39'], '39')
})

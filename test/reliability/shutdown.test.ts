import t from 'tap'
import { connect, type Socket } from 'node:net'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { runLoad, summary } from '../helpers/load.js'
import { spawnServer } from '../helpers/process.js'
import { freePort } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const CONCURRENCY = 32
const UPSTREAM_DELAY_MS = 250
const SHUTDOWN_TIMEOUT_MS = 5000
const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A keep-alive connection that has had one answer and now sits idle; resolves `closed` when the gateway ends it. */
async function idleKeepAlive (port: number): Promise<{ socket: Socket, closed: Promise<'FIN' | 'RST'> }> {
  const socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  const answered = new Promise<void>(resolve => {
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      // /healthz answers a short JSON body with content-length: enough to know it is complete
      if (/\r\n\r\n\{[^}]*\}$/.test(head)) { socket.off('data', onData); resolve() }
    }
    socket.on('data', onData)
  })
  const closed = new Promise<'FIN' | 'RST'>(resolve => {
    socket.once('end', () => resolve('FIN'))
    socket.once('error', () => resolve('RST'))
  })
  socket.write('GET /healthz HTTP/1.1\r\nhost: gateway\r\n\r\n')
  await answered
  return { socket, closed }
}

t.test('SIGTERM under load: every in-flight request ends 200, idle keep-alive connections are closed, new ones refused, exit 0', async t => {
  const backends = await startBackends(t, 3, { delayMs: UPSTREAM_DELAY_MS })
  let upstreamInFlight = 0
  for (const backend of backends) {
    backend.server.on('request', (_req, res) => {
      upstreamInFlight++
      res.once('close', () => { upstreamInFlight-- })
    })
  }
  const proxied = (): number => backends.reduce((n, b) => n + (b.hits.get('/') ?? 0), 0)
  const port = await freePort()
  const server = spawnServer(t, {
    PORT: String(port),
    HOST: '127.0.0.1',
    UPSTREAMS: backends.map(b => b.url).join(','),
    HEALTH_CHECK_INTERVAL: '0',
    RATE_LIMIT: 'off',
    SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
    LOG_LEVEL: 'info'
  }, t.testdir())
  await waitFor(() => /Server listening at/.test(server.stdout()), 'the gateway to listen', 20_000)
  const url = `http://127.0.0.1:${port}`
  const idle = await idleKeepAlive(port)
  t.teardown(() => { idle.socket.destroy() })

  // runs on after the stop, so requests keep coming at a closed listener
  const load = runLoad({ url, concurrency: CONCURRENCY, durationMs: 3500, timeoutMs: SHUTDOWN_TIMEOUT_MS + 2000 })
  await sleep(2000)
  // signal while every worker's request is at an upstream: no client connection is between two
  // requests, so each one is either in flight (and must finish) or new (and must be refused); the
  // 250 ms the upstreams take leave the gateway ample time to flag shutdown before any answer
  await waitFor(() => upstreamInFlight === CONCURRENCY, `all ${CONCURRENCY} requests to be at the upstreams`, 5000, 1)
  const inFlightAtStop = upstreamInFlight
  const proxiedAtStop = proxied()
  const stoppedAt = performance.now()
  server.child.kill('SIGTERM')
  const exitCode = await server.exited
  const shutdownMs = performance.now() - stoppedAt
  const idleClosed = await Promise.race([idle.closed, sleep(1000).then(() => 'still open')])
  const result = await load

  t.equal(exitCode, 0, 'exit 0')
  t.ok(shutdownMs < SHUTDOWN_TIMEOUT_MS + 1000, `within SHUTDOWN_TIMEOUT (${shutdownMs.toFixed(0)} ms)`)
  t.match(server.stdout(), /shutting down: finishing in-flight requests/)
  t.equal(idleClosed, 'FIN', 'an idle keep-alive connection is closed politely at once, not left open or reset')

  t.same(Object.keys(result.statuses), ['200'], 'every answered request was a 200: no 5xx')
  t.same(Object.keys(result.errors), ['ECONNREFUSED'], 'the only failure is a refused new connection: none reset mid-request')
  t.ok((result.errors.ECONNREFUSED ?? 0) > 0, 'requests sent after the stop were refused')
  t.equal(proxied(), proxiedAtStop, 'nothing reached an upstream after the stop')
  t.equal(result.statuses[200], proxiedAtStop, `every request the gateway forwarded reached its client, the ${inFlightAtStop} in flight included`)
  const accessLog = server.stdout().split('\n').filter(line => line.includes('"msg":"request"'))
  t.equal(accessLog.length, proxiedAtStop, 'the gateway answered exactly those (its access log)')
  t.notOk(accessLog.some(line => !line.includes('"status":200')), 'all of them 200')
  await t.rejects(request(`${url}/`), { code: 'ECONNREFUSED' }, 'the port is closed after exit')

  const refused = result.errors.ECONNREFUSED ?? 0
  t.comment(`FIGURE shutdown: ${summary(result)}; ${inFlightAtStop} in flight at SIGTERM all completed 200, ` +
    `${refused} refused after the listener closed, exit ${exitCode} ${shutdownMs.toFixed(0)} ms after SIGTERM ` +
    `(SHUTDOWN_TIMEOUT ${SHUTDOWN_TIMEOUT_MS} ms, upstream delay ${UPSTREAM_DELAY_MS} ms)`)
})

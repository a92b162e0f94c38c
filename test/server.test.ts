import t from 'tap'
import { request, Agent } from 'undici'
import { VARIABLES } from '../src/config/index.js'
import { startBackends } from './helpers/backends.js'
import { spawnServer } from './helpers/process.js'
import { BAD } from './helpers/bad-config.js'
import { waitFor } from './helpers/wait.js'

t.test('bad configuration: exit 1, one line per variable naming it, its value and the accepted form, no stack', async t => {
  const names = Object.values(VARIABLES).map(v => v.env).filter(name => name !== 'HOST')
  t.same(Object.keys(BAD).sort(), names.sort(), 'every variable has a bad value in this test')
  const server = spawnServer(t, BAD, t.testdir())
  t.equal(await server.exited, 1)
  const lines = server.stderr().trim().split('\n')
  t.equal(lines.length, names.length, 'one line per problem')
  for (const [name, value] of Object.entries(BAD)) {
    const line = lines.find(l => l.startsWith(`sluice: ${name}=${JSON.stringify(value)} is invalid`))
    t.ok(line, `${name} named with its value`)
    t.match(line, /: expected .+/, `${name} says what is accepted`)
  }
  t.notMatch(server.stderr(), /\bat .+:\d+:\d+/, 'no stack trace')
  t.equal(server.stdout(), '', 'nothing started')
})

t.test('a port in use: exit 1 with one clear line', async t => {
  const backends = await startBackends(t, 1)
  const port = new URL(backends[0]!.url).port
  const server = spawnServer(t, { PORT: port, HOST: '127.0.0.1', LOG_LEVEL: 'silent' }, t.testdir())
  t.equal(await server.exited, 1)
  t.match(server.stderr(), new RegExp(`^sluice: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`))
})

t.test('SIGTERM: in-flight requests finish, new connections are refused, exit 0', async t => {
  const backends = await startBackends(t, 1)
  const server = spawnServer(t, {
    PORT: '0', HOST: '127.0.0.1', UPSTREAMS: backends[0]!.url, LOG_LEVEL: 'info', HEALTH_CHECK_INTERVAL: '0'
  }, t.testdir())
  await waitFor(() => /Server listening at/.test(server.stdout()), 'the gateway to listen', 20_000)
  const url = /Server listening at (http:\/\/[\d.:]+)/.exec(server.stdout())![1]!
  const agent = new Agent({ keepAliveTimeout: 10_000 })
  t.teardown(() => agent.close())
  const warm = await request(`${url}/`, { dispatcher: agent })
  await warm.body.dump()
  t.equal(warm.statusCode, 200)
  const inFlight = request(`${url}/slow?delay=700`, { dispatcher: agent })
  await waitFor(() => (backends[0]!.hits.get('/slow') ?? 0) === 1, 'the slow request to reach the upstream')
  server.child.kill('SIGTERM')
  const res = await inFlight
  t.equal(res.statusCode, 200, 'the in-flight request completed')
  t.equal((await res.body.json() as { server: string }).server, 'b1')
  t.equal(res.headers.connection, 'close', 'the keep-alive client is told to close')
  t.equal(await server.exited, 0, 'exit 0')
  t.match(server.stdout(), /shutting down/)
  await t.rejects(request(`${url}/`), { code: 'ECONNREFUSED' }, 'no new connections')
})

import { createServer } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { startBackends } from './helpers/backends.js'
import { spawnServer, type Spawned } from './helpers/process.js'
import { freePort, startRedis } from './helpers/redis.js'
import { waitFor } from './helpers/wait.js'

// every test here starts a primary and two or more workers (Node processes of ~1.5 s start-up each
// on a slow, busy core), and one lets five workers die in turn: more than the suite's 60 s per file
// when the rest of the suite runs beside it
t.setTimeout(180_000)

// WORKERS=N: the built entry forks N workers on one port (node:cluster), sharing Redis.

interface AccessLine { msg: string, pid: number, status: number }

const accessLines = (server: Spawned): AccessLine[] => server.stdout().split('\n')
  .filter(line => line.includes('"msg":"request"'))
  .map(line => JSON.parse(line) as AccessLine)

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A GET on a connection of its own, so the primary hands each to the next worker. */
async function fresh (url: string): Promise<number> {
  const res = await request(url, { reset: true })
  await res.body.dump()
  return res.statusCode
}

t.test('WORKERS=2: requests spread over both, limits stay exact, a killed worker is replaced, SIGTERM stops all with exit 0', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 2)
  const port = await freePort()
  const server = spawnServer(t, {
    PORT: String(port),
    HOST: '127.0.0.1',
    WORKERS: '2',
    REDIS_URL: redis.url,
    UPSTREAMS: backends.map(b => b.url).join(','),
    RATE_LIMIT_MAX: '15',
    RATE_LIMIT_WINDOW: '1m',
    HEALTH_CHECK_INTERVAL: '0',
    LOG_LEVEL: 'info'
  }, t.testdir())
  await waitFor(() => (server.stdout().match(/Server listening at/g) ?? []).length === 2, 'both workers to listen', 30_000)
  t.match(server.stdout(), /"workers":2.*primary: workers started/)
  const url = `http://127.0.0.1:${port}/`
  // each limiter connects to Redis after listening: wait until both decide through it
  await waitFor(async () => {
    const res = await request(`http://127.0.0.1:${port}/readyz`, { reset: true })
    const body = await res.body.json() as { limiter?: { degraded?: boolean } }
    return body.limiter?.degraded === false
  }, 'the limiters to reach Redis', 10_000, 100)
  await new Promise(resolve => setTimeout(resolve, 300))

  const statuses: number[] = []
  for (let i = 0; i < 40; i++) statuses.push(await fresh(url))
  t.equal(statuses.filter(s => s === 200).length, 15, 'exactly RATE_LIMIT_MAX admitted across the workers')
  t.equal(statuses.filter(s => s === 429).length, 25)
  await waitFor(() => accessLines(server).length === 40, 'every access line')
  const pids = [...new Set(accessLines(server).map(line => line.pid))]
  t.equal(pids.length, 2, 'both workers served requests')
  t.notOk(pids.includes(server.child.pid as number), 'the primary serves none itself')

  process.kill(pids[0] as number, 'SIGKILL')
  await waitFor(() => (server.stdout().match(/Server listening at/g) ?? []).length === 3, 'a replacement worker', 20_000)
  t.match(server.stdout(), /a worker exited; starting another/)
  const before = accessLines(server).length
  for (let i = 0; i < 6; i++) t.equal(await fresh(url), 429, 'still served (and still over budget: the count is in Redis)')
  await waitFor(() => accessLines(server).length === before + 6, 'their access lines')
  const after = new Set(accessLines(server).slice(before).map(line => line.pid))
  t.notOk(after.has(pids[0] as number), 'the killed worker is gone')
  t.equal(after.size, 2, 'two workers again')

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'the primary exits 0 once the workers have')
  for (const pid of [...after]) t.notOk(alive(pid), `worker ${pid} stopped`)
})

t.test('WORKERS=2 whose port is taken: the primary gives up after repeated start-up deaths, exit 1', async t => {
  const redis = await startRedis(t)
  const blocker = createServer()
  await new Promise<void>(resolve => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => blocker.close())
  const port = (blocker.address() as { port: number }).port
  const server = spawnServer(t, { PORT: String(port), HOST: '127.0.0.1', WORKERS: '2', REDIS_URL: redis.url, LOG_LEVEL: 'info' }, t.testdir())
  t.equal(await server.exited, 1)
  t.match(server.stdout(), /workers keep dying at start-up/)
  t.match(server.stderr(), /EADDRINUSE/)
})

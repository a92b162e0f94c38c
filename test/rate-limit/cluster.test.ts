import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { startRedisCluster } from '../helpers/redis-cluster.js'
import { waitFor } from '../helpers/wait.js'

const run = promisify(execFile)

async function status (url: string, ip: string): Promise<number> {
  const res = await request(url, { headers: { 'x-forwarded-for': ip } })
  await res.body.dump()
  return res.statusCode
}

t.test('REDIS_CLUSTER_NODES: exact shared budgets on a real 3-master cluster, keys spread over its slots', async t => {
  const cluster = await startRedisCluster(t)
  const backends = await startBackends(t, 1)
  const env = upstreamsEnv(backends, {
    REDIS_CLUSTER_NODES: cluster.seeds, KEY_PREFIX: 'cl:', RATE_LIMIT_MAX: '5', TRUST_PROXY: '127.0.0.1'
  })
  const a = await startGateway(t, env)
  const b = await startGateway(t, env)
  const connected = async (gw: Gateway): Promise<void> => waitFor(() => !gw.app.limiter.degraded, 'the limiter to reach the cluster', 10_000)
  await connected(a)
  await connected(b)
  // 12 clients, 8 concurrent requests each over both instances: exactly 5 admitted per client
  const clients = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 1}`)
  const results = await Promise.all(clients.map(async ip =>
    Promise.all(Array.from({ length: 8 }, async (_, i) => status(`${i % 2 === 0 ? a.url : b.url}/`, ip)))))
  for (const [i, codes] of results.entries()) t.equal(codes.filter(c => c === 200).length, 5, `client ${clients[i]}: exactly max`)
  t.equal(a.app.limiter.stats.fallbacks + b.app.limiter.stats.fallbacks, 0, 'every decision was the cluster\'s')
  const keysOn = async (port: number, pattern: string): Promise<string[]> =>
    (await run('redis-cli', ['-p', String(port), '--scan', '--pattern', pattern])).stdout.split('\n').filter(Boolean)
  const perNode = await Promise.all(cluster.nodes.map(async n => (await keysOn(n.port, 'cl:rl:*')).length))
  t.equal(perNode.reduce((x, y) => x + y), 12, 'one limiter key per client')
  t.ok(perNode.filter(n => n > 0).length >= 2, `limiter keys live on several masters (${perNode.join('/')})`)
  // the shared pool works on the cluster too: its keys share one hash tag, so one slot, one node
  const poolKeys = await Promise.all(cluster.nodes.map(async n => (await keysOn(n.port, 'cl:{pool}:*')).sort()))
  t.same(poolKeys.filter(keys => keys.length > 0), [['cl:{pool}:servers', 'cl:{pool}:version']], 'both pool keys on one node')
})

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startRedis, type RedisServer } from './redis.js'
import { waitFor } from './wait.js'

const run = promisify(execFile)

interface Teardown { teardown: (fn: () => unknown) => void, testdir: () => string }

/**
 * A real 3-master Redis Cluster on free ports (no replicas, no persistence), built with
 * `redis-cli --cluster create` and stopped by PID when the test ends. Its nodes.conf files live
 * in the test's own directory.
 */
export async function startRedisCluster (t: Teardown): Promise<{ nodes: RedisServer[], seeds: string }> {
  const dir = t.testdir()
  const nodes: RedisServer[] = []
  for (let i = 0; i < 3; i++) {
    nodes.push(await startRedis(t, ['--cluster-enabled', 'yes', '--cluster-config-file', `${dir}/nodes-${i}.conf`, '--cluster-node-timeout', '2000', '--dir', dir]))
  }
  const addresses = nodes.map(n => `127.0.0.1:${n.port}`)
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 })
  await waitFor(async () => {
    const states = await Promise.all(nodes.map(async n => (await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])).stdout))
    return states.every(s => s.includes('cluster_state:ok'))
  }, 'the cluster to be ok', 20_000, 100)
  return { nodes, seeds: addresses.join(',') }
}

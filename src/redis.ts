import type { Redis, Cluster } from 'ioredis'
import type { HostPort } from './config/parsers.js'

export type RedisClient = Redis | Cluster

export interface RedisOptions {
  url: string | undefined
  clusterNodes: readonly HostPort[]
  /** Longest a command may take before it fails (REDIS_TIMEOUT). */
  commandTimeoutMs: number
}

/**
 * A client that never makes a request wait on an absent Redis: with ioredis defaults a command
 * on a dead server is queued and retried for ~73 s. Here nothing is queued while disconnected,
 * a command fails after `commandTimeoutMs`, and reconnection goes on in the background with
 * backoff. Connecting is left to the caller (`connect()`), so start-up never blocks on Redis.
 * Returns undefined when neither a URL nor cluster nodes are configured. ioredis is imported only
 * then: it adds about 20 MB to the RSS of a gateway that does not use it.
 */
export async function createRedisClient (options: RedisOptions): Promise<RedisClient | undefined> {
  if (options.clusterNodes.length === 0 && options.url === undefined) return undefined
  const { Redis, Cluster } = await import('ioredis')
  const common = {
    lazyConnect: true,
    enableOfflineQueue: false,
    // measured side by side (docs/benchmarks.md): auto-pipelining doubled the gateway's CPU per
    // limiter check (+36 µs vs +18 µs) for a saving of Redis CPU, which is not the bottleneck here
    enableAutoPipelining: false,
    commandTimeout: options.commandTimeoutMs,
    maxRetriesPerRequest: 0
  }
  const backoff = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000)
  if (options.clusterNodes.length > 0) {
    return new Cluster(options.clusterNodes.map(n => ({ host: n.host, port: n.port })), {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      clusterRetryStrategy: backoff,
      // the cluster reconnects its nodes itself; per node only the command bounds apply
      redisOptions: { commandTimeout: options.commandTimeoutMs, maxRetriesPerRequest: 0, connectTimeout: 2000 }
    })
  }
  return new Redis(options.url as string, { ...common, connectTimeout: 2000, retryStrategy: backoff })
}

/** Closes politely, then for good if the server does not answer. */
export async function closeRedisClient (client: RedisClient, timeoutMs = 1000): Promise<void> {
  const timer = setTimeout(() => client.disconnect(), timeoutMs)
  try {
    await client.quit()
  } catch {
    client.disconnect()
  } finally {
    clearTimeout(timer)
  }
}

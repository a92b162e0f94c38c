import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { Config } from '../src/config/index.js'
import { closeRedisClient, createRedisClient, type RedisClient } from '../src/redis.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The one Redis connection (or Cluster) the limiter and the shared pool use; null without Redis. */
    redis: RedisClient | null
  }
}

export interface RedisPluginOptions {
  config: Config
}

/**
 * Owns the Redis client: created here, connected once the app is ready without waiting for it
 * (start-up never blocks or fails on Redis; its users follow the connection events), closed last.
 */
const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (fastify, { config }) => {
  const client = await createRedisClient({ url: config.redisUrl, clusterNodes: config.redisClusterNodes, commandTimeoutMs: config.redisTimeout }) ?? null
  fastify.decorate('redis', { getter: () => client })
  if (client === null) return
  // ioredis reports every failed reconnect as an 'error' event; its users log outages once
  client.on('error', () => {})
  fastify.addHook('onReady', async () => {
    client.connect().catch(() => {})
  })
  fastify.addHook('onClose', async () => { await closeRedisClient(client) })
}

export default fp(redisPlugin, { name: 'sluice-redis', fastify: '5.x' })

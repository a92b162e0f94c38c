import type { Cluster, Redis } from 'ioredis'
import type { RedisClient } from '../redis.js'
import { InvalidUpstreamError, PoolUnavailableError } from '../errors.js'
import type { PoolAdmin } from './admin.js'
import { normaliseOrigin, serverId } from './origin.js'
import type { Pool, ServerPatch, ServerSpec } from './pool.js'
import type { Upstream } from './upstream.js'
import { ADD, READ, REMOVE, UPDATE } from './shared-lua.js'

/** A server as stored in Redis: what every instance agrees on (health and counters stay local). */
interface StoredServer {
  url: string
  name: string
  weight: number
  enabled: boolean
  addedAt: string
}

interface Change {
  v: number
  op: 'add' | 'update' | 'remove'
  id: string
  server?: StoredServer
}

type AddArgs = [servers: string, version: string, channel: string, id: string, json: string]

/** A MULTI of the add script (ioredis queues the defined commands on a transaction too). */
interface Transaction {
  sluicePoolAdd (...args: AddArgs): Transaction
  exec (): Promise<Array<[error: Error | null, result: unknown]> | null>
}

interface PoolCommands {
  sluicePoolAdd (...args: AddArgs): Promise<number>
  sluicePoolUpdate (servers: string, version: string, channel: string, id: string, weight: string, enabled: string): Promise<string | null>
  sluicePoolRemove (servers: string, version: string, channel: string, id: string): Promise<number>
  sluicePoolRead (servers: string, version: string): Promise<Array<string | number>>
}

export interface SharedPoolOptions {
  prefix: string
  drainTimeoutMs: number
  /** UPSTREAMS: written to Redis if missing, once, at the first connection. */
  seeds: readonly ServerSpec[]
  /** How often the version is polled, as a safety net under pub/sub (a missed message). */
  pollMs?: number
  log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }
}

/**
 * The pool shared by every instance through Redis: a hash of servers plus a version, each change
 * one atomic script that also publishes it. An instance applies its own change at once and every
 * other one when the message arrives; a gap in versions, a reconnect or the version poll makes it
 * re-read the whole pool, so a missed message cannot leave it stale. While Redis is unreachable
 * changes are refused (503), never queued: the admin sees at once that nothing changed.
 */
export class SharedPool implements PoolAdmin {
  readonly #pool: Pool
  readonly #client: RedisClient & PoolCommands
  readonly #subscriber: RedisClient
  readonly #options: SharedPoolOptions
  readonly #servers: string
  readonly #versionKey: string
  readonly #channel: string
  #version = -1
  #seeded = false
  #poll: NodeJS.Timeout | undefined
  #closed = false
  #syncing: Promise<void> | undefined
  #syncAgain = false

  constructor (pool: Pool, client: RedisClient, options: SharedPoolOptions) {
    this.#pool = pool
    this.#options = options
    const tag = `${options.prefix}{pool}`
    this.#servers = `${tag}:servers`
    this.#versionKey = `${tag}:version`
    this.#channel = `${tag}:changes`
    client.defineCommand('sluicePoolAdd', { numberOfKeys: 2, lua: ADD })
    client.defineCommand('sluicePoolUpdate', { numberOfKeys: 2, lua: UPDATE })
    client.defineCommand('sluicePoolRemove', { numberOfKeys: 2, lua: REMOVE })
    client.defineCommand('sluicePoolRead', { numberOfKeys: 2, lua: READ })
    this.#client = client as RedisClient & PoolCommands
    // subscribed connections cannot run other commands: a second one, which queues its
    // SUBSCRIBE until connected and resubscribes by itself after a reconnect
    this.#subscriber = client.isCluster
      ? (client as Cluster).duplicate(undefined, { enableOfflineQueue: true, lazyConnect: true })
      : (client as Redis).duplicate({ enableOfflineQueue: true, lazyConnect: true })
    this.#subscriber.on('error', () => {})
    this.#subscriber.on('message', (_channel: string, message: string) => { this.#onMessage(message) })
    this.#subscriber.on('ready', () => { this.#sync('subscriber connected') })
    client.on('ready', () => { this.#sync('connected') })
  }

  start (): void {
    this.#subscriber.connect().then(() => this.#subscriber.subscribe(this.#channel)).catch(() => {})
    this.#poll = setInterval(() => { this.#checkVersion() }, this.#options.pollMs ?? 1000)
    this.#poll.unref()
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#poll)
    this.#subscriber.disconnect()
  }

  async add (spec: ServerSpec): Promise<{ server: Upstream, created: boolean }> {
    const origin = normaliseOrigin(spec.url)
    if (!origin.ok) throw new InvalidUpstreamError(spec.url, origin.message)
    const id = serverId(origin.origin)
    const local = this.#pool.get(id)
    if (local !== undefined && local.state === 'draining') return { server: local, created: false }
    const stored = toStored(origin.origin, spec)
    const version = await this.#command(async () => this.#client.sluicePoolAdd(this.#servers, this.#versionKey, this.#channel, id, JSON.stringify(stored)))
    if (version === 0) {
      // there already, maybe not here yet: read the pool so the answer shows it
      if (local === undefined) await this.#resync()
      const existing = this.#pool.get(id)
      if (existing !== undefined) return { server: existing, created: false }
    }
    return this.#pool.add(toSpec(stored))
  }

  async update (id: string, patch: ServerPatch): Promise<Upstream | undefined> {
    const json = await this.#command(async () => this.#client.sluicePoolUpdate(this.#servers, this.#versionKey, this.#channel, id,
      patch.weight === undefined ? '' : String(patch.weight), patch.enabled === undefined ? '' : patch.enabled ? '1' : '0'))
    if (json === null) return undefined
    const stored = JSON.parse(json) as StoredServer
    if (this.#pool.get(id) === undefined) this.#pool.add(toSpec(stored))
    return this.#pool.update(id, { weight: stored.weight, enabled: stored.enabled })
  }

  async remove (id: string): Promise<Upstream | undefined> {
    const version = await this.#command(async () => this.#client.sluicePoolRemove(this.#servers, this.#versionKey, this.#channel, id))
    const server = this.#pool.get(id)
    if (version === 0 && server === undefined) return undefined
    if (server !== undefined) this.#drain(id)
    return server
  }

  async #command<T> (run: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') throw new PoolUnavailableError()
    try {
      return await run()
    } catch (err) {
      throw new PoolUnavailableError({ cause: err })
    }
  }

  #onMessage (message: string): void {
    let change: Change
    try {
      change = JSON.parse(message) as Change
    } catch {
      return
    }
    if (change.v <= this.#version) return
    if (this.#version === -1 || change.v !== this.#version + 1) {
      // a message was missed (or we have not read the pool yet): the whole pool is the truth
      this.#sync(`version ${change.v} after ${this.#version}`)
      return
    }
    this.#version = change.v
    this.#apply(change.op, change.id, change.server)
  }

  #apply (op: Change['op'], id: string, stored: StoredServer | undefined): void {
    if (op === 'remove') {
      this.#drain(id)
      return
    }
    if (stored === undefined) return
    const local = this.#pool.get(id)
    if (local === undefined) this.#pool.add(toSpec(stored))
    else if (local.weight !== stored.weight || local.enabled !== stored.enabled) this.#pool.update(id, { weight: stored.weight, enabled: stored.enabled })
  }

  #drain (id: string): void {
    // re-added to the shared pool while it drained here (its add then found it still draining):
    // once it is gone, a resync brings it back
    this.#pool.drain(id, this.#options.drainTimeoutMs).then(() => { if (!this.#closed) this.#sync('a server drained') }, () => {})
  }

  /** Resyncs in the background; requests arriving meanwhile coalesce into one more pass. */
  #sync (why: string): void {
    if (this.#syncing !== undefined) {
      this.#syncAgain = true
      return
    }
    this.#syncing = this.#resync()
      .catch((err: Error) => this.#options.log.warn({ err: err.message, why }, 'shared pool: cannot read it from Redis'))
      .finally(() => {
        this.#syncing = undefined
        if (this.#syncAgain) {
          this.#syncAgain = false
          this.#sync(why)
        }
      })
  }

  /** Reads the whole pool and makes this instance's pool match it. */
  async #resync (): Promise<void> {
    if (this.#closed || this.#client.status !== 'ready') return
    if (!this.#seeded) {
      // UPSTREAMS adds what is missing, once per process: never re-adds what an admin removed later
      this.#seeded = true
      for (const seed of this.#options.seeds) await this.#seed(seed)
    }
    let [version, ...flat] = await this.#client.sluicePoolRead(this.#servers, this.#versionKey)
    if (Number(version) === 0 && this.#version > 0) {
      // Redis came back empty (restarted without persistence): the pool this instance holds is the
      // best copy left, so it is written back rather than drained away, in one transaction: another
      // instance reading the pool meanwhile sees it empty (and restores it too, a no-op) or whole,
      // never a part, whose missing servers it would drain for good
      this.#options.log.warn({ servers: this.#pool.size }, 'shared pool: Redis lost the pool; restoring it from this instance')
      const restore = this.#client.multi() as unknown as Transaction
      for (const server of this.#pool.list()) {
        const args = server.state === 'draining' ? undefined : this.#addArgs({ url: server.url, name: server.name, weight: server.weight, enabled: server.enabled })
        if (args !== undefined) restore.sluicePoolAdd(...args)
      }
      const error = (await restore.exec())?.find(([err]) => err !== null)?.[0]
      if (error != null) throw error
      ;[version, ...flat] = await this.#client.sluicePoolRead(this.#servers, this.#versionKey)
    }
    const stored = new Map<string, StoredServer>()
    for (let i = 1; i < flat.length; i += 2) {
      // keyed by the id its URL gives, whatever the hash field says: ids are derived, never trusted
      const server = JSON.parse(String(flat[i])) as StoredServer
      const origin = normaliseOrigin(server.url)
      if (origin.ok) stored.set(serverId(origin.origin), server)
    }
    for (const [id, server] of stored) this.#apply('add', id, server)
    for (const server of this.#pool.list()) {
      if (!stored.has(server.id) && server.state !== 'draining') this.#drain(server.id)
    }
    const before = this.#version
    this.#version = Number(version)
    if (before !== this.#version) this.#options.log.info({ version: this.#version, servers: stored.size }, 'shared pool: synchronised from Redis')
  }

  async #seed (seed: ServerSpec): Promise<void> {
    const args = this.#addArgs(seed)
    if (args !== undefined) await this.#client.sluicePoolAdd(...args)
  }

  /** The add script's arguments for `seed`; undefined for a URL that is not an upstream origin. */
  #addArgs (seed: ServerSpec): AddArgs | undefined {
    const origin = normaliseOrigin(seed.url)
    if (!origin.ok) return undefined
    return [this.#servers, this.#versionKey, this.#channel, serverId(origin.origin), JSON.stringify(toStored(origin.origin, seed))]
  }

  #checkVersion (): void {
    if (this.#client.status !== 'ready') return
    this.#client.get(this.#versionKey).then(value => {
      if (Number(value ?? 0) !== this.#version) this.#sync('version poll')
    }, () => {})
  }
}

function toStored (origin: string, spec: ServerSpec): StoredServer {
  return {
    url: origin,
    name: spec.name ?? new URL(origin).host,
    weight: spec.weight ?? 1,
    enabled: spec.enabled ?? true,
    addedAt: new Date().toISOString()
  }
}

function toSpec (stored: StoredServer): ServerSpec {
  return { url: stored.url, name: stored.name, weight: stored.weight, enabled: stored.enabled, addedAt: new Date(stored.addedAt) }
}

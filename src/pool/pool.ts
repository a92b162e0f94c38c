import { EventEmitter } from 'node:events'
import { normaliseOrigin, serverId } from './origin.js'
import { Upstream, type ServerState } from './upstream.js'
import { InvalidUpstreamError } from '../errors.js'

export interface ServerSpec {
  url: string
  weight?: number
  name?: string
  enabled?: boolean
  /** When it joined the pool (kept when the shared pool replays it on another instance). */
  addedAt?: Date
}

export interface ServerPatch {
  weight?: number
  enabled?: boolean
}

export interface PoolEvents {
  added: [server: Upstream]
  removed: [server: Upstream]
  updated: [server: Upstream]
  state: [server: Upstream, from: ServerState, reason: string]
}

export interface PoolOptions {
  /** State of a new server: `unknown` until its first active check, or `healthy` when checks are off. */
  initialState: 'unknown' | 'healthy'
}

/**
 * The set of upstream servers. Membership and state live here; the routable subset is published
 * as a new frozen array on every change (never emptied and refilled), so a request that holds the
 * old snapshot keeps a consistent view and per-server counters survive in the `Upstream` objects.
 */
export class Pool extends EventEmitter<PoolEvents> {
  readonly #byId = new Map<string, Upstream>()
  readonly #drains = new Map<string, { timer: NodeJS.Timeout, done: () => void }>()
  readonly #initialState: PoolOptions['initialState']
  #routable: readonly Upstream[] = Object.freeze([])

  constructor (options: PoolOptions) {
    super()
    this.#initialState = options.initialState
  }

  /** Healthy, enabled, non-draining servers: what the balancer may pick. */
  get routable (): readonly Upstream[] {
    return this.#routable
  }

  get size (): number {
    return this.#byId.size
  }

  list (): Upstream[] {
    return [...this.#byId.values()]
  }

  get (id: string): Upstream | undefined {
    return this.#byId.get(id)
  }

  /** Adds a server; adding one that is already there is harmless and returns the existing one. */
  add (spec: ServerSpec): { server: Upstream, created: boolean } {
    const result = normaliseOrigin(spec.url)
    if (!result.ok) throw new InvalidUpstreamError(spec.url, result.message)
    const id = serverId(result.origin)
    const existing = this.#byId.get(id)
    if (existing !== undefined) return { server: existing, created: false }
    const server = new Upstream(id, result.origin, spec.name ?? new URL(result.origin).host, spec.weight ?? 1, spec.enabled ?? true, spec.addedAt)
    server.state = this.#initialState
    this.#byId.set(id, server)
    this.#publish()
    this.emit('added', server)
    return { server, created: true }
  }

  update (id: string, patch: ServerPatch): Upstream | undefined {
    const server = this.#byId.get(id)
    if (server === undefined) return undefined
    if (patch.weight !== undefined) server.weight = patch.weight
    if (patch.enabled !== undefined) server.enabled = patch.enabled
    this.#publish()
    this.emit('updated', server)
    return server
  }

  setState (server: Upstream, state: ServerState, reason: string): void {
    const from = server.state
    // draining is terminal: health results must not make a leaving server routable again
    if (from === state || from === 'draining' || this.#byId.get(server.id) !== server) return
    server.state = state
    this.#publish()
    this.emit('state', server, from, reason)
  }

  /**
   * Stops routing new requests to the server, waits for its in-flight requests (at most
   * `timeoutMs`), then removes it. Resolves when it is gone; repeating it is harmless.
   */
  drain (id: string, timeoutMs: number): Promise<Upstream | undefined> {
    const server = this.#byId.get(id)
    if (server === undefined) return Promise.resolve(undefined)
    return new Promise(resolve => {
      const pending = this.#drains.get(id)
      if (pending !== undefined) {
        const previous = pending.done
        pending.done = () => { previous(); resolve(server) }
        return
      }
      this.setState(server, 'draining', 'removed')
      const done = (): void => resolve(server)
      const timer = setTimeout(() => this.remove(id), timeoutMs)
      timer.unref()
      this.#drains.set(id, { timer, done })
      if (server.inFlight === 0) this.remove(id)
    })
  }

  /** Removes the server at once; removing an unknown id is harmless. */
  remove (id: string): Upstream | undefined {
    const server = this.#byId.get(id)
    if (server === undefined) return undefined
    this.#byId.delete(id)
    this.#publish()
    this.emit('removed', server)
    const drain = this.#drains.get(id)
    if (drain !== undefined) {
      this.#drains.delete(id)
      clearTimeout(drain.timer)
      drain.done()
    }
    return server
  }

  /** Marks one attempt as started on the server. */
  acquire (server: Upstream): void {
    server.inFlight++
    server.totalRequests++
  }

  /** Marks one attempt as finished; completes a drain when the last one ends. */
  release (server: Upstream): void {
    server.inFlight--
    // only if it is still this object: after a drain timeout the same URL may have been added again
    if (server.inFlight === 0 && server.state === 'draining' && this.#byId.get(server.id) === server) this.remove(server.id)
  }

  close (): void {
    for (const id of [...this.#drains.keys()]) this.remove(id)
  }

  #publish (): void {
    const routable: Upstream[] = []
    for (const server of this.#byId.values()) {
      if (server.routable) routable.push(server)
    }
    this.#routable = Object.freeze(routable)
  }
}

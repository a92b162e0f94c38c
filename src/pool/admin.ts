import type { Pool, ServerSpec, ServerPatch } from './pool.js'
import type { Upstream } from './upstream.js'

/**
 * How the admin API changes the pool. In memory it is the local pool; with Redis it is the shared
 * pool (stored, published to every instance). `add` returns `created: false` for a server already
 * there (the route answers 409); `update`/`remove` return undefined for an unknown id (404).
 * `remove` starts a drain and resolves at once with the server in state `draining`.
 */
export interface PoolAdmin {
  add (spec: ServerSpec): Promise<{ server: Upstream, created: boolean }>
  update (id: string, patch: ServerPatch): Promise<Upstream | undefined>
  remove (id: string): Promise<Upstream | undefined>
}

/** The pool of this process only (no Redis): changes apply here and nowhere else. */
export class LocalPoolAdmin implements PoolAdmin {
  readonly #pool: Pool
  readonly #drainTimeoutMs: number

  constructor (pool: Pool, drainTimeoutMs: number) {
    this.#pool = pool
    this.#drainTimeoutMs = drainTimeoutMs
  }

  async add (spec: ServerSpec): Promise<{ server: Upstream, created: boolean }> {
    return this.#pool.add(spec)
  }

  async update (id: string, patch: ServerPatch): Promise<Upstream | undefined> {
    return this.#pool.update(id, patch)
  }

  async remove (id: string): Promise<Upstream | undefined> {
    const server = this.#pool.get(id)
    if (server === undefined) return undefined
    this.#pool.drain(id, this.#drainTimeoutMs).catch(() => {})
    return server
  }
}

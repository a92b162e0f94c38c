import { EventEmitter } from 'node:events'
import { Agent, request } from 'undici'
import type { Pool } from '../pool/pool.js'
import type { CheckResult, Upstream } from '../pool/upstream.js'

export interface ActiveOptions {
  path: string
  intervalMs: number
  timeoutMs: number
  healthyThreshold: number
  unhealthyThreshold: number
}

export interface ActiveEvents {
  /** Every check whose result was applied (not those of a server removed meanwhile). */
  checked: [server: Upstream, result: CheckResult]
}

/**
 * Active health checks: GET `path` on every server, every `intervalMs`; 2xx/3xx passes.
 * A new server is checked at once and its first result decides its state; after that it takes
 * `healthyThreshold` passes or `unhealthyThreshold` failures in a row to flip.
 */
export class ActiveHealthChecker extends EventEmitter<ActiveEvents> {
  readonly #pool: Pool
  readonly #options: ActiveOptions
  readonly #timers = new Map<string, NodeJS.Timeout>()
  // its own small pool, so checks never queue behind proxied traffic
  readonly #agent = new Agent({ connections: 1, pipelining: 1 })
  #started = false
  #closed = false

  constructor (pool: Pool, options: ActiveOptions) {
    super()
    this.#pool = pool
    this.#options = options
    pool.on('added', server => { if (this.#started) this.#run(server) })
    pool.on('removed', server => {
      clearTimeout(this.#timers.get(server.id))
      this.#timers.delete(server.id)
    })
  }

  /** Checks every server already in the pool now (those added later are checked when added). */
  start (): void {
    if (this.#started) return
    this.#started = true
    for (const server of this.#pool.list()) this.#run(server)
  }

  /** One check of one server, applied to its state; resolves when done. */
  async check (server: Upstream): Promise<boolean> {
    const started = performance.now()
    let status: number | null = null
    let ok = false
    let error: string | undefined
    try {
      const response = await request(server.url + this.#options.path, {
        dispatcher: this.#agent,
        headersTimeout: this.#options.timeoutMs,
        bodyTimeout: this.#options.timeoutMs,
        signal: AbortSignal.timeout(this.#options.timeoutMs),
        headers: { 'user-agent': 'sluice-health-check' }
      })
      await response.body.dump()
      status = response.statusCode
      ok = status >= 200 && status < 400
    } catch (err) {
      error = (err as { code?: string }).code ?? (err as Error).name
    }
    if (this.#closed || this.#pool.get(server.id) !== server) return ok
    const result: CheckResult = { at: new Date().toISOString(), ok, status, latencyMs: Math.round(performance.now() - started) }
    server.lastCheck = result
    this.#apply(server, ok, status === null ? `check failed: ${error ?? 'error'}` : `check answered ${status}`)
    this.emit('checked', server, result)
    return ok
  }

  close (): void {
    this.#closed = true
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
    this.#agent.destroy().catch(() => {})
  }

  #run (server: Upstream): void {
    if (this.#closed) return
    this.check(server).finally(() => {
      if (this.#closed || this.#pool.get(server.id) !== server) return
      const timer = setTimeout(() => this.#run(server), this.#options.intervalMs)
      timer.unref()
      this.#timers.set(server.id, timer)
    })
  }

  #apply (server: Upstream, ok: boolean, reason: string): void {
    if (ok) {
      server.checkFailures = 0
      server.checkPasses++
      if (server.state === 'unknown' || (server.state === 'unhealthy' && server.checkPasses >= this.#options.healthyThreshold)) {
        server.passiveFailures = 0
        this.#pool.setState(server, 'healthy', reason)
      }
    } else {
      server.checkPasses = 0
      server.checkFailures++
      if (server.state === 'unknown' || (server.state === 'healthy' && server.checkFailures >= this.#options.unhealthyThreshold)) {
        this.#pool.setState(server, 'unhealthy', reason)
      }
    }
  }
}

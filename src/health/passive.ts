import type { Pool } from '../pool/pool.js'
import type { Upstream } from '../pool/upstream.js'

export interface PassiveOptions {
  /** Consecutive failures that eject a server; 0 turns passive ejection off. */
  threshold: number
  /** With active checks off, how long an ejected server rests before it is tried again. */
  ejectionTimeMs: number
  /** Whether active checks run (then they, not a timer, bring an ejected server back). */
  activeChecks: boolean
}

/**
 * Ejects a server after `threshold` consecutive failed attempts (connect errors, timeouts,
 * 502/503/504), as Envoy's outlier detection does. A success resets the streak.
 */
export class PassiveHealth {
  readonly #pool: Pool
  readonly #options: PassiveOptions
  readonly #timers = new Map<string, NodeJS.Timeout>()

  constructor (pool: Pool, options: PassiveOptions) {
    this.#pool = pool
    this.#options = options
    pool.on('removed', server => this.#clear(server.id))
  }

  success (server: Upstream): void {
    server.passiveFailures = 0
  }

  failure (server: Upstream): void {
    server.failedRequests++
    const { threshold } = this.#options
    if (threshold === 0 || ++server.passiveFailures < threshold || server.state !== 'healthy') return
    server.checkPasses = 0
    this.#pool.setState(server, 'unhealthy', `${server.passiveFailures} consecutive failed requests`)
    if (this.#options.activeChecks) return
    const timer = setTimeout(() => {
      this.#timers.delete(server.id)
      server.passiveFailures = 0
      this.#pool.setState(server, 'healthy', 'ejection time over')
    }, this.#options.ejectionTimeMs)
    timer.unref()
    this.#timers.set(server.id, timer)
  }

  close (): void {
    for (const id of [...this.#timers.keys()]) this.#clear(id)
  }

  #clear (id: string): void {
    clearTimeout(this.#timers.get(id))
    this.#timers.delete(id)
  }
}

import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

/** nginx's smooth weighted round robin: spreads a heavy server's turns instead of bunching them. */
class WeightedRoundRobin implements Strategy {
  readonly name = 'weighted-round-robin' as const
  // keyed by id, not by position, so a server's progress survives a new snapshot array
  readonly #current = new Map<string, number>()
  #snapshot: readonly Upstream[] | undefined

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    if (servers !== this.#snapshot) this.#prune(servers)
    let best: Upstream | undefined
    let bestCurrent = 0
    let total = 0
    for (let i = 0; i < servers.length; i++) {
      const server = servers[i] as Upstream
      if (ctx.tried.includes(server)) continue
      const current = (this.#current.get(server.id) ?? 0) + server.weight
      this.#current.set(server.id, current)
      total += server.weight
      if (best === undefined || current > bestCurrent) {
        best = server
        bestCurrent = current
      }
    }
    if (best !== undefined) this.#current.set(best.id, bestCurrent - total)
    return best
  }

  // only on a membership change, so the Set is off the hot path; keeps the map bounded
  #prune (servers: readonly Upstream[]): void {
    this.#snapshot = servers
    const live = new Set<string>()
    for (const server of servers) live.add(server.id)
    for (const id of this.#current.keys()) {
      if (!live.has(id)) this.#current.delete(id)
    }
  }
}

export function createWeightedRoundRobin (_options?: StrategyOptions): Strategy {
  return new WeightedRoundRobin()
}

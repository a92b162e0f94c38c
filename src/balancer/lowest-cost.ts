import type { Upstream } from '../pool/upstream.js'
import type { BalancerName, PickContext, Strategy } from './strategy.js'

/**
 * Picks the server with the lowest cost. Scanning starts just past the last pick, so equally
 * cheap servers take turns instead of the first one taking every request while the load is low.
 */
export abstract class LowestCost implements Strategy {
  abstract readonly name: BalancerName
  #offset = 0

  /** The cost of sending the next request to `server`; `now` is `clock()` read once per pick. */
  protected abstract cost (server: Upstream, now: number): number

  protected clock (): number {
    return 0
  }

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    const n = servers.length
    if (n === 0) return undefined
    const now = this.clock()
    const start = this.#offset % n
    let best: Upstream | undefined
    let bestIdx = 0
    let bestCost = 0
    for (let i = 0; i < n; i++) {
      const idx = (start + i) % n
      const server = servers[idx] as Upstream
      if (ctx.tried.includes(server)) continue
      const cost = this.cost(server, now)
      if (best === undefined || cost < bestCost) {
        best = server
        bestIdx = idx
        bestCost = cost
      }
    }
    if (best !== undefined) this.#offset = bestIdx + 1
    return best
  }
}

import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

class LeastConnections implements Strategy {
  readonly name = 'least-connections' as const
  // scanning from a moving start makes equally loaded servers take turns instead of the first one
  // taking every request while the load is low
  #offset = 0

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    const n = servers.length
    if (n === 0) return undefined
    const start = this.#offset % n
    let best: Upstream | undefined
    let bestIdx = 0
    let bestCost = 0
    for (let i = 0; i < n; i++) {
      const idx = (start + i) % n
      const server = servers[idx] as Upstream
      if (ctx.tried.includes(server)) continue
      const cost = server.weight > 0 ? server.inFlight / server.weight : Infinity
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

export function createLeastConnections (_options?: StrategyOptions): Strategy {
  return new LeastConnections()
}

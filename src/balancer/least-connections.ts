import type { Upstream } from '../pool/upstream.js'
import type { Strategy, StrategyOptions } from './strategy.js'
import { LowestCost } from './lowest-cost.js'

/** Fewest in-flight requests per unit of weight; ties take turns. */
class LeastConnections extends LowestCost {
  readonly name = 'least-connections' as const

  protected cost (server: Upstream): number {
    return server.weight > 0 ? server.inFlight / server.weight : Infinity
  }
}

export function createLeastConnections (_options?: StrategyOptions): Strategy {
  return new LeastConnections()
}

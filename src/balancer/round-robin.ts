import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

class RoundRobin implements Strategy {
  readonly name = 'round-robin' as const
  #next = 0

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    const n = servers.length
    if (n === 0) return undefined
    // modulo at read time: the snapshot may have shrunk since the last pick
    const start = this.#next % n
    for (let i = 0; i < n; i++) {
      const idx = (start + i) % n
      const server = servers[idx] as Upstream
      if (ctx.tried.includes(server)) continue
      this.#next = idx + 1
      return server
    }
    return undefined
  }
}

export function createRoundRobin (_options?: StrategyOptions): Strategy {
  return new RoundRobin()
}

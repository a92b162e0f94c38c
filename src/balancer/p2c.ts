import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

/** The n-th server (0-based) that is not in `tried`, without building a filtered copy. */
function nth (servers: readonly Upstream[], tried: readonly Upstream[], n: number): Upstream {
  if (tried.length === 0) return servers[n] as Upstream
  let i = 0
  // the caller guarantees n is in range, so running off the end means the target is the last one
  for (; i < servers.length - 1; i++) {
    if (tried.includes(servers[i] as Upstream)) continue
    if (n-- === 0) break
  }
  return servers[i] as Upstream
}

/** Uniform integer in [0, n); clamped because an injected source may return exactly 1. */
function draw (random: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n))
}

/** Power of two choices: near least-loaded balancing with O(1) work and no shared herd on one server. */
class PowerOfTwoChoices implements Strategy {
  readonly name = 'p2c' as const
  readonly #random: () => number

  constructor (random: () => number) {
    this.#random = random
  }

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    let candidates = servers.length
    if (ctx.tried.length !== 0) {
      for (let i = 0; i < servers.length; i++) {
        if (ctx.tried.includes(servers[i] as Upstream)) candidates--
      }
    }
    if (candidates <= 0) return undefined
    if (candidates === 1) return nth(servers, ctx.tried, 0)
    const i = draw(this.#random, candidates)
    // draw from the remaining candidates - 1 slots and shift past i: distinct without retry loops
    let j = draw(this.#random, candidates - 1)
    if (j >= i) j++
    const first = nth(servers, ctx.tried, i)
    const second = nth(servers, ctx.tried, j)
    return second.inFlight < first.inFlight ? second : first
  }
}

export function createP2c (options?: StrategyOptions): Strategy {
  return new PowerOfTwoChoices(options?.random ?? Math.random)
}

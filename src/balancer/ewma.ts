import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

/** Decay time constant: how long a latency spike keeps a server penalised. */
export const TAU_MS = 10_000

/** exp(-elapsed / TAU); a clock step backwards counts as no time passed. */
function decay (elapsedMs: number): number {
  return elapsedMs > 0 ? Math.exp(-elapsedMs / TAU_MS) : 1
}

/**
 * Peak-EWMA (Finagle/Linkerd): a latency above the average replaces it at once, so a server that
 * turns slow is shed immediately, and only recovers gradually. The cost grows with the queue
 * (inFlight + 1) so a fast server is not swamped.
 */
class PeakEwma implements Strategy {
  readonly name = 'ewma' as const
  readonly #now: () => number
  #offset = 0

  constructor (now: () => number) {
    this.#now = now
  }

  observe (server: Upstream, latencyMs: number, now: number): void {
    if (server.ewmaMs === 0 || latencyMs > server.ewmaMs) {
      server.ewmaMs = latencyMs
    } else {
      const w = decay(now - server.ewmaStamp)
      server.ewmaMs = server.ewmaMs * w + latencyMs * (1 - w)
    }
    server.ewmaStamp = now
  }

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    const n = servers.length
    if (n === 0) return undefined
    const now = this.#now()
    const start = this.#offset % n
    let best: Upstream | undefined
    let bestIdx = 0
    let bestCost = 0
    for (let i = 0; i < n; i++) {
      const idx = (start + i) % n
      const server = servers[idx] as Upstream
      if (ctx.tried.includes(server)) continue
      // decayed at read time: a server that was shed gets no new observations, so without this
      // its old peak would exclude it forever; as it fades toward 0 the server gets probed again
      const cost = server.ewmaMs === 0
        ? 0
        : server.ewmaMs * decay(now - server.ewmaStamp) * (server.inFlight + 1)
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

export function createEwma (options?: StrategyOptions): Strategy {
  return new PeakEwma(options?.now ?? (() => performance.now()))
}

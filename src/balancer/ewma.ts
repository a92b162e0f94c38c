import type { Upstream } from '../pool/upstream.js'
import type { Strategy, StrategyOptions } from './strategy.js'
import { LowestCost } from './lowest-cost.js'

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
class PeakEwma extends LowestCost implements Strategy {
  readonly name = 'ewma' as const
  readonly #now: () => number

  constructor (now: () => number) {
    super()
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

  protected override clock (): number {
    return this.#now()
  }

  protected cost (server: Upstream, now: number): number {
    // decayed at read time: a server that was shed gets no new observations, so without this
    // its old peak would exclude it forever; as it fades toward 0 the server gets probed again
    return server.ewmaMs === 0 ? 0 : server.ewmaMs * decay(now - server.ewmaStamp) * (server.inFlight + 1)
  }
}

export function createEwma (options?: StrategyOptions): Strategy {
  return new PeakEwma(options?.now ?? (() => performance.now()))
}

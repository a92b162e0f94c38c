import { createEwma } from './ewma.js'
import { createIpHash } from './ip-hash.js'
import { createLeastConnections } from './least-connections.js'
import { createP2c } from './p2c.js'
import { createRoundRobin } from './round-robin.js'
import type { BalancerName, Strategy, StrategyOptions } from './strategy.js'
import { createWeightedRoundRobin } from './weighted-round-robin.js'

export { BALANCERS } from './strategy.js'
export type { BalancerName, PickContext, Strategy, StrategyOptions } from './strategy.js'

const FACTORIES: Record<BalancerName, (options?: StrategyOptions) => Strategy> = {
  'round-robin': createRoundRobin,
  'weighted-round-robin': createWeightedRoundRobin,
  'least-connections': createLeastConnections,
  'ip-hash': createIpHash,
  p2c: createP2c,
  ewma: createEwma
}

export function createStrategy (name: BalancerName, options?: StrategyOptions): Strategy {
  return FACTORIES[name](options)
}

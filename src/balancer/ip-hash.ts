import { createHash } from 'node:crypto'
import type { Upstream } from '../pool/upstream.js'
import type { PickContext, Strategy, StrategyOptions } from './strategy.js'

/** md5 digests per unit of weight; each digest gives 4 points, so 160 points per server (ketama). */
const DIGESTS_PER_WEIGHT = 40
/** Weights above this get no more points: keeps the ring (and its build time) bounded at weight 1000. */
const MAX_WEIGHT_FACTOR = 10

interface Ring {
  points: Uint32Array
  owners: Upstream[]
}

/**
 * Depends only on ids and weights, never on array order or process state, so every gateway
 * instance sends a client to the same server, and a membership change only moves the keys whose
 * arc changed hands.
 */
function buildRing (servers: readonly Upstream[]): Ring {
  const byId = servers.slice().sort((a, b) => a.id < b.id ? -1 : 1)
  const entries: Array<{ point: number, owner: Upstream }> = []
  for (const server of byId) {
    const factor = Math.min(MAX_WEIGHT_FACTOR, Math.max(1, Math.floor(server.weight)))
    for (let i = 0; i < DIGESTS_PER_WEIGHT * factor; i++) {
      const digest = createHash('md5').update(`${server.id}-${i}`).digest()
      for (let k = 0; k < 4; k++) entries.push({ point: digest.readUInt32LE(k * 4), owner: server })
    }
  }
  // a stable sort over id-ordered input breaks point collisions by id, not by snapshot order
  entries.sort((a, b) => a.point - b.point)
  const ring: Ring = { points: new Uint32Array(entries.length), owners: new Array<Upstream>(entries.length) }
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as { point: number, owner: Upstream }
    ring.points[i] = entry.point
    ring.owners[i] = entry.owner
  }
  return ring
}

/** FNV-1a over UTF-16 code units plus murmur3's finaliser: cheap, allocation-free, well mixed. */
export function hashKey (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Index of the first point >= hash, wrapping to 0 past the last point. */
function firstAtOrAfter (points: Uint32Array, hash: number): number {
  let lo = 0
  let hi = points.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((points[mid] as number) < hash) lo = mid + 1
    else hi = mid
  }
  return lo === points.length ? 0 : lo
}

class IpHash implements Strategy {
  readonly name = 'ip-hash' as const
  // weak: a replaced snapshot takes its ring with it
  readonly #rings = new WeakMap<readonly Upstream[], Ring>()

  pick (servers: readonly Upstream[], ctx: PickContext): Upstream | undefined {
    if (servers.length === 0) return undefined
    let ring = this.#rings.get(servers)
    if (ring === undefined) {
      ring = buildRing(servers)
      this.#rings.set(servers, ring)
    }
    const { points, owners } = ring
    const start = firstAtOrAfter(points, hashKey(ctx.key))
    // walking on clockwise sends a retry where the key would go without the tried server; the
    // full walk only happens when every server was tried, which needs a pool no bigger than the retries
    for (let i = 0; i < points.length; i++) {
      const owner = owners[(start + i) % points.length] as Upstream
      if (!ctx.tried.includes(owner)) return owner
    }
    return undefined
  }
}

export function createIpHash (_options?: StrategyOptions): Strategy {
  return new IpHash()
}

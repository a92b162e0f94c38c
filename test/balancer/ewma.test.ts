import t from 'tap'
import { createEwma, TAU_MS } from '../../src/balancer/ewma.js'
import type { Strategy } from '../../src/balancer/strategy.js'
import { Upstream } from '../../src/pool/upstream.js'

function server (id: string, ewmaMs = 0, inFlight = 0): Upstream {
  const s = new Upstream(id, `http://${id}.test:3000`, id, 1, true)
  s.state = 'healthy'
  s.ewmaMs = ewmaMs
  s.inFlight = inFlight
  return s
}

function observe (strategy: Strategy, s: Upstream, latencyMs: number, now: number): void {
  if (strategy.observe === undefined) throw new Error('ewma must implement observe')
  strategy.observe(s, latencyMs, now)
}

function picks (strategy: Strategy, list: readonly Upstream[], n: number, tried: readonly Upstream[] = []): Array<string | undefined> {
  const out: Array<string | undefined> = []
  for (let i = 0; i < n; i++) out.push(strategy.pick(list, { key: '10.0.0.1', tried })?.id)
  return out
}

const E1 = Math.exp(-1)

t.test('observe: peak then decay', async t => {
  t.equal(TAU_MS, 10_000)
  const rows = [
    { name: 'first observation is taken as is', samples: [[100, 0]], expect: 100 },
    { name: 'a higher latency replaces the average', samples: [[100, 0], [200, 5000]], expect: 200 },
    { name: 'a lower one decays in over TAU', samples: [[100, 0], [50, 10_000]], expect: 100 * E1 + 50 * (1 - E1) },
    { name: 'no time passed: the peak holds', samples: [[100, 0], [50, 0]], expect: 100 },
    { name: 'long after: the new sample dominates', samples: [[100, 0], [50, 1_000_000]], expect: 50 },
    { name: 'chain', samples: [[100, 1000], [50, 11_000], [10, 21_000]], expect: (100 * E1 + 50 * (1 - E1)) * E1 + 10 * (1 - E1) }
  ]
  for (const row of rows) {
    const s = server('a')
    const ewma = createEwma({ now: () => 0 })
    for (const [latency, now] of row.samples) observe(ewma, s, latency as number, now as number)
    t.ok(Math.abs(s.ewmaMs - row.expect) < 1e-9, `${row.name}: ${s.ewmaMs} ≈ ${row.expect}`)
    t.equal(s.ewmaStamp, row.samples.at(-1)?.[1], `${row.name}: stamp`)
  }
})

t.test('pick: lowest ewma × (inFlight + 1)', async t => {
  const rows = [
    { name: 'the fast server wins', ewma: [500, 50], inFlight: [0, 0], picks: 3, expect: ['b', 'b', 'b'] },
    { name: 'an unobserved server is tried first', ewma: [10, 0, 20], inFlight: [0, 0, 0], picks: 2, expect: ['b', 'b'] },
    { name: 'queue depth counts (50×21 > 500×1)', ewma: [50, 500], inFlight: [20, 0], picks: 2, expect: ['b', 'b'] },
    { name: 'queue depth counts (50×5 < 500×1)', ewma: [50, 500], inFlight: [4, 0], picks: 2, expect: ['a', 'a'] },
    { name: 'ties rotate', ewma: [0, 0, 0], inFlight: [0, 0, 0], picks: 7, expect: ['a', 'b', 'c', 'a', 'b', 'c', 'a'] },
    { name: 'unobserved ties rotate, observed ones wait', ewma: [0, 30, 0], inFlight: [0, 0, 3], picks: 4, expect: ['a', 'c', 'a', 'c'] }
  ]
  for (const row of rows) {
    const list = row.ewma.map((e, i) => server('abc'[i] as string, e, row.inFlight[i]))
    t.same(picks(createEwma({ now: () => 0 }), list, row.picks), row.expect, row.name)
  }
})

t.test('a slow server is avoided, then probed again once its peak decays', async t => {
  let now = 0
  const ewma = createEwma({ now: () => now })
  const [a, b] = [server('a'), server('b')]
  observe(ewma, a, 1000, 0)
  // b keeps answering other requests in 50 ms; a gets none, so only the read-time decay of
  // 1000·e^(-t/TAU) can bring it back: under 50 between t = 29 s and 30 s
  const seen: string[] = []
  for (now = 0; now <= 30_000; now += 1000) {
    observe(ewma, b, 50, now)
    seen.push((ewma.pick([a, b], { key: 'k', tried: [] }) as Upstream).id)
  }
  t.same(seen, [...Array<string>(30).fill('b'), 'a'])
})

t.test('a retry skips tried servers', async t => {
  const [a, b, c] = [server('a', 10), server('b', 20), server('c', 30)]
  const ewma = createEwma({ now: () => 0 })
  t.equal(ewma.pick([a, b, c], { key: 'k', tried: [a] }), b)
  t.equal(ewma.pick([a, b, c], { key: 'k', tried: [b, a] }), c)
  t.equal(ewma.pick([a, b, c], { key: 'k', tried: [a, b, c] }), undefined, 'all tried')
})

t.test('empty list', async t => {
  t.equal(createEwma({ now: () => 0 }).pick([], { key: 'k', tried: [] }), undefined)
})

t.test('a changed snapshot keeps working', async t => {
  const ewma = createEwma({ now: () => 0 })
  const [a, b, c] = [server('a', 10), server('b', 20), server('c', 30)]
  t.same(picks(ewma, [a, b, c], 1), ['a'])
  t.same(picks(ewma, [b, c], 1), ['b'], 'a removed')
  const d = server('d')
  t.same(picks(ewma, [b, c, d], 2), ['d', 'd'], 'd added unobserved: tried first')
  observe(ewma, d, 100, 0)
  t.same(picks(ewma, [b, c, d], 1), ['b'], 'd observed slow: back to b')
})

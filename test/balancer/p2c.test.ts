import t from 'tap'
import { createP2c } from '../../src/balancer/p2c.js'
import type { Strategy } from '../../src/balancer/strategy.js'
import { Upstream } from '../../src/pool/upstream.js'

function server (id: string, inFlight = 0): Upstream {
  const s = new Upstream(id, `http://${id}.test:3000`, id, 1, true)
  s.state = 'healthy'
  s.inFlight = inFlight
  return s
}

function servers (inFlight: number[]): Upstream[] {
  return inFlight.map((n, i) => server('abcdefgh'[i] as string, n))
}

/** A `random` that replays `values` in a loop. */
function sequence (values: number[]): () => number {
  let i = 0
  return () => values[i++ % values.length] as number
}

function picks (strategy: Strategy, list: readonly Upstream[], n: number, tried: readonly Upstream[] = []): Array<string | undefined> {
  const out: Array<string | undefined> = []
  for (let i = 0; i < n; i++) out.push(strategy.pick(list, { key: '10.0.0.1', tried })?.id)
  return out
}

t.test('the less loaded of two draws', async t => {
  const rows = [
    // a vs c, b vs d, d vs a
    { name: 'fewer in-flight wins', inFlight: [3, 0, 2, 1], random: [0, 0.5, 0.3, 0.9, 0.99, 0], picks: 3, expect: ['c', 'b', 'd'] },
    { name: 'tie: the first drawn', inFlight: [1, 1, 1, 1], random: [0.5, 0, 0, 0.9], picks: 2, expect: ['c', 'a'] },
    // the second draw skips the first: with random 0 that is a vs b, never a vs a
    { name: 'draws are distinct (low)', inFlight: [5, 0], random: [0], picks: 2, expect: ['b', 'b'] },
    { name: 'draws are distinct (high)', inFlight: [0, 5], random: [0.999], picks: 2, expect: ['a', 'a'] },
    // draws become c and b instead of index 3, which does not exist
    { name: 'random() = 1 is clamped', inFlight: [2, 1, 0], random: [1], picks: 1, expect: ['c'] },
    { name: 'single server', inFlight: [7], random: [0.5], picks: 2, expect: ['a', 'a'] }
  ]
  for (const row of rows) {
    const p2c = createP2c({ random: sequence(row.random) })
    t.same(picks(p2c, servers(row.inFlight), row.picks), row.expect, row.name)
  }
})

t.test('the busiest server is never picked with real randomness', async t => {
  const list = servers([0, 1, 2])
  const p2c = createP2c()
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 }
  for (let i = 0; i < 3000; i++) {
    const id = p2c.pick(list, { key: 'k', tried: [] })?.id as string
    counts[id] = (counts[id] ?? 0) + 1
  }
  t.equal(counts.c, 0, 'c loses every pair it is in')
  // a is in 2 of the 3 pairs
  t.ok((counts.a ?? 0) > 1700 && (counts.a ?? 0) < 2300, `a won ~2/3 (${counts.a})`)
})

t.test('a retry skips tried servers', async t => {
  const list = servers([0, 3, 2, 1])
  const [a, b, c, d] = list as [Upstream, Upstream, Upstream, Upstream]
  // candidates b,c,d: draws b then the third (d)
  t.same(picks(createP2c({ random: sequence([0, 0.99]) }), list, 1, [a]), ['d'])
  const never = (): number => { throw new Error('random must not be drawn for one candidate') }
  t.equal(createP2c({ random: never }).pick(list, { key: 'k', tried: [a, b, c] }), d, 'one candidate left')
  t.equal(createP2c({ random: never }).pick(list, { key: 'k', tried: [d, c, b, a] }), undefined, 'all tried')
  // with random 0 the draws are the first two candidates, whatever is tried
  for (const tried of [[a], [b], [a, c]]) {
    const got = createP2c({ random: sequence([0]) }).pick(list, { key: 'k', tried })
    t.ok(got !== undefined && !tried.includes(got), `never returns a tried server (${tried.map(s => s.id).join()})`)
  }
})

t.test('empty list', async t => {
  t.equal(createP2c({ random: sequence([0]) }).pick([], { key: 'k', tried: [] }), undefined)
})

t.test('a changed snapshot keeps working', async t => {
  const list = servers([3, 0, 2, 1])
  const [a, , c, d] = list as [Upstream, Upstream, Upstream, Upstream]
  const p2c = createP2c({ random: sequence([0, 0]) })
  t.same(picks(p2c, list, 1), ['b'], 'a vs b')
  t.same(picks(p2c, [a, c, d], 1), ['c'], 'b removed: a vs c')
  const e = server('e', 0)
  t.same(picks(p2c, [e, a, c, d], 1), ['e'], 'e added: e vs a')
})

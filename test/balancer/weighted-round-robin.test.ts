import t from 'tap'
import type { Strategy } from '../../src/balancer/strategy.js'
import { createWeightedRoundRobin } from '../../src/balancer/weighted-round-robin.js'
import { Upstream } from '../../src/pool/upstream.js'

function server (id: string, weight = 1): Upstream {
  const s = new Upstream(id, `http://${id}.test:3000`, id, weight, true)
  s.state = 'healthy'
  return s
}

function picks (strategy: Strategy, servers: readonly Upstream[], n: number, tried: readonly Upstream[] = []): Array<string | undefined> {
  const out: Array<string | undefined> = []
  for (let i = 0; i < n; i++) out.push(strategy.pick(servers, { key: '10.0.0.1', tried })?.id)
  return out
}

t.test('smooth weighted sequence (nginx)', async t => {
  const rows = [
    { name: 'weights 5,1,1', weights: [5, 1, 1], picks: 14, expect: ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a'] },
    { name: 'weights 1,1,1', weights: [1, 1, 1], picks: 6, expect: ['a', 'b', 'c', 'a', 'b', 'c'] },
    { name: 'weights 3,2', weights: [3, 2], picks: 10, expect: ['a', 'b', 'a', 'b', 'a', 'a', 'b', 'a', 'b', 'a'] },
    { name: 'weights 4,2,1', weights: [4, 2, 1], picks: 7, expect: ['a', 'b', 'a', 'c', 'a', 'b', 'a'] },
    { name: 'single server', weights: [3], picks: 2, expect: ['a', 'a'] }
  ]
  for (const row of rows) {
    const servers = row.weights.map((w, i) => server('abc'[i] as string, w))
    t.same(picks(createWeightedRoundRobin(), servers, row.picks), row.expect, row.name)
  }
})

t.test('a retry skips tried servers', async t => {
  const [a, b, c] = [server('a', 5), server('b'), server('c')]
  const servers = [a, b, c]
  const wrr = createWeightedRoundRobin()
  t.equal(wrr.pick(servers, { key: 'k', tried: [a] }), b, 'a tried: b (first of the tied rest)')
  // a was not credited while it was excluded, b paid for its pick against the reduced total (2)
  t.same(picks(wrr, servers, 6), ['a', 'a', 'c', 'a', 'a', 'b'])
  t.equal(wrr.pick(servers, { key: 'k', tried: [c, b, a] }), undefined, 'all tried')
})

t.test('empty list', async t => {
  t.equal(createWeightedRoundRobin().pick([], { key: 'k', tried: [] }), undefined)
})

t.test('counters survive a new snapshot array', async t => {
  const [a, b, c] = [server('a', 5), server('b'), server('c')]
  const wrr = createWeightedRoundRobin()
  t.same(picks(wrr, [a, b, c], 3), ['a', 'a', 'b'])
  // a reset would restart the cycle with a,a,b,a
  t.same(picks(wrr, [a, b, c], 4), ['a', 'c', 'a', 'a'], 'same members, new array: the cycle continues')
})

t.test('a removed server is forgotten, survivors keep their counters', async t => {
  const [a, b, c] = [server('a', 5), server('b'), server('c')]
  const wrr = createWeightedRoundRobin()
  t.same(picks(wrr, [a, b, c], 3), ['a', 'a', 'b'])
  // currents now a=1, b=-4, c=3; from zero the pair would give a,a,a,b,a,a
  t.same(picks(wrr, [a, b], 6), ['a', 'a', 'a', 'a', 'a', 'b'], 'c removed: a and b carry on')
  // a stale c=3 would jump the queue: a,c,a,...
  t.same(picks(wrr, [a, b, c], 7), ['a', 'a', 'c', 'a', 'a', 'a', 'b'], 'c re-added: starts from zero')
})

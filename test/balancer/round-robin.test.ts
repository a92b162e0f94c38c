import t from 'tap'
import { createRoundRobin } from '../../src/balancer/round-robin.js'
import type { Strategy } from '../../src/balancer/strategy.js'
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

t.test('rotation', async t => {
  const rows = [
    { name: 'one server', ids: ['a'], picks: 3, expect: ['a', 'a', 'a'] },
    { name: 'three servers', ids: ['a', 'b', 'c'], picks: 7, expect: ['a', 'b', 'c', 'a', 'b', 'c', 'a'] },
    { name: 'weights are ignored', ids: ['a', 'b'], weights: [5, 1], picks: 4, expect: ['a', 'b', 'a', 'b'] }
  ]
  for (const row of rows) {
    const servers = row.ids.map((id, i) => server(id, row.weights?.[i] ?? 1))
    t.same(picks(createRoundRobin(), servers, row.picks), row.expect, row.name)
  }
})

t.test('a retry skips tried servers', async t => {
  const [a, b, c] = [server('a'), server('b'), server('c')]
  const servers = [a, b, c]
  const rr = createRoundRobin()
  t.equal(rr.pick(servers, { key: 'k', tried: [a] }), b, 'a tried: goes to b')
  t.equal(rr.pick(servers, { key: 'k', tried: [c, a] }), b, 'wraps past c and a')
  t.same(picks(rr, servers, 3), ['c', 'a', 'b'], 'rotation continues after the retried pick')
  t.equal(rr.pick(servers, { key: 'k', tried: [a, b, c] }), undefined, 'all tried')
})

t.test('empty list', async t => {
  t.equal(createRoundRobin().pick([], { key: 'k', tried: [] }), undefined)
})

t.test('a changed snapshot keeps rotating', async t => {
  const [a, b, c, d] = [server('a'), server('b'), server('c'), server('d')]
  const rr = createRoundRobin()
  t.same(picks(rr, [a, b, c], 2), ['a', 'b'])
  t.same(picks(rr, [a, c], 3), ['a', 'c', 'a'], 'b removed: counter wraps on the shorter list')
  t.same(picks(rr, [a, c, d], 4), ['c', 'd', 'a', 'c'], 'd added')
})

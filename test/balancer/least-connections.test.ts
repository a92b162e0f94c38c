import t from 'tap'
import { createLeastConnections } from '../../src/balancer/least-connections.js'
import type { Strategy } from '../../src/balancer/strategy.js'
import { Upstream } from '../../src/pool/upstream.js'

function server (id: string, weight = 1, inFlight = 0): Upstream {
  const s = new Upstream(id, `http://${id}.test:3000`, id, weight, true)
  s.state = 'healthy'
  s.inFlight = inFlight
  return s
}

/** Picks n times; with `acquire` each pick takes a connection, as the proxy does. */
function picks (strategy: Strategy, servers: readonly Upstream[], n: number, acquire: boolean): Array<string | undefined> {
  const out: Array<string | undefined> = []
  for (let i = 0; i < n; i++) {
    const s = strategy.pick(servers, { key: '10.0.0.1', tried: [] })
    if (s !== undefined && acquire) s.inFlight++
    out.push(s?.id)
  }
  return out
}

t.test('sequences', async t => {
  const rows = [
    { name: 'the idle server wins', weights: [1, 1, 1], inFlight: [2, 0, 1], acquire: false, picks: 3, expect: ['b', 'b', 'b'] },
    { name: 'ties rotate', weights: [1, 1, 1], inFlight: [0, 0, 0], acquire: false, picks: 7, expect: ['a', 'b', 'c', 'a', 'b', 'c', 'a'] },
    { name: 'ties among the least loaded only', weights: [1, 1, 1], inFlight: [0, 5, 0], acquire: false, picks: 4, expect: ['a', 'c', 'a', 'c'] },
    { name: 'weight divides (2/3 < 1/1)', weights: [3, 1], inFlight: [2, 1], acquire: false, picks: 2, expect: ['a', 'a'] },
    { name: 'weight divides (3/2 > 1/1)', weights: [2, 1], inFlight: [3, 1], acquire: false, picks: 2, expect: ['b', 'b'] },
    { name: 'weight 0 takes nothing while others can', weights: [0, 1], inFlight: [0, 5], acquire: false, picks: 2, expect: ['b', 'b'] },
    { name: 'equal weights fill evenly', weights: [1, 1, 1], inFlight: [0, 0, 0], acquire: true, picks: 7, expect: ['a', 'b', 'c', 'a', 'b', 'c', 'a'] },
    { name: 'weights 2,1 fill 2:1', weights: [2, 1], inFlight: [0, 0], acquire: true, picks: 9, expect: ['a', 'b', 'a', 'b', 'a', 'a', 'b', 'a', 'a'] },
    { name: 'a busy server is left alone', weights: [3, 1, 1], inFlight: [0, 0, 2], acquire: true, picks: 8, expect: ['a', 'b', 'a', 'a', 'b', 'a', 'a', 'a'] }
  ]
  for (const row of rows) {
    const servers = row.weights.map((w, i) => server('abc'[i] as string, w, row.inFlight[i]))
    t.same(picks(createLeastConnections(), servers, row.picks, row.acquire), row.expect, row.name)
  }
})

t.test('a retry skips tried servers', async t => {
  const [a, b, c] = [server('a', 1, 0), server('b', 1, 1), server('c', 1, 2)]
  const servers = [a, b, c]
  const lc = createLeastConnections()
  t.equal(lc.pick(servers, { key: 'k', tried: [a] }), b, 'idle a tried: next least loaded')
  t.equal(lc.pick(servers, { key: 'k', tried: [a, b] }), c)
  t.equal(lc.pick(servers, { key: 'k', tried: [c, a, b] }), undefined, 'all tried')
})

t.test('empty list', async t => {
  t.equal(createLeastConnections().pick([], { key: 'k', tried: [] }), undefined)
})

t.test('a changed snapshot keeps working', async t => {
  const [a, b, c, d] = [server('a'), server('b'), server('c'), server('d')]
  const lc = createLeastConnections()
  t.same(picks(lc, [a, b, c], 2, false), ['a', 'b'])
  t.same(picks(lc, [a, c], 3, false), ['a', 'c', 'a'], 'b removed: still rotates over the rest')
  d.inFlight = 0
  a.inFlight = c.inFlight = 1
  t.same(picks(lc, [a, c, d], 2, false), ['d', 'd'], 'd added idle: it takes the load')
})

import t from 'tap'
import { BALANCERS, createStrategy } from '../../src/balancer/index.js'
import { Upstream } from '../../src/pool/upstream.js'

t.test('every balancer name maps to its strategy, usable with default options', async t => {
  const a = new Upstream('a', 'http://a.test:3000', 'a', 1, true)
  const b = new Upstream('b', 'http://b.test:3000', 'b', 1, true)
  a.state = b.state = 'healthy'
  for (const name of BALANCERS) {
    const strategy = createStrategy(name)
    t.equal(strategy.name, name)
    t.not(createStrategy(name), strategy, `${name}: a fresh instance each time`)
    const picked = strategy.pick([a, b], { key: '10.0.0.1', tried: [a] })
    t.equal(picked, b, `${name}: picks with the default clock and randomness, honours tried`)
  }
  t.type(createStrategy('ewma').observe, 'function', 'ewma observes latencies')
})

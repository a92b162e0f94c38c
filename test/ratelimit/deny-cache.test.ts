import t from 'tap'
import { DenyCache } from '../../src/ratelimit/deny-cache.js'

t.test('a refusal is remembered for its ttl, counting down; an admission is not', async t => {
  let now = 1000
  const cache = new DenyCache({ now: () => now })
  t.equal(cache.check('a', 5), undefined, 'nothing known: ask Redis')
  cache.note('a', { allowed: true, current: 5, ttl: 900 })
  t.equal(cache.check('a', 5), undefined, 'an admission is not cached')
  cache.note('a', { allowed: false, current: 6, ttl: 500 })
  t.same(cache.check('a', 5), { allowed: false, current: 6, ttl: 500 })
  now += 499
  t.same(cache.check('a', 5), { allowed: false, current: 6, ttl: 1 })
  now += 1
  t.equal(cache.check('a', 5), undefined, 'at its ttl the client is asked about again')
  t.equal(cache.size, 0, 'and forgotten')
})

t.test('bounded: past maxKeys the oldest refusal is forgotten', async t => {
  const cache = new DenyCache({ maxKeys: 2, now: () => 0 })
  for (const key of ['a', 'b', 'c']) cache.note(key, { allowed: false, current: 2, ttl: 1000 })
  t.equal(cache.size, 2)
  t.equal(cache.check('a', 1), undefined)
  t.ok(cache.check('b', 1) !== undefined && cache.check('c', 1) !== undefined)
  cache.note('c', { allowed: false, current: 2, ttl: 2000 })
  t.equal(cache.size, 2, 'refreshing a known key evicts nothing')
})

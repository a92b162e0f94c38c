import t from 'tap'
import {
  MAX_UPSTREAMS, NONE, OTHER, servedByFrom, Tally, toResult, upstreamOrder
} from '../../tools/loadtest/aggregate.js'

t.test('latency as the report measures it: percentiles within 0.5 %, extremes exact, empty is 0', async t => {
  const latency = (): Tally['latency'] => new Tally().latency
  const empty = latency()
  t.equal(empty.percentile(0.5), 0)
  t.equal(empty.max, 0)

  const h = latency()
  for (let i = 1000; i >= 1; i--) h.record(i) // 1..1000 ms
  t.equal(h.count, 1000)
  for (const [p, exact] of [[50, 500], [95, 950], [99, 990], [100, 1000]] as const) {
    const got = h.percentile(p / 100)
    t.ok(Math.abs(got - exact) / exact < 0.005, `p${p} ${got} ≈ ${exact}`)
  }
  t.equal(h.max, 1000)

  const fine = latency()
  for (const ms of [0.001, 0.1, 0.2, 0.25]) fine.record(ms)
  t.equal(fine.percentile(0.25), 0.001, 'the smallest rank is the exact minimum')
  t.equal(fine.percentile(0.000001), 0.001, 'the smallest rank is 1')
  t.equal(fine.percentile(1), 0.25, 'the largest rank is the exact maximum')

  const odd = latency()
  odd.record(-1)
  odd.record(Number.NaN)
  t.equal(odd.count, 0, 'negative and NaN latencies are ignored')
  odd.record(1e9)
  t.equal(odd.count, 1)
  t.equal(odd.max, 1e9, 'max stays exact')
  t.ok(odd.percentile(0.99) > 2_000_000, 'very long latencies land in the last buckets')

  const one = latency()
  one.record(3.3)
  t.equal(one.percentile(0.5), 3.3, 'never above the exact maximum')
})

t.test('x-served-by from autocannon\'s headers event', async t => {
  t.equal(servedByFrom({ headers: ['Content-Type', 'application/json', 'X-Served-By', 'b2'] }), 'b2', 'raw name/value list, any case')
  t.equal(servedByFrom({ headers: ['x-served-by', 'b1', 'x-served-by', 'b9'] }), 'b1', 'the first one')
  t.equal(servedByFrom({ headers: ['content-type', 'text/plain'] }), undefined)
  t.equal(servedByFrom({ headers: ['x-served-by'] }), undefined, 'a name without value')
  t.equal(servedByFrom({ 'x-served-by': 'b3' }), 'b3', 'a header object')
  t.equal(servedByFrom({ headers: { 'X-Served-By': ['b4', 'b5'] } }), 'b4')
  t.equal(servedByFrom({ headers: { other: 'x' } }), undefined)
  t.equal(servedByFrom({ headers: ['x-served-by', '   '] }), undefined, 'blank is none')
  t.equal(servedByFrom({ headers: ['x-served-by', ' b1\x1b[31m\x7f '] }), 'b1?[31m?', 'control characters replaced')
  t.equal(servedByFrom({ headers: ['x-served-by', 'x'.repeat(100)] }), 'x'.repeat(64), 'cut to 64 characters')
  t.equal(servedByFrom({ headers: ['x-served-by', 42] }), undefined)
  t.equal(servedByFrom({ headers: 'x-served-by: b1' }), undefined)
  t.equal(servedByFrom(null), undefined)
  t.equal(servedByFrom('b1'), undefined)
})

t.test('the tally counts every response; distinct upstream names are bounded', async t => {
  const tally = new Tally()
  tally.record(200, 'b1', 1)
  tally.record(200, 'b2', 2)
  tally.record(429, undefined, 0.5)
  tally.record(200, 'b1', 3)
  t.equal(tally.total, 4)
  t.same([...tally.statusCodes], [[200, 3], [429, 1]])
  t.same([...tally.upstreams], [['b1', 2], ['b2', 1], [NONE, 1]])
  t.equal(tally.latency.count, 4)

  const many = new Tally()
  for (let i = 0; i < MAX_UPSTREAMS + 5; i++) many.record(200, `u${i}`, 1)
  many.record(200, 'u0', 1)
  t.equal(many.upstreams.size, MAX_UPSTREAMS + 1)
  t.equal(many.upstreams.get(OTHER), 5)
  t.equal(many.upstreams.get('u0'), 2, 'known names keep counting')
})

t.test('upstream order: natural, then (other), then (none)', async t => {
  t.same([NONE, 'b10', OTHER, 'b2', 'a', 'b1'].sort(upstreamOrder), ['a', 'b1', 'b2', 'b10', OTHER, NONE])
})

t.test('the JSON result', async t => {
  const tally = new Tally()
  for (let i = 0; i < 30; i++) tally.record(200, `b${i % 3 + 1}`, 2)
  for (let i = 0; i < 6; i++) tally.record(503, 'b1', 4)
  for (let i = 0; i < 10; i++) tally.record(429, undefined, 1)
  tally.record(502, undefined, 8)
  const result = toResult(tally, { url: 'http://h/', connections: 4, elapsedSeconds: 2.004, errors: 5, timeouts: 2 })
  t.same(result, {
    url: 'http://h/',
    connections: 4,
    durationSeconds: 2,
    requests: { total: 47, perSecond: 23.5 },
    latencyMs: { p50: 2, p95: 4.01, p99: 8, max: 8 }, // 4 ms lands in a 1 % bucket, reported at its geometric middle
    statusCodes: { 200: 30, 429: 10, 502: 1, 503: 6 },
    rateLimitedShare: 10 / 47,
    errors: 3,
    timeouts: 2,
    upstreams: { b1: 16, b2: 10, b3: 10, [NONE]: 11 }
  })
  t.same(Object.keys(result.statusCodes), ['200', '429', '502', '503'], 'codes in order')
  t.same(Object.keys(result.upstreams), ['b1', 'b2', 'b3', NONE], 'upstreams in order')

  t.same(toResult(new Tally(), { url: 'http://h/', connections: 1, elapsedSeconds: 0, errors: 3, timeouts: 3 }), {
    url: 'http://h/',
    connections: 1,
    durationSeconds: 0,
    requests: { total: 0, perSecond: 0 },
    latencyMs: { p50: 0, p95: 0, p99: 0, max: 0 },
    statusCodes: {},
    rateLimitedShare: 0,
    errors: 0,
    timeouts: 3,
    upstreams: {}
  }, 'nothing answered')

  const ok = new Tally()
  ok.record(200, 'b1', 1)
  t.equal(toResult(ok, { url: 'http://h/', connections: 1, elapsedSeconds: 1, errors: 0, timeouts: 0 }).rateLimitedShare, 0, 'no 429')
})

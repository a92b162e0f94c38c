import t from 'tap'
import fc from 'fast-check'
import { LatencyHistogram } from '../../src/stats/histogram.js'
import { BucketHistograms } from '../../src/stats/buckets.js'

/** The exact nearest-rank percentile of a sample: what the histogram approximates. */
function exact (values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1] as number
}

const relErr = (estimate: number, truth: number): number => Math.abs(estimate - truth) / truth

/** A deterministic generator, so a failure reproduces. */
function lcg (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1664525 + 1013904223) % 4294967296
    return state / 4294967296
  }
}

t.test('percentiles are within 1% of the exact ones on skewed latency distributions', async t => {
  const rand = lcg(42)
  const distributions: Record<string, () => number> = {
    uniform: () => 1 + rand() * 99,
    exponential: () => -Math.log(1 - rand()) * 20,
    // log-normal: the usual shape of request latency, with a long tail
    lognormal: () => Math.exp(2 + 1.2 * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())),
    bimodal: () => rand() < 0.9 ? 2 + rand() : 800 + rand() * 400
  }
  for (const [name, draw] of Object.entries(distributions)) {
    const h = new LatencyHistogram()
    const values = Array.from({ length: 50_000 }, draw)
    for (const v of values) h.record(v)
    for (const q of [0.5, 0.9, 0.95, 0.99, 0.999]) {
      const err = relErr(h.percentile(q), exact(values, q))
      t.ok(err <= 0.01, `${name} p${q * 100}: ${h.percentile(q).toFixed(3)} vs ${exact(values, q).toFixed(3)} (${(err * 100).toFixed(2)}%)`)
    }
    t.equal(h.count, values.length)
    t.equal(h.min, Math.min(...values), `${name}: min is exact`)
    t.equal(h.max, Math.max(...values), `${name}: max is exact`)
    t.ok(relErr(h.mean, values.reduce((a, b) => a + b) / values.length) < 1e-9, `${name}: mean is exact`)
  }
})

t.test('any sample: every percentile within the configured precision, ordered, and inside [min, max]', async t => {
  fc.assert(fc.property(
    fc.array(fc.double({ min: 0.01, max: 3_600_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
    fc.double({ min: 0, max: 1, noNaN: true }),
    (values, q) => {
      const h = new LatencyHistogram()
      for (const v of values) h.record(v)
      const estimate = h.percentile(q)
      // half a bucket (2%) plus rounding slack
      if (relErr(estimate, exact(values, q)) > 0.0101) return false
      const [p50, p95, p99] = h.percentiles([0.5, 0.95, 0.99]) as [number, number, number]
      return h.min <= p50 && p50 <= p95 && p95 <= p99 && p99 <= h.max
    }
  ), { numRuns: 500, seed: 7 })
  t.pass('property held')
})

t.test('a coarser precision gives proportionally coarser percentiles, and still bounded ones', async t => {
  const h = new LatencyHistogram({ precision: 0.1 })
  const values = Array.from({ length: 10_000 }, (_, i) => 1 + i / 10)
  for (const v of values) h.record(v)
  const err = relErr(h.percentile(0.5), exact(values, 0.5))
  t.ok(err <= 0.05, `p50 within 5% with 10% buckets (${(err * 100).toFixed(2)}%)`)
  t.ok(h.buckets < new LatencyHistogram().buckets / 4, 'fewer buckets')
})

t.test('memory is fixed: a million values use the same buckets as one', async t => {
  const h = new LatencyHistogram()
  const buckets = h.buckets
  t.ok(buckets > 100 && buckets < 2000, `${buckets} buckets by default`)
  for (let i = 0; i < 1_000_000; i++) h.record((i % 5000) / 7 + 0.05)
  t.equal(h.buckets, buckets)
  t.equal(h.count, 1_000_000)
})

t.test('edges: empty, out of range and invalid values', async t => {
  const h = new LatencyHistogram({ lowest: 1, highest: 1000 })
  t.same([h.count, h.min, h.max, h.mean, h.percentile(0.5)], [0, 0, 0, 0, 0], 'all 0 when empty')
  t.same(h.percentiles([0.5, 0.99]), [0, 0])
  h.record(-1)
  h.record(NaN)
  h.record(Infinity)
  t.equal(h.count, 0, 'negative, NaN and infinite values are ignored')
  h.record(0.2)
  t.equal(h.percentile(0.5), 0.2, 'below the range: clamped to the exact min')
  h.record(50_000)
  t.equal(h.percentile(1), 50_000, 'above the range: clamped to the exact max')
  t.equal(h.percentile(0), 0.2, 'q=0 is the smallest value')
  t.equal(h.count, 2)
  h.reset()
  t.same([h.count, h.sum, h.min, h.max], [0, 0, 0, 0], 'reset empties it')
  t.throws(() => new LatencyHistogram({ lowest: 0 }), RangeError)
  t.throws(() => new LatencyHistogram({ lowest: 10, highest: 5 }), RangeError)
  t.throws(() => new LatencyHistogram({ precision: 0 }), RangeError)
})

t.test('percentiles asked out of order come back in the order asked', async t => {
  const h = new LatencyHistogram()
  for (let i = 1; i <= 1000; i++) h.record(i)
  const [p99, p50] = h.percentiles([0.99, 0.5]) as [number, number]
  t.ok(relErr(p99, 990) <= 0.01, `p99 ${p99}`)
  t.ok(relErr(p50, 500) <= 0.01, `p50 ${p50}`)
})

t.test('Prometheus buckets: cumulative counts per upper bound, per series, +Inf as the count', async t => {
  const h = new BucketHistograms([0.01, 0.1, 1], 2)
  t.equal(h.series, 2)
  for (const v of [0.005, 0.01, 0.05, 0.5, 3, 30]) h.observe(0, v)
  h.observe(1, 0.2)
  h.observe(1, NaN)
  h.observe(7, 1)
  t.same(h.cumulative(0), [2, 3, 4], 'le is inclusive: 0.01 falls in le="0.01"')
  t.equal(h.count(0), 6)
  t.ok(Math.abs(h.sum(0) - 33.565) < 1e-9)
  t.same(h.cumulative(1), [0, 0, 1])
  t.equal(h.count(1), 1, 'NaN ignored')
  t.same([h.cumulative(7), h.count(7), h.sum(7)], [[], 0, 0], 'an unknown series is ignored')
  t.throws(() => new BucketHistograms([1, 1], 1), RangeError)
})

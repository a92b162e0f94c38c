import t from 'tap'
import { RequestStats } from '../../src/stats/requests.js'
import { UpstreamSeries } from '../../src/stats/series.js'

t.test('status aggregates add up and report only the codes seen', async t => {
  let now = 5000
  const stats = new RequestStats({ now: () => now })
  t.same(stats.snapshot(), {
    uptimeSeconds: 0,
    requests: { total: 0, errors: 0, rateLimited: 0, perSecond: 0, errorRate: 0 },
    latencyMs: { avg: 0, min: 0, max: 0, p50: 0, p95: 0, p99: 0 },
    statusCodes: {}
  }, 'empty: zeros, not NaN')
  for (let i = 0; i < 90; i++) stats.record(200, 10, false)
  for (let i = 0; i < 6; i++) stats.record(429, 0.5, true)
  stats.record(429, 3, false) // an upstream's own 429 is not the limiter's
  for (let i = 0; i < 3; i++) stats.record(502, 100, false)
  now += 10_000
  const s = stats.snapshot()
  t.equal(s.uptimeSeconds, 10)
  t.same(s.requests, { total: 100, errors: 3, rateLimited: 6, perSecond: 10, errorRate: 0.03 })
  t.same(s.statusCodes, { 200: 90, 429: 7, 502: 3 })
  t.equal(s.latencyMs.min, 0.5)
  t.equal(s.latencyMs.max, 100)
  t.equal(s.latencyMs.avg, (90 * 10 + 6 * 0.5 + 3 + 300) / 100)
  t.ok(Math.abs(s.latencyMs.p50 - 10) <= 0.1, `p50 ${s.latencyMs.p50}`)
  t.ok(Math.abs(s.latencyMs.p99 - 100) <= 1, `p99 ${s.latencyMs.p99}`)
  now += 61_000
  t.equal(stats.snapshot().requests.perSecond, 0, 'a quiet minute later the rate is 0, the totals stay')
  t.equal(stats.snapshot().requests.total, 100)
})

t.test('per-upstream rows: fixed width, dropped once read after their server left', async t => {
  const live = new Set(['a', 'b'])
  const series = new UpstreamSeries(4, id => live.has(id), ['none'], 2)
  series.add('a', 1)
  series.add('a', 1)
  series.add('b', 3, 5)
  series.add('none', 0)
  t.equal(series.get('a', 1), 2)
  t.equal(series.get('b', 3), 5)
  t.equal(series.get('zz', 0), 0)
  live.delete('b')
  const seen: string[] = []
  series.forEach((id, column, value) => seen.push(`${id}:${column}=${value}`))
  t.same(seen.sort(), ['a:1=2', 'b:3=5', 'none:0=1'], 'a removed server is read one last time')
  t.equal(series.size, 2, 'then dropped')
  t.equal(series.get('b', 3), 0)
  // never read: rows of servers gone are pruned once more rows than the slack exist
  for (let i = 0; i < 50; i++) series.add(`gone${i}`, 0)
  t.ok(series.size <= 5, `bounded without scrapes (${series.size} rows)`)
  t.equal(series.get('a', 1), 2, 'live rows survive pruning')
})

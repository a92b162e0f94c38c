import t from 'tap'
import type { LoadtestResult } from '../../tools/loadtest/aggregate.js'
import { barWidth, formatReport, progressLine, renderBars, upstreamBars } from '../../tools/loadtest/chart.js'

t.test('bars scaled to the largest, padded to the width, with counts and shares', async t => {
  t.same(renderBars([{ label: 'b1', count: 50 }, { label: 'b2', count: 25 }, { label: '(none)', count: 0 }], 10), [
    'b1      ██████████  50   66.7%',
    'b2      █████       25   33.3%',
    `(none)  ${' '.repeat(10)}   0    0.0%`
  ])
})

t.test('exact lines', async t => {
  t.same(renderBars([{ label: 'b1', count: 3 }, { label: 'b22', count: 1 }], 6), [
    'b1   ██████  3   75.0%',
    'b22  ██      1   25.0%'
  ])
  t.same(renderBars([{ label: 'b1', count: 1000 }, { label: 'b2', count: 1 }], 20), [
    'b1  ████████████████████  1000   99.9%',
    'b2  █                        1    0.1%'
  ], 'a count above 0 shows at least one block')
})

t.test('zero counts: empty bars, 0.0%', async t => {
  t.same(renderBars([{ label: 'a', count: 0 }, { label: 'b', count: 0 }], 4), [
    'a        0    0.0%',
    'b        0    0.0%'
  ])
})

t.test('one upstream: a full bar, 100%', async t => {
  t.same(renderBars([{ label: 'b1', count: 7 }], 5), ['b1  █████  7  100.0%'])
})

t.test('widths: the bar column is exactly `width` cells, at least 1; nothing to draw, no lines', async t => {
  for (const width of [1, 3, 40, 60]) {
    const lines = renderBars([{ label: 'x', count: 9 }, { label: 'y', count: 4 }], width)
    t.equal(lines[0]!.length, lines[1]!.length, `aligned at ${width}`)
    t.equal(lines[0], `x  ${'█'.repeat(width)}  9   69.2%`)
  }
  t.same(renderBars([{ label: 'x', count: 9 }], 0), ['x  █  9  100.0%'])
  t.same(renderBars([{ label: 'x', count: 9 }], 2.7), ['x  ██  9  100.0%'])
  t.same(renderBars([], 10), [])
})

t.test('barWidth fits the terminal', async t => {
  const bars = [{ label: 'b1', count: 1234 }, { label: '(none)', count: 5 }]
  t.equal(barWidth(undefined, bars), 40, 'not a terminal')
  t.equal(barWidth(0, bars), 40)
  t.equal(barWidth(80, bars), 80 - 1 - (2 + 6 + 2 + 2 + 4 + 2 + 6))
  t.equal(barWidth(30, bars), 10, 'never below 10')
  t.equal(barWidth(300, bars), 60, 'never above 60')
  const line = `  ${renderBars(bars, barWidth(80, bars))[0]!}`
  t.ok(line.length < 80, 'a chart line fits in 80 columns')
})

const RESULT: LoadtestResult = {
  url: 'http://127.0.0.1:8080/',
  connections: 4,
  durationSeconds: 2.01,
  requests: { total: 100, perSecond: 49.75 },
  latencyMs: { p50: 1.5, p95: 2.25, p99: 3, max: 12.345 },
  statusCodes: { 200: 60, 429: 30, 503: 10 },
  rateLimitedShare: 0.3,
  errors: 1,
  timeouts: 2,
  upstreams: { '(none)': 40, b10: 10, b1: 30, b2: 20 }
}

t.test('the human report', async t => {
  t.same(upstreamBars(RESULT).map(b => b.label), ['b1', 'b2', 'b10', '(none)'])
  t.equal(formatReport(RESULT, 'GET'), [
    'GET http://127.0.0.1:8080/  4 connections  2.01 s',
    '',
    'throughput    49.8 req/s avg (100 responses)',
    'latency       p50 1.50 ms  p95 2.25 ms  p99 3.00 ms  max 12.35 ms',
    'rate limited  30.0% (30 answered 429)',
    'errors        1 errors, 2 timeouts',
    '',
    'status codes',
    '  200  60   60.0%',
    '  429  30   30.0%',
    '  503  10   10.0%',
    '',
    'upstreams (x-served-by)',
    `  b1      ${'█'.repeat(30)}${' '.repeat(10)}  30   30.0%`,
    `  b2      ${'█'.repeat(20)}${' '.repeat(20)}  20   20.0%`,
    `  b10     ${'█'.repeat(10)}${' '.repeat(30)}  10   10.0%`,
    `  (none)  ${'█'.repeat(40)}  40   40.0%`,
    ''
  ].join('\n'))
  const narrow = formatReport(RESULT, 'POST', 50).split('\n')
  t.equal(narrow[0], 'POST http://127.0.0.1:8080/  4 connections  2.01 s')
  t.equal(narrow.at(-2), `  (none)  ${'█'.repeat(27)}  40   40.0%`, 'bars narrowed to the terminal')
  t.equal(narrow.at(-2)!.length, 49, 'within 50 columns')
})

t.test('a report without responses', async t => {
  const empty = { ...RESULT, requests: { total: 0, perSecond: 0 }, statusCodes: {}, upstreams: {}, rateLimitedShare: 0 }
  const report = formatReport(empty, 'GET')
  t.match(report, 'rate limited  0.0% (0 answered 429)')
  t.match(report, 'status codes\n  (no responses)\n')
  t.match(report, 'upstreams (x-served-by)\n  (no responses)\n')
})

t.test('the progress line', async t => {
  t.equal(progressLine(0, 10, 0, 10), '[░░░░░░░░░░] 0/10 s  0 responses')
  t.equal(progressLine(3, 10, 1234, 10), '[███░░░░░░░] 3/10 s  1234 responses')
  t.equal(progressLine(11, 10, 99, 10), '[██████████] 10/10 s  99 responses', 'never past the end')
  t.equal(progressLine(1, 2, 5), `[${'█'.repeat(15)}${'░'.repeat(15)}] 1/2 s  5 responses`)
})

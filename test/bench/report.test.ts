import t from 'tap'
import {
  againstGoal, costLines, costs, int, median, ms, num, pairSummaries, pairsTable, percent, ratio, resultsTable, runsTable, summarize,
  type PairRun, type Run
} from '../../tools/bench/report.js'

// The bench's arithmetic: what docs/benchmarks.md and the goal verdicts are computed from.

const run = (round: number, contender: string, rps: number, cpuUs?: number): Run =>
  ({ round, contender, requests: rps * 10, rps, p50: 2, p99: 9, errors: 0, non2xx: 0, cpuUs, cpuPct: cpuUs === undefined ? undefined : 95 })

t.test('median: odd, even, empty', async t => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.ok(Number.isNaN(median([])))
})

t.test('summarize: medians per contender, min–max, ratios to direct and to the plain gateway', async t => {
  const runs = [
    run(1, 'direct', 40_000), run(2, 'direct', 44_000), run(3, 'direct', 42_000),
    run(1, 'gateway', 20_000, 50), run(2, 'gateway', 10_000, 90), run(3, 'gateway', 21_000, 48),
    { ...run(1, 'gateway+redis', 18_000, 55), redisUs: 4, errors: 2, non2xx: 1 }
  ]
  const [direct, gateway, redis] = summarize(['direct', 'gateway', 'gateway+redis'], runs)
  t.match(direct, { rps: 42_000, rpsMin: 40_000, rpsMax: 44_000, vsDirect: 1, cpuUs: undefined })
  t.match(gateway, { rounds: 3, rps: 20_000, rpsMin: 10_000, rpsMax: 21_000, cpuUs: 50, vsDirect: 20_000 / 42_000, vsGateway: 1 })
  t.match(redis, { rounds: 1, rps: 18_000, redisUs: 4, errors: 2, non2xx: 1, vsGateway: 0.9 })
})

t.test('costs: a limiter against the plain gateway, overall and per round', async t => {
  const runs = [run(1, 'gateway', 20_000, 50), run(2, 'gateway', 10_000, 100), run(1, 'gateway+redis', 18_000, 55), run(2, 'gateway+redis', 9_500, 105)]
  const summaries = summarize(['gateway', 'gateway+redis'], runs)
  const [cost] = costs(summaries, runs, ['gateway+redis', 'gateway+memory'])
  t.equal(cost?.limiter, 'gateway+redis')
  t.equal(cost?.rpsCost.toFixed(4), (1 - 13_750 / 15_000).toFixed(4))
  t.same(cost?.perRound.map(x => x.toFixed(2)), ['0.10', '0.05'])
  t.equal(cost?.cpuUs, 5)
  t.same(costs(summarize(['gateway+redis'], runs), runs, ['gateway+redis']), [], 'nothing without the plain gateway')
  const [line] = costLines(costs(summaries, runs, ['gateway+redis']))
  t.match(line, /\*\*gateway\+redis\*\*: 8\.3 % of the plain gateway's req\/s \(per round: 10\.0 %, 5\.0 %\); gateway CPU \+5\.00 µs\/request \(\+6\.7 %\)/)
})

t.test('pairSummaries: requests per CPU second of the second contender over the first, median over rounds', async t => {
  const pair = (round: number, base: string, other: string, baseCpuUs: number | undefined, otherCpuUs: number, errors = 0): PairRun =>
    ({ round, base, other, baseRps: 5000, otherRps: 6000, baseCpuUs, otherCpuUs, errors })
  const runs = [
    pair(1, 'fast-gateway', 'gateway+full', 130, 80),
    pair(1, 'gateway', 'gateway+redis', 70, 77, 3),
    pair(2, 'fast-gateway', 'gateway+full', 120, 100),
    pair(3, 'fast-gateway', 'gateway+full', 140, 70),
    pair(2, 'gateway', 'gateway+redis', undefined, 77)
  ]
  const [fg, redis] = pairSummaries(runs)
  t.equal(fg?.base, 'fast-gateway')
  t.same(fg?.perRound, [130 / 80, 1.2, 2])
  t.equal(fg?.speed, 130 / 80, 'the median, not the mean')
  t.same(redis?.perRound, [70 / 77], 'a run without CPU figures counts for nothing')
  t.equal(redis?.errors, 3)
  t.same(pairSummaries([]), [])
  const table = pairsTable(runs.slice(0, 2)).split('\n')
  t.equal(table.length, 4)
  t.equal(table[2], '| 1 | fast-gateway · gateway+full | 5 000 · 6 000 | 130 · 80.0 | 65 · 48 | 1.63 | 0 |')
  t.match(pairsTable(runs.slice(4)), /\| 2 \| gateway · gateway\+redis \| 5 000 · 6 000 \| – · 77\.0 \| – · 46 \| – \| 0 \|/)
})

t.test('tables and number formats', async t => {
  const runs = [run(1, 'gateway', 12_345.6, 56.25)]
  const results = resultsTable(summarize(['gateway'], runs)).split('\n')
  t.equal(results[2], '| gateway | 12 346 (12 346–12 346) | 2 | 9 | 56.3 | 95 | – | 1.00 | 0 / 0 |')
  t.match(runsTable(runs), /\| 1 \| gateway \| 12 346 \| 2 \| 9 \| 56\.3 \| 95 \| – \| – \| – \| 0 \/ 0 \|/)
  t.equal(int(1234567.4), '1 234 567')
  t.equal(int(Number.NaN), '–')
  t.same([num(1234.5), num(123.4), num(12.34), num(1.234), num(undefined)], ['1 235', '123', '12.3', '1.23', '–'])
  t.same([ms(3), ms(3.25), ms(Number.NaN)], ['3', '3.3', '–'])
  t.same([ratio(1.234), ratio(undefined)], ['1.23', '–'])
  // a ratio that rounds to its goal keeps a third decimal, so a miss never reads as the goal
  t.same([againstGoal(1.4985, 1.5), againstGoal(1.5021, 1.5), againstGoal(1.5, 1.5), againstGoal(1.523, 1.5)], ['1.498', '1.502', '1.50', '1.52'])
  t.same([percent(0.123), percent(0.123, true), percent(-0.05), percent(undefined)], ['12.3 %', '+12.3 %', '−5.0 %', '–'])
})

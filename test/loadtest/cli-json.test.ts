import t from 'tap'
import type { LoadtestResult } from '../../tools/loadtest/aggregate.js'
import { hitsOn, startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { runTool } from '../helpers/process.js'

const loadtest = async (args: string[]): ReturnType<typeof runTool> => runTool('loadtest', args)

t.test('--json -: totals add up, round-robin shares, 429 share', async t => {
  const backends = await startBackends(t, 3)
  const gateway = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '60', RATE_LIMIT_WINDOW: '1h' }))
  const run = await loadtest(['--url', gateway.url, '-c', '4', '-d', '2', '--json', '-'])
  t.equal(run.code, 0, 'exit 0 with 429s')
  t.equal(run.stderr, '', 'nothing on stderr (no progress with --json -)')
  const result = JSON.parse(run.stdout) as LoadtestResult

  t.equal(result.url, `${gateway.url}/`)
  t.equal(result.connections, 4)
  t.ok(result.durationSeconds >= 1.9 && result.durationSeconds < 4, `about 2 s (${result.durationSeconds})`)
  const codes = result.statusCodes
  const total = Object.values(codes).reduce((s, n) => s + n, 0)
  t.equal(result.requests.total, total, 'total = sum of status codes')
  t.ok(Math.abs(result.requests.perSecond - total / result.durationSeconds) < 1, 'perSecond = total / duration')
  t.ok((codes['429'] ?? 0) > 0, `some 429s (${codes['429']})`)
  t.equal(codes['200'], 60, 'exactly RATE_LIMIT_MAX admitted')
  t.equal(result.rateLimitedShare, codes['429']! / total, '429 share matches the status codes')
  t.equal(result.errors, 0)
  t.equal(result.timeouts, 0)
  const { p50, p95, p99, max } = result.latencyMs
  t.ok(p50 > 0 && p50 <= p95 && p95 <= p99 && p99 <= max, `latency ordered: ${p50} ${p95} ${p99} ${max}`)

  const { b1, b2, b3, '(none)': none, ...rest } = result.upstreams
  t.same(rest, {}, 'only b1..b3 and (none)')
  const proxied = Object.entries(codes).filter(([code]) => /^[25]/.test(code)).reduce((s, [, n]) => s + n, 0)
  t.equal(b1! + b2! + b3!, proxied, 'upstream counts sum to the proxied 2xx+5xx')
  t.equal(none, codes['429'], 'the 429s carry no x-served-by')
  t.ok(Math.max(b1!, b2!, b3!) - Math.min(b1!, b2!, b3!) <= 2, `round-robin: even (${b1} ${b2} ${b3})`)
  const hits = hitsOn(backends)
  for (const name of ['b1', 'b2', 'b3']) {
    const counted = result.upstreams[name]!
    t.ok(hits[name]! >= counted && hits[name]! <= counted + 4, `${name}: ${counted} counted, ${hits[name]} answered (at most one in flight per connection at the end)`)
  }
})

t.test('a bad flag: exit 1, one line naming it', async t => {
  const usage = await loadtest(['--url', 'http://127.0.0.1:8080', '-c', '0'])
  t.equal(usage.code, 1)
  t.equal(usage.stderr, 'loadtest: -c "0" is invalid: expected an integer 1..1000\n')
  t.equal(usage.stdout, '')
})

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { LoadtestResult } from '../../tools/loadtest/aggregate.js'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'
import { runTool } from '../helpers/process.js'

const loadtest = async (args: string[]): ReturnType<typeof runTool> => runTool('loadtest', args)

t.test('the human report, with --json to a file', async t => {
  const backends = await startBackends(t, 3)
  const gateway = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '30', RATE_LIMIT_WINDOW: '1h' }))
  const file = join(t.testdir(), 'out.json')
  const run = await loadtest(['--url', gateway.url, '--path', '/hello?x=1', '-c', '2', '-d', '1', '--json', file])
  t.equal(run.code, 0)
  t.equal(run.stderr, '', 'no progress bar when stderr is not a terminal')
  const result = JSON.parse(readFileSync(file, 'utf8')) as LoadtestResult
  t.equal(result.url, `${gateway.url}/hello?x=1`)
  t.equal(result.upstreams.b1, 10)

  const out = run.stdout
  t.match(out, new RegExp(`^GET ${gateway.url}/hello\\?x=1  2 connections  \\d+\\.\\d\\d s\\n`))
  t.match(out, `\nthroughput    ${result.requests.perSecond.toFixed(1)} req/s avg (${result.requests.total} responses)\n`)
  t.match(out, /\nlatency {7}p50 \d+\.\d\d ms {2}p95 \d+\.\d\d ms {2}p99 \d+\.\d\d ms {2}max \d+\.\d\d ms\n/)
  t.match(out, `\nrate limited  ${(result.rateLimitedShare * 100).toFixed(1)}% (${result.statusCodes['429']} answered 429)\n`)
  t.match(out, '\nerrors        0 errors, 0 timeouts\n')
  t.match(out, /\nstatus codes\n {2}200 +30 +\d+\.\d%\n {2}429 +\d+ +\d+\.\d%\n/)
  const chart = out.slice(out.indexOf('upstreams (x-served-by)\n')).split('\n').slice(1, -1)
  const rows = chart.map(line => /^ {2}(\S+) +(█+) +(\d+) +(\d+\.\d)%$/.exec(line))
  t.same(rows.map(row => row?.[1]), ['b1', 'b2', 'b3', '(none)'], 'one chart line per upstream, (none) last')
  t.same(rows.map(row => Number(row?.[3])), [10, 10, 10, result.statusCodes['429']], 'with its count')
  const widest = rows.reduce((a, b) => Number(b?.[3]) > Number(a?.[3]) ? b : a)
  t.equal(widest?.[2]?.length, 40, 'the largest count has the full bar')
  t.equal(new Set(chart.map(line => line.length)).size, 1, 'aligned')
})

t.test('a target that cannot be reached: exit 1, one line', async t => {
  const [gone] = await startBackends(t, 1)
  await gone!.stop()
  const refused = await loadtest(['--url', gone!.url, '-d', '1'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, new RegExp(`^loadtest: cannot reach ${gone!.url}: .*ECONNREFUSED.*\\n$`))
  t.equal(refused.stdout, '')
})

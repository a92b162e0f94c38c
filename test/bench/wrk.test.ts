import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { parseWrk, runWrk, wrkVersion } from '../../tools/bench/wrk.js'

// what `wrk -t1 -c50 -d8s --latency` printed on this machine (wrk 4.1.0)
const clean = `Running 8s test @ http://127.0.0.1:18080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.24ms    1.25ms  31.23ms   88.68%
    Req/Sec    11.93k     1.31k   13.62k    82.50%
  Latency Distribution
     50%    3.85ms
     75%    4.24ms
     90%    5.57ms
     99%    9.30ms
  95049 requests in 8.01s, 29.73MB read
Requests/sec:  11861.29
Transfer/sec:      3.71MB
`

t.test('parseWrk: requests, req/s and the 50th and 99th percentiles in ms', async t => {
  t.same(parseWrk(clean), { requests: 95049, rps: 11861.29, p50Ms: 3.85, p99Ms: 9.3, errors: 0, non2xx: 0 })
})

t.test('parseWrk: every unit wrk prints a latency in, socket errors summed, non-2xx counted', async t => {
  const text = clean
    .replace('50%    3.85ms', '50%  812.00us')
    .replace('99%    9.30ms', '99%    1.50s')
    .replace('Requests/sec:', '  Socket errors: connect 1, read 12, write 0, timeout 3\n  Non-2xx or 3xx responses: 5\nRequests/sec:')
  const r = parseWrk(text)
  t.equal(r.p50Ms, 0.812)
  t.equal(r.p99Ms, 1500)
  t.equal(r.errors, 16)
  t.equal(r.non2xx, 5)
  t.equal(parseWrk(clean.replace('99%    9.30ms', '99%    2.00m')).p99Ms, 120_000)
})

t.test('parseWrk: output without the latency distribution or the totals is refused, not read as zeros', async t => {
  t.throws(() => parseWrk(clean.replace(/ {2}Latency Distribution[\s\S]*?99%.*\n/, '')), /no 50% latency.*--latency/)
  t.throws(() => parseWrk(clean.replace(/Requests\/sec.*\n/, '')), /no request count/)
})

t.test('runWrk: a real wrk against a real server, 200s and then 503s', async t => {
  t.match(wrkVersion(), /\S/, 'wrk is installed (.ci/run installs it)')
  let status = 200
  const server = createServer((req, res) => { res.writeHead(status, { 'content-type': 'text/plain' }).end('ok') })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const port = (server.address() as AddressInfo).port

  const ok = await runWrk(port, 2, 1)
  t.ok(ok.requests > 0 && ok.rps > 0, `${ok.requests} requests, ${ok.rps} req/s`)
  t.ok(ok.p50Ms > 0 && ok.p99Ms >= ok.p50Ms, `p50 ${ok.p50Ms} ms ≤ p99 ${ok.p99Ms} ms`)
  t.same([ok.errors, ok.non2xx], [0, 0])

  status = 503
  const refused = await runWrk(port, 2, 1)
  t.equal(refused.non2xx, refused.requests, 'every 503 counted')
})

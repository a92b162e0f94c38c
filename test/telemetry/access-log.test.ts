import t from 'tap'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import type { FastifyInstance } from 'fastify'
import Fastify from 'fastify'
import { pino } from 'pino'
import { AccessLog, type AccessEntry } from '../../src/access-log.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { logDestination } from '../../src/log-destination.js'
import { startBackends } from '../helpers/backends.js'
import { upstreamsEnv } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

interface Teardown { teardown: (fn: () => unknown) => void }

interface LogLine {
  level: number
  msg: string
  reqId?: string
  method?: string
  path?: string
  status?: number
  upstream?: string | null
  durationMs?: number
  clientIp?: string
  limited?: boolean
  retried?: number
  [key: string]: unknown
}

/** A gateway whose pino output goes to a stream the test reads. */
async function loggedGateway (t: Teardown, env: Record<string, string>, level: string): Promise<{ app: FastifyInstance, url: string, lines: LogLine[] }> {
  const result = loadConfig(env, '/nonexistent')
  if (!result.ok) throw new Error(result.problems.join('\n'))
  const lines: LogLine[] = []
  let buffered = ''
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      buffered += chunk.toString()
      let nl: number
      while ((nl = buffered.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(buffered.slice(0, nl)) as LogLine)
        buffered = buffered.slice(nl + 1)
      }
      callback()
    }
  })
  const app = await buildApp(result.config, { logger: { level, stream } })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  await waitFor(() => app.balancer.pool.list().every(s => s.state !== 'unknown'), 'first health checks')
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, lines }
}

async function send (url: string, options: Parameters<typeof request>[1] = {}): Promise<{ status: number, id: string }> {
  const res = await request(url, options)
  await res.body.dump()
  return { status: res.statusCode, id: String(res.headers['x-request-id']) }
}

const accessLines = (lines: LogLine[]): LogLine[] => lines.filter(l => l.msg === 'request')

t.test('one info line per proxied request, with its fields; none for the gateway\'s own routes', async t => {
  const backends = await startBackends(t, 2)
  const gw = await loggedGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '4' }), 'info')
  const [b1, b2] = gw.app.balancer.pool.list().map(s => s.id) as [string, string]

  const ok = await send(`${gw.url}/orders/42?token=secret`, { headers: { 'x-request-id': 'trace-abc-1' } })
  t.equal(ok.status, 200)
  await send(`${gw.url}/echo`, { method: 'POST', body: 'payload' })
  for (const path of ['/healthz', '/readyz', '/metrics', '/admin/status', '/docs/json']) await send(`${gw.url}${path}`)
  await send(`${gw.url}/x`)
  await send(`${gw.url}/x`)
  const limited = await send(`${gw.url}/limited?q=1`)
  t.equal(limited.status, 429)
  await waitFor(() => accessLines(gw.lines).length >= 5, 'five access lines')
  await new Promise(resolve => setTimeout(resolve, 50))

  const access = accessLines(gw.lines)
  t.equal(access.length, 5, 'exactly one line per proxied request, none for /healthz, /readyz, /metrics, /admin, /docs')
  const first = access.find(l => l.reqId === 'trace-abc-1')
  t.ok(first, 'the line carries the request id')
  t.match(first, {
    level: 30,
    msg: 'request',
    method: 'GET',
    path: '/orders/42',
    status: 200,
    clientIp: '127.0.0.1',
    limited: false,
    retried: 0
  })
  t.ok(first!.upstream === b1 || first!.upstream === b2, `upstream is the server id (${first!.upstream})`)
  t.type(first!.durationMs, 'number')
  t.ok(first!.durationMs! >= 0 && first!.durationMs! < 5000, `durationMs ${first!.durationMs}`)
  t.notOk(JSON.stringify(first).includes('secret'), 'the query string is not logged')

  const post = access.find(l => l.method === 'POST')
  t.match(post, { path: '/echo', status: 200, limited: false })
  const refused = access.find(l => l.status === 429)
  t.match(refused, { reqId: limited.id, path: '/limited', upstream: null, limited: true, retried: 0 })
  t.same(access.map(l => Object.keys(l).filter(k => !['level', 'time', 'pid', 'hostname', 'msg'].includes(k)).sort()),
    Array(5).fill(['clientIp', 'durationMs', 'limited', 'method', 'path', 'reqId', 'retried', 'status', 'upstream']), 'the same fields on every line')
})

t.test('a retried request logs how many retries it took and the upstream that answered', async t => {
  const backends = await startBackends(t, 2)
  const gw = await loggedGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0' }), 'info')
  const live = gw.app.balancer.pool.list().find(s => s.url === backends[1]!.url)!.id
  await backends[0]!.stop()
  for (let i = 0; i < 4; i++) t.equal((await send(`${gw.url}/r`)).status, 200)
  await waitFor(() => accessLines(gw.lines).length >= 4, 'four access lines')
  const access = accessLines(gw.lines)
  t.ok(access.every(l => l.upstream === live), 'every answer came from the live upstream')
  const attempts = gw.app.balancer.pool.list().reduce((n, s) => n + s.totalRequests, 0)
  const retried = access.filter(l => l.retried === 1).length
  t.ok(retried >= 1, `${retried} request(s) went to the stopped upstream first and were retried once`)
  t.equal(retried, attempts - 4, 'the lines account for every extra attempt')
  t.ok(access.every(l => l.retried === 0 || l.retried === 1))
})

t.test('at LOG_LEVEL=warn no line is written per request', async t => {
  const backends = await startBackends(t, 1)
  const gw = await loggedGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '2' }), 'warn')
  for (let i = 0; i < 4; i++) await send(`${gw.url}/`)
  await waitFor(() => gw.app.telemetry.stats.snapshot().requests.total === 4, 'four requests recorded')
  gw.app.log.warn('marker')
  await waitFor(() => gw.lines.some(l => l.msg === 'marker'), 'the stream to receive a warn line')
  t.equal(accessLines(gw.lines).length, 0, 'no access lines')
  t.ok(gw.lines.every(l => l.level >= 40), 'nothing below warn')
})

t.test('the access line is byte for byte what pino writes for the same fields, escapes included', async t => {
  const captured: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { captured.push(line) } })
  const access = AccessLog.of(log)
  t.ok(access, 'a pino logger with a destination has an access log')
  const entries: AccessEntry[] = [
    { reqId: 'a1b2', method: 'GET', path: '/orders/42', status: 200, upstream: 'b52e7b55edbb', durationMs: 1.234, clientIp: '127.0.0.1', limited: false, retried: 0 },
    { reqId: 'quote"back\\slash', method: 'PURGE', path: '/caf\u00e9/\u{1F600}', status: 429, upstream: null, durationMs: 0, clientIp: 'spoofed"\\ip', limited: true, retried: 2 },
    { reqId: 'ctl\u0001\ttab', method: 'POST', path: '/latin1-\u00ff\u0080', status: 502, upstream: 'x', durationMs: 30000.5, clientIp: '2001:db8::', limited: false, retried: 1 }
  ]
  for (const entry of entries) {
    log.info(entry, 'request')
    access!.write(entry)
  }
  const withoutTime = (line: string): string => line.replace(/"time":\d+/, '"time":0')
  for (let i = 0; i < entries.length; i++) {
    t.equal(withoutTime(captured[2 * i + 1] as string), withoutTime(captured[2 * i] as string), `entry ${i}`)
  }
  captured.length = 0
  access!.write({ ...entries[0]!, path: '/lone\ud800surrogate' })
  t.equal((JSON.parse(captured[0] as string) as { path: string }).path, '/lone\ud800surrogate', 'well-formed JSON even for a lone surrogate (pino writes it raw)')
  t.equal(AccessLog.of(Fastify({ logger: false }).log), undefined, 'none for Fastify\'s logger: false')
})

t.test('into the gateway\'s log destination the line is written as bytes, still byte for byte what pino writes', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-access-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'access.log')
  const fd = openSync(file, 'w')
  t.teardown(() => { closeSync(fd) })
  const destination = logDestination(fd)
  // counts the lines that reach the destination as strings: pino's own, and the access lines the byte path leaves to the template
  let strings = 0
  const write = destination.write.bind(destination)
  destination.write = (line: string) => { strings++; return write(line) }
  const log = pino({ level: 'info' }, destination)
  const access = AccessLog.of(log)!
  const base: AccessEntry = { reqId: '0f8fad5b-d9cb-469f-a165-70867728950e', method: 'GET', path: '/orders/42', status: 200, upstream: 'b52e7b55edbb', durationMs: 1.234, clientIp: '127.0.0.1', limited: false, retried: 0 }
  const asBytes: AccessEntry[] = [
    base,
    { ...base, method: 'DELETE', status: 429, upstream: null, limited: true, durationMs: 0 },
    { ...base, status: 502, retried: 12, durationMs: 30000.5, clientIp: '2001:db8::1' },
    { ...base, path: `/${'p'.repeat(1023)}...`, durationMs: Number.NaN },
    { ...base, durationMs: Number.POSITIVE_INFINITY },
    ...[0.001, 0.01, 0.042, 0.1, 0.5, 1, 1.05, 1.005, 10, 99.999, 123456.789, 2147483.647].map(durationMs => ({ ...base, durationMs }))
  ]
  const asStrings: AccessEntry[] = [
    { ...base, reqId: 'quote"back\\slash' },
    { ...base, path: '/caf\u00e9' },
    { ...base, clientIp: 'tab\tip' },
    // numbers the bytes are not written for by hand: JavaScript's own printing decides
    { ...base, durationMs: 1.23456 },
    { ...base, durationMs: -1 },
    { ...base, durationMs: 1e22 }
  ]
  for (const entry of [...asBytes, ...asStrings]) {
    log.info(entry, 'request')
    const before = strings
    access.write(entry)
    t.equal(strings - before, asBytes.includes(entry) ? 0 : 1, `${asBytes.includes(entry) ? 'bytes' : 'a string'} for ${JSON.stringify(entry)}`)
  }
  destination.flushSync()
  const lines = readFileSync(file, 'utf8').split('\n')
  t.equal(lines.length, 2 * (asBytes.length + asStrings.length) + 1, 'one line each, then the final newline')
  const withoutTime = (line: string): string => line.replace(/"time":\d+/, '"time":0')
  for (let i = 0; i < asBytes.length + asStrings.length; i++) {
    t.equal(withoutTime(lines[2 * i + 1] as string), withoutTime(lines[2 * i] as string), `entry ${i}`)
    const pinoTime = (JSON.parse(lines[2 * i] as string) as { time: number }).time
    const accessTime = (JSON.parse(lines[2 * i + 1] as string) as { time: number }).time
    t.ok(accessTime >= pinoTime && accessTime - pinoTime < 1000, `entry ${i}: the time of its write`)
  }
})

t.test('the gateway writes its access lines without pino\'s serialiser when its logger has a destination', async t => {
  const backends = await startBackends(t, 1)
  const gw = await loggedGateway(t, upstreamsEnv(backends), 'info')
  t.ok(AccessLog.of(gw.app.log), 'the logger Fastify built from the options is one AccessLog can write to')
})

t.test('a long path is cut in the access line, so the line stays under a pipe\'s atomic write (4 KiB)', async t => {
  const backends = await startBackends(t, 1)
  const gw = await loggedGateway(t, upstreamsEnv(backends), 'info')
  await send(`${gw.url}/${'p'.repeat(6000)}?q=1`)
  await waitFor(() => accessLines(gw.lines).length >= 1, 'the access line')
  const [line] = accessLines(gw.lines)
  t.equal(line!.path, `/${'p'.repeat(1023)}...`, 'the first 1024 characters, then ...')
  t.ok(Buffer.byteLength(JSON.stringify(line)) < 4096)
})

import t from 'tap'
import { request } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

// A strict reader of the Prometheus text exposition format 0.0.4

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

interface Family {
  name: string
  help: string | undefined
  type: string | undefined
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] }

function parseValue (text: string): number {
  // what Go's strconv.ParseFloat (Prometheus's parser) accepts, case-insensitively
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity
  if (/^-inf(inity)?$/i.test(text)) return -Infinity
  if (/^nan$/i.test(text)) return NaN
  const value = Number(text)
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${text}`)
  return value
}

function parseLabels (text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq === -1) throw new Error(`bad labels in: ${line}`)
    const name = text.slice(i, eq)
    if (!NAME.test(name) || text[eq + 1] !== '"') throw new Error(`bad label name or quote in: ${line}`)
    let j = eq + 2
    let value = ''
    for (;;) {
      const c = text[j]
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`)
      if (c === '"') break
      if (c === '\\') {
        const next = text[j + 1]
        if (next === 'n') value += '\n'
        else if (next === '\\' || next === '"') value += next
        else throw new Error(`bad escape in: ${line}`)
        j += 2
        continue
      }
      value += c
      j++
    }
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`)
    labels[name] = value
    i = j + 1
    if (text[i] === ',') i++
    else if (i !== text.length) throw new Error(`bad label separator in: ${line}`)
  }
  return labels
}

/** Parses the text; throws on any line that is not valid exposition format. */
function parseExposition (text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, help: undefined, type: undefined, samples: [] }
      families.set(name, f)
    }
    return f
  }
  let current: Family | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
      if (m === null) continue // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      current = family(name)
      if (kind === 'HELP') current.help = rest
      else {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`bad type in: ${line}`)
        current.type = rest
      }
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string]
    const owner = current !== undefined && (name === current.name || (SUFFIXES[current.type ?? '']?.some(s => name === current!.name + s) ?? false))
      ? current
      : undefined
    if (owner === undefined) throw new Error(`sample ${name} outside its family (no HELP/TYPE before it)`)
    owner.samples.push({ name, labels: parseLabels(labelText ?? '', line), value: parseValue(valueText) })
  }
  return families
}

/** Sum of the samples named `name` whose labels include `match`. */
function sumOf (families: Map<string, Family>, name: string, match: Record<string, string> = {}): number {
  let sum = 0
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value
    }
  }
  return sum
}

/** The samples named `name`. */
function samplesOf (families: Map<string, Family>, name: string): Sample[] {
  return [...families.values()].flatMap(f => f.samples.filter(s => s.name === name))
}

async function send (url: string, options: Parameters<typeof request>[1] = {}): Promise<number> {
  const res = await request(url, options)
  await res.body.dump()
  return res.statusCode
}

async function scrape (gw: Gateway): Promise<Map<string, Family>> {
  const res = await request(`${gw.adminUrl}/metrics`)
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return parseExposition(await res.body.text())
}

const idOf = (gw: Gateway, url: string): string => gw.app.balancer.pool.list().find(s => s.url === url)!.id

t.test('requests are counted by upstream, method and status class; the histogram counts the same; the own routes are not counted', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  for (let i = 0; i < 6; i++) t.equal(await send(`${gw.url}/`), 200)
  for (let i = 0; i < 2; i++) t.equal(await send(`${gw.url}/echo`, { method: 'POST', body: 'hi' }), 200)
  for (let i = 0; i < 3; i++) t.equal(await send(`${gw.url}/?status=404`), 404)
  t.equal(await send(`${gw.url}/?status=503`), 503)
  t.equal(await send(`${gw.url}/`, { method: 'DELETE' }), 200)
  await send(`${gw.url}/healthz`)
  await send(`${gw.url}/admin/status`)
  await scrape(gw)

  const m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_requests_total'), 13, 'every proxied request, none of /healthz, /admin or /metrics')
  t.equal(sumOf(m, 'sluice_requests_total', { method: 'GET', status_class: '2xx' }), 6)
  t.equal(sumOf(m, 'sluice_requests_total', { method: 'POST', status_class: '2xx' }), 2)
  t.equal(sumOf(m, 'sluice_requests_total', { method: 'DELETE', status_class: '2xx' }), 1)
  t.equal(sumOf(m, 'sluice_requests_total', { method: 'GET', status_class: '4xx' }), 3)
  t.equal(sumOf(m, 'sluice_requests_total', { method: 'GET', status_class: '5xx' }), 1)
  for (const server of gw.app.balancer.pool.list()) {
    t.equal(sumOf(m, 'sluice_requests_total', { upstream: server.id }), server.totalRequests, `upstream ${server.id} counts what it served`)
    t.ok(server.totalRequests > 0)
  }
  t.equal(sumOf(m, 'sluice_request_duration_seconds_count', { status_class: '2xx' }), 9)
  t.equal(sumOf(m, 'sluice_request_duration_seconds_count', { status_class: '4xx' }), 3)
  t.equal(sumOf(m, 'sluice_request_duration_seconds_count', { status_class: '5xx' }), 1)
  t.equal(sumOf(m, 'sluice_request_duration_seconds_bucket', { status_class: '2xx', le: '+Inf' }), 9)
  const sum = sumOf(m, 'sluice_request_duration_seconds_sum')
  t.ok(sum > 0 && sum < 13 * 5, `durations are in seconds (${sum})`)
  t.equal(sumOf(m, 'sluice_retries_total'), 0)
  t.equal(sumOf(m, 'sluice_rate_limited_total'), 0)

  // the registry's JSON view (prom-client's `get`) agrees with the text
  const json = await gw.app.telemetry.registry.getMetricsAsJSON()
  const histogram = json.find(f => f.name === 'sluice_request_duration_seconds')
  t.equal(histogram?.type, 'histogram')
  const counts = histogram?.values.filter(v => (v as { metricName?: string }).metricName === 'sluice_request_duration_seconds_count')
  t.same(counts?.map(v => [v.labels.status_class, v.value]), [['2xx', 9], ['4xx', 3], ['5xx', 1]])
})

t.test('the in-flight gauge follows a slow request and drops back to 0; the healthy gauge follows the checks', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const slow = request(`${gw.url}/?delay=400`)
  await waitFor(async () => sumOf(await scrape(gw), 'sluice_upstream_in_flight') === 1, 'one request in flight')
  const res = await slow
  await res.body.dump()
  await waitFor(async () => {
    const m = await scrape(gw)
    return samplesOf(m, 'sluice_upstream_in_flight').length === 2 && sumOf(m, 'sluice_upstream_in_flight') === 0
  }, 'in-flight back to 0')

  const m = await scrape(gw)
  t.same(samplesOf(m, 'sluice_upstream_healthy').map(s => s.value), [1, 1])
  backends[1]!.behaviour.healthy = false
  const sick = idOf(gw, backends[1]!.url)
  await waitFor(async () => sumOf(await scrape(gw), 'sluice_upstream_healthy', { upstream: sick }) === 0, 'b2 reported unhealthy', 5000, 50)
  t.equal(sumOf(await scrape(gw), 'sluice_upstream_healthy', { upstream: idOf(gw, backends[0]!.url) }), 1)
})

t.test('health-check results are counted by upstream and result', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const [a, b] = [idOf(gw, backends[0]!.url), idOf(gw, backends[1]!.url)]
  let m = await scrape(gw)
  t.ok(sumOf(m, 'sluice_health_checks_total', { upstream: a, result: 'success' }) >= 1, 'the first check of b1 counted')
  t.ok(sumOf(m, 'sluice_health_checks_total', { upstream: b, result: 'success' }) >= 1, 'the first check of b2 counted')
  t.equal(sumOf(m, 'sluice_health_checks_total', { result: 'failure' }), 0)
  backends[1]!.behaviour.healthy = false
  await waitFor(async () => sumOf(await scrape(gw), 'sluice_health_checks_total', { upstream: b, result: 'failure' }) >= 2, 'failed checks of b2', 5000, 50)
  m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_health_checks_total', { upstream: a, result: 'failure' }), 0, 'b1 never failed')
  const before = sumOf(m, 'sluice_health_checks_total', { upstream: a, result: 'success' })
  await waitFor(async () => sumOf(await scrape(gw), 'sluice_health_checks_total', { upstream: a, result: 'success' }) > before, 'b1 checked again', 5000, 50)
})

t.test('429s are counted in sluice_rate_limited_total and under upstream "none"', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT_MAX: '3' }))
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push(await send(`${gw.url}/`))
  t.same(statuses, [200, 200, 200, 429, 429])
  const m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_rate_limited_total'), 2)
  t.equal(sumOf(m, 'sluice_requests_total', { upstream: 'none', status_class: '4xx' }), 2)
  t.equal(sumOf(m, 'sluice_requests_total', { upstream: idOf(gw, backends[0]!.url), status_class: '2xx' }), 3)
})

t.test('retries are counted, one per extra attempt on another upstream', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0' }))
  await backends[0]!.stop()
  for (let i = 0; i < 9; i++) t.equal(await send(`${gw.url}/`), 200)
  const attempts = gw.app.balancer.pool.list().reduce((n, s) => n + s.totalRequests, 0)
  const m = await scrape(gw)
  t.ok(attempts > 9, `some requests hit the stopped upstream (${attempts} attempts)`)
  t.equal(sumOf(m, 'sluice_retries_total'), attempts - 9, 'every attempt after the first is a retry')
  t.equal(sumOf(m, 'sluice_requests_total', { status_class: '2xx' }), 9, 'a retried request is counted once')
})

t.test('a request that could not be retried anywhere counts no retry; one that was counts each', async t => {
  const backends = await startBackends(t, 3)
  const gw = await startGateway(t, upstreamsEnv(backends, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0', RETRIES: '1' }))
  for (const b of backends) await b.stop()
  t.equal(await send(`${gw.url}/`), 502)
  let m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_retries_total'), 1, 'RETRIES=1: one retry, then 502')
  t.equal(sumOf(m, 'sluice_requests_total', { status_class: '5xx' }), 1)

  const lone = await startBackends(t, 1)
  const gw1 = await startGateway(t, upstreamsEnv(lone, { HEALTH_CHECK_INTERVAL: '0', PASSIVE_FAILURE_THRESHOLD: '0', RETRIES: '2' }))
  await lone[0]!.stop()
  t.equal(await send(`${gw1.url}/`), 502)
  m = await scrape(gw1)
  t.equal(sumOf(m, 'sluice_retries_total'), 0, 'no other upstream: nothing was retried')
  t.equal(sumOf(m, 'sluice_requests_total', { upstream: idOf(gw1, lone[0]!.url), status_class: '5xx' }), 1, 'the 502 is the failed upstream\'s')
})

t.test('the limiter gauges and counters follow a Redis outage', async t => {
  const redis = await startRedis(t)
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { REDIS_URL: redis.url, KEY_PREFIX: 'telemetry:', REDIS_TIMEOUT: '100ms' }))
  await waitFor(() => !gw.app.limiter.degraded, 'the limiter to reach Redis')
  t.equal(await send(`${gw.url}/`), 200)
  let m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_limiter_degraded'), 0)
  t.equal(sumOf(m, 'sluice_redis_outages_total'), 0)
  t.equal(sumOf(m, 'sluice_limiter_fallbacks_total'), 0)

  await redis.kill('SIGKILL')
  await waitFor(async () => {
    await send(`${gw.url}/`)
    return sumOf(await scrape(gw), 'sluice_limiter_degraded') === 1
  }, 'the degraded gauge', 5000, 50)
  t.equal(await send(`${gw.url}/`), 200, 'still served (policy local)')
  m = await scrape(gw)
  t.equal(sumOf(m, 'sluice_redis_outages_total'), 1, 'one outage')
  t.ok(sumOf(m, 'sluice_limiter_fallbacks_total') >= 1, 'decisions made without Redis are counted')
  t.equal(sumOf(m, 'sluice_limiter_fallbacks_total'), gw.app.limiter.stats.fallbacks)
})

t.test('the text is valid exposition format; no label value holds a path or an IP', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends, { TRUST_PROXY: 'true', RATE_LIMIT_MAX: '4' }))
  for (let i = 0; i < 6; i++) {
    await send(`${gw.url}/users/12345/orders?token=secret${i}`, { headers: { 'x-forwarded-for': '203.0.113.7' } })
  }
  await send(`${gw.url}/v1/items`, { method: 'PUT', body: '{}', headers: { 'x-forwarded-for': '2001:db8::1' } })

  const res = await request(`${gw.adminUrl}/metrics`)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const text = await res.body.text()
  let families = new Map<string, Family>()
  t.doesNotThrow(() => { families = parseExposition(text) }, 'every line parses')

  const expected: Record<string, string> = {
    sluice_requests_total: 'counter',
    sluice_request_duration_seconds: 'histogram',
    sluice_upstream_in_flight: 'gauge',
    sluice_upstream_healthy: 'gauge',
    sluice_retries_total: 'counter',
    sluice_health_checks_total: 'counter',
    sluice_rate_limited_total: 'counter',
    sluice_limiter_degraded: 'gauge',
    sluice_limiter_fallbacks_total: 'counter',
    sluice_redis_outages_total: 'counter',
    sluice_client_errors_total: 'counter'
  }
  for (const [name, type] of Object.entries(expected)) t.equal(families.get(name)?.type, type, `${name} is a ${type}`)
  const own = [...families.values()].filter(f => f.name.startsWith('sluice_'))
  t.equal(own.length, Object.keys(expected).length, 'no other sluice_ family')
  for (const f of own) {
    t.ok(f.help !== undefined && f.help.length > 10, `${f.name} has HELP`)
    t.ok(f.type !== undefined, `${f.name} has TYPE`)
    t.ok(f.samples.length > 0 && f.samples.every(s => Number.isFinite(s.value) || s.labels.le === '+Inf'), `${f.name} has finite samples`)
  }
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(families.has(name), `process default ${name} under its standard name`)
  }
  t.equal(sumOf(families, 'sluice_rate_limited_total'), 2)

  const values = own.flatMap(f => f.samples.flatMap(s => Object.values(s.labels)))
  t.ok(values.length > 20, `${values.length} label values checked`)
  const ipv4 = /\b\d{1,3}(\.\d{1,3}){3}\b/
  const ipv6 = /[0-9a-f]{0,4}:[0-9a-f]{0,4}:/i
  for (const value of new Set(values)) {
    t.notOk(value.includes('/') || value.includes('users') || value.includes('token') || value.includes('items'), `no path in "${value}"`)
    t.notOk(ipv4.test(value) || ipv6.test(value), `no IP in "${value}"`)
  }
  t.notOk(text.includes('203.0.113.7') || text.includes('2001:db8') || text.includes('127.0.0.1'), 'no client or upstream address anywhere')
})

t.test('a removed server disappears from the gauges, and from the counters once they were read', async t => {
  const backends = await startBackends(t, 2)
  const gw = await startGateway(t, upstreamsEnv(backends))
  for (let i = 0; i < 4; i++) await send(`${gw.url}/`)
  const gone = idOf(gw, backends[1]!.url)
  t.equal(await send(`${gw.adminUrl}/admin/servers/${gone}`, { method: 'DELETE' }), 202)
  await waitFor(() => gw.app.balancer.pool.get(gone) === undefined, 'the server to leave')
  let m = await scrape(gw)
  t.same(samplesOf(m, 'sluice_upstream_in_flight').map(s => s.labels.upstream), [idOf(gw, backends[0]!.url)])
  t.same(samplesOf(m, 'sluice_upstream_healthy').map(s => s.labels.upstream), [idOf(gw, backends[0]!.url)])
  t.equal(sumOf(m, 'sluice_requests_total', { upstream: gone }), 2, 'its final count is read once')
  m = await scrape(gw)
  t.equal(samplesOf(m, 'sluice_requests_total').filter(s => s.labels.upstream === gone).length, 0, 'then its series is gone')
  t.equal(samplesOf(m, 'sluice_health_checks_total').filter(s => s.labels.upstream === gone).length, 0)
  t.equal(sumOf(m, 'sluice_requests_total'), 2, 'the remaining server\'s count is kept')
})

t.test('with ADMIN_PORT, /metrics is served on the admin listener only, over the gateway\'s counters', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { ADMIN_PORT: String(await freePort()) }))
  t.not(gw.adminUrl, gw.url)
  for (let i = 0; i < 3; i++) await send(`${gw.url}/`)
  t.equal(await send(`${gw.url}/metrics`), 404, 'not on the public port')
  t.equal(backends[0]!.hits.get('/metrics'), undefined, 'and not proxied')
  t.equal(sumOf(await scrape(gw), 'sluice_requests_total'), 3)
  const status = await request(`${gw.adminUrl}/admin/status`)
  t.equal(status.statusCode, 200)
  t.equal(((await status.body.json()) as { requests: { total: number } }).requests.total, 3)
})

t.test('the OpenAPI document lists /metrics (tag metrics) and /admin/status (tag admin, with its schema)', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends))
  const doc = await (await request(`${gw.adminUrl}/docs/json`)).body.json() as {
    paths: Record<string, { get?: { tags?: string[], responses?: Record<string, { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> }> } }>
  }
  t.same(doc.paths['/metrics']?.get?.tags, ['metrics'])
  t.ok(doc.paths['/metrics']?.get?.responses?.['200']?.content?.['text/plain; version=0.0.4; charset=utf-8'], 'documented as Prometheus text')
  const status = doc.paths['/admin/status']?.get
  t.same(status?.tags, ['admin'])
  const schema = status?.responses?.['200']?.content?.['application/json']?.schema
  t.same(Object.keys(schema?.properties ?? {}).sort(), ['latencyMs', 'limiter', 'requests', 'servers', 'statusCodes', 'uptimeSeconds'])
})

import t from 'tap'
import { readFileSync } from 'node:fs'
import { request } from 'undici'
import WebSocket from 'ws'
import { startBackends } from '../helpers/backends.js'
import { runLoad, summary, type LoadResult } from '../helpers/load.js'
import { spawnServer } from '../helpers/process.js'
import { freePort } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

// Scenario 7, soak: the built gateway, spawned, under a mixed load for SOAK_SECONDS (default 60):
// GETs and small POSTs from clients that stay under their budget, clients far over theirs (429s),
// and WebSocket sessions opened, echoed and closed, with its memory sampled every 2 s. Nothing may
// be lost or fail, only the over-budget clients may see 429s, every in-flight counter must return
// to 0, and the heap must not trend upwards.
//
// Heap used is a sawtooth: garbage piles up until V8 collects it, and an idle process may not
// collect for a long time. So each sample first asks for a full collection through the inspector
// (the gateway runs with --inspect on a random loopback port) and then reads
// nodejs_heap_size_used_bytes from /metrics: what remains is what the gateway keeps alive.

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 60)
// under 30 s, the second half is too short for a slope and still has the warm-up in it
if (!Number.isInteger(SOAK_SECONDS) || SOAK_SECONDS < 30 || SOAK_SECONDS > 600) {
  throw new Error(`SOAK_SECONDS=${String(process.env.SOAK_SECONDS)} must be an integer 30..600`)
}
const SAMPLE_MS = 2000
/** The budget of every client per window. */
const MAX = 50
const WINDOW_S = 10
/** Requests per key of the under-budget clients, in their whole life: always under MAX. */
const PER_KEY = 25
const LIMITED_KEYS = 2
/**
 * Live-heap growth allowed over the second half of the run, per HTTP request served. A deliberate
 * leak of 1 KB per request (a preloaded module keeping 120 numbers per request) measured
 * 1283 B/request and failed this; the gateway measures 3 B/request over 60 s, and the slope's noise
 * (the requests in flight at each sample are live too) is about ±50 B/request over 30 s at 700/s.
 */
const SLOPE_BOUND_BYTES_PER_REQUEST = 250
/**
 * The live heap after the run may exceed the one a quarter in by this much (or 25 %, if more): it
 * measures the same ±1 MB, and the 1 KB/request leak added 164 MB.
 */
const END_GROWTH_BOUND_BYTES = 12 * 1024 * 1024
/**
 * RSS after the run may exceed the one a quarter in by this much: loose (RSS follows V8's and the
 * allocator's policies), but it sees what the heap does not, such as Buffers kept per request.
 */
const RSS_GROWTH_BOUND_BYTES = 64 * 1024 * 1024

// the run, plus start-up, settling and teardown on a loaded machine
t.setTimeout((SOAK_SECONDS + 60) * 1000)

const MB = 1024 * 1024
const mb = (bytes: number): string => `${(bytes / MB).toFixed(1)} MB`
const sleep = async (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

interface Sample {
  /** Seconds since the load started. */
  at: number
  rssBytes: number
  /** nodejs_heap_size_used_bytes as it was (garbage included). */
  heapBytes: number
  /** The same right after a full collection: the live heap. */
  liveHeapBytes: number
  inFlight: number
}

/** A Prometheus family summed over its labels; throws when /metrics lacks it. */
function metric (text: string, name: string): number {
  let sum = 0
  let found = false
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    found = true
  }
  if (!found) throw new Error(`no ${name} in /metrics`)
  return sum
}

/** Every series of a family, by its label set. */
function series (text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`)) out[line.slice(name.length, line.lastIndexOf(' '))] = Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return out
}

async function scrape (url: string): Promise<string> {
  const res = await request(`${url}/metrics`)
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`)
  return res.body.text()
}

/** RSS of a process as the kernel counts it (/proc/<pid>/status VmRSS). */
function rssOf (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1]) * 1024
}

/** Least-squares slope of y over x. */
function slope (points: Array<[number, number]>): number {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** A DevTools protocol session on a process's inspector, enough to ask for a full GC. */
async function inspector (endpoint: string): Promise<{ collectGarbage: () => Promise<void>, close: () => void }> {
  const socket = new WebSocket(endpoint)
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  let id = 0
  const pending = new Map<number, (reply: { error?: { message: string } }) => void>()
  socket.on('message', data => {
    const reply = JSON.parse(String(data)) as { id?: number, error?: { message: string } }
    if (reply.id !== undefined) pending.get(reply.id)?.(reply)
  })
  const send = async (method: string): Promise<void> => {
    const reply = await new Promise<{ error?: { message: string } }>(resolve => {
      pending.set(++id, resolve)
      socket.send(JSON.stringify({ id, method }))
    })
    if (reply.error !== undefined) throw new Error(`${method}: ${reply.error.message}`)
  }
  return { collectGarbage: async () => send('HeapProfiler.collectGarbage'), close: () => socket.close() }
}

interface WsStats { sessions: number, messages: number, failures: string[] }

/** One WebSocket session: open, read the greeting, echo 5 messages, close. Throws on anything else. */
async function wsSession (wsUrl: string, path: string, client: string, stats: WsStats): Promise<void> {
  // a client key of its own: upgrades are counted by the limiter too, and must stay under budget
  const socket = new WebSocket(`${wsUrl}${path}`, { headers: { 'x-client': client } })
  const received: string[] = []
  let broken: Error | undefined
  let wake = (): void => {}
  const woken = (): void => { const w = wake; wake = () => {}; w() }
  socket.on('message', data => { received.push(String(data)); woken() })
  socket.on('unexpected-response', (_req, res) => { broken ??= new Error(`upgrade answered ${String(res.statusCode)}`); woken() })
  // an error or an early close ends the session, never the test process
  socket.on('error', err => { broken ??= err; woken() })
  socket.on('close', () => { broken ??= new Error('closed early'); woken() })
  const until = async (ready: () => boolean, what: string): Promise<void> => {
    const timer = setTimeout(() => { broken ??= new Error(`no ${what} within 10 s`); woken() }, 10_000)
    const failed = (): Error | undefined => broken
    while (!ready() && failed() === undefined) await new Promise<void>(resolve => { wake = resolve })
    clearTimeout(timer)
    if (!ready()) throw failed() ?? new Error(`no ${what}`)
  }
  const next = async (): Promise<string> => {
    await until(() => received.length > 0, 'message')
    return received.shift() as string
  }
  try {
    await until(() => socket.readyState === WebSocket.OPEN, 'open')
    const greeting = JSON.parse(await next()) as { server: string, path: string }
    if (greeting.path !== path) throw new Error(`greeting for ${greeting.path}, expected ${path}`)
    for (let m = 0; m < 5; m++) {
      const text = `${path} message ${m} ${'x'.repeat(64)}`
      socket.send(text)
      const echo = await next()
      if (echo !== text) throw new Error(`echo ${JSON.stringify(echo.slice(0, 40))} for ${JSON.stringify(text.slice(0, 40))}`)
      stats.messages++
    }
    broken = undefined
    socket.close(1000)
    await until(() => socket.readyState === WebSocket.CLOSED, 'close')
    stats.sessions++
  } catch (err) {
    socket.terminate()
    throw err
  }
}

/** WebSocket sessions one after another until the deadline, failures recorded. */
async function wsSessions (wsUrl: string, deadline: number, worker: number, stats: WsStats): Promise<void> {
  for (let n = 0; performance.now() < deadline; n++) {
    const path = `/ws/${worker}/${n}`
    try {
      await wsSession(wsUrl, path, `ws-${worker}-${n}`, stats)
    } catch (err) {
      stats.failures.push(`${path}: ${(err as Error).message}`)
    }
    await sleep(50)
  }
}

const transportErrors = (r: LoadResult): number => Object.values(r.errors).reduce((a, b) => a + b, 0)
const count = (r: LoadResult, status: number): number => r.statuses[status] ?? 0

t.test(`soak: ${SOAK_SECONDS} s of mixed traffic through the built gateway`, async t => {
  const backends = await startBackends(t, 3)
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const server = spawnServer(t, {
    PORT: String(port),
    HOST: '127.0.0.1',
    UPSTREAMS: backends.map(b => b.url).join(','),
    // warn: no access line per request (it would only pile up in the pipe this test reads)
    LOG_LEVEL: 'warn',
    HEALTH_CHECK_INTERVAL: '1s',
    RATE_LIMIT_KEY: 'header:x-client',
    RATE_LIMIT_MAX: String(MAX),
    RATE_LIMIT_WINDOW: `${WINDOW_S}s`,
    // loopback only, port chosen by the kernel: used to ask for full collections
    NODE_OPTIONS: '--inspect=127.0.0.1:0'
  }, t.testdir())
  const pid = server.child.pid as number
  await waitFor(() => /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.test(server.stderr()), 'the inspector to listen', 20_000, 50)
  const gc = await inspector(/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(server.stderr())![0])
  t.teardown(gc.close)
  await waitFor(async () => {
    try {
      const res = await request(`${url}/readyz`)
      await res.body.dump()
      return res.statusCode === 200
    } catch {
      return false
    }
  }, 'the gateway to be ready', 20_000, 100)

  let started = performance.now()
  const samples: Sample[] = []
  const sample = async (): Promise<Sample> => {
    const before = await scrape(url)
    await gc.collectGarbage()
    const after = await scrape(url)
    const s: Sample = {
      at: (performance.now() - started) / 1000,
      rssBytes: rssOf(pid),
      heapBytes: metric(before, 'nodejs_heap_size_used_bytes'),
      liveHeapBytes: metric(after, 'nodejs_heap_size_used_bytes'),
      inFlight: metric(after, 'sluice_upstream_in_flight')
    }
    samples.push(s)
    return s
  }
  const first = await sample()

  started = performance.now()
  const durationMs = SOAK_SECONDS * 1000
  const deadline = started + durationMs
  let sampling = true
  const sampler = (async () => {
    for (;;) {
      await sleep(SAMPLE_MS)
      if (!sampling) return
      await sample()
    }
  })()

  const body = JSON.stringify({ order: 42, items: ['a', 'b', 'c'], note: 'x'.repeat(128) })
  const ws: WsStats = { sessions: 0, messages: 0, failures: [] }
  const wsUrl = url.replace('http:', 'ws:')
  const [gets, posts, limited] = await Promise.all([
    runLoad({ url, concurrency: 6, durationMs, next: i => ({ path: `/items/${i % 100}?page=${i}`, headers: { 'x-client': `get-${Math.floor(i / PER_KEY)}` } }) }),
    runLoad({
      url,
      concurrency: 3,
      durationMs,
      next: i => ({ path: '/echo', method: 'POST', headers: { 'x-client': `post-${Math.floor(i / PER_KEY)}`, 'content-type': 'application/json' }, body })
    }),
    // far over budget: two keys sharing two workers
    runLoad({ url, concurrency: 2, durationMs, next: i => ({ path: '/limited', headers: { 'x-client': `limited-${i % LIMITED_KEYS}` } }) }),
    Promise.all([0, 1].map(async w => wsSessions(wsUrl, deadline, w, ws)))
  ])
  const elapsedS = (performance.now() - started) / 1000
  sampling = false
  await sampler

  // settled: nothing in flight, the health checks' and limiter's timers idle along
  await waitFor(async () => metric(await scrape(url), 'sluice_upstream_in_flight') === 0, 'in-flight to return to 0', 10_000, 100)
  await sleep(3000)
  const settled = await sample()
  const metricsText = await scrape(url)

  const http = [gets, posts, limited]
  const served = gets.completed + posts.completed + limited.completed
  const rps = served / elapsedS
  const p99 = Math.max(...http.map(r => r.latency.percentiles([0.99])[0] ?? 0))
  const during = samples.filter(s => s.at > 0 && s.at <= elapsedS)
  const quarter = during.reduce((best, s) => Math.abs(s.at - elapsedS / 4) < Math.abs(best.at - elapsedS / 4) ? s : best, during[0]!)
  const secondHalf = during.filter(s => s.at >= elapsedS / 2)
  const liveSlope = slope(secondHalf.map(s => [s.at, s.liveHeapBytes]))
  const rawSlope = slope(secondHalf.map(s => [s.at, s.heapBytes]))

  t.comment(`FIGURE soak get: ${summary(gets)}`)
  t.comment(`FIGURE soak post: ${summary(posts)}`)
  t.comment(`FIGURE soak limited: ${summary(limited)}`)
  t.comment(`FIGURE soak ws: ${ws.sessions} sessions, ${ws.messages} messages echoed, ${ws.failures.length} failed`)
  t.comment(`FIGURE soak: ${served} HTTP requests in ${elapsedS.toFixed(1)} s (${rps.toFixed(0)}/s), ` +
    `${http.reduce((n, r) => n + transportErrors(r), 0)} transport errors, p99 ${p99.toFixed(1)} ms; ` +
    `RSS start ${mb(first.rssBytes)} 25% ${mb(quarter.rssBytes)} end ${mb(settled.rssBytes)}; ` +
    `live heap start ${mb(first.liveHeapBytes)} 25% ${mb(quarter.liveHeapBytes)} end ${mb(settled.liveHeapBytes)}; ` +
    `heap used (uncollected) start ${mb(first.heapBytes)} 25% ${mb(quarter.heapBytes)} end ${mb(settled.heapBytes)} max ${mb(Math.max(...during.map(s => s.heapBytes)))}; ` +
    `second-half slope live ${(liveSlope / 1024).toFixed(1)} KB/s = ${(liveSlope / rps).toFixed(1)} B/request, uncollected ${(rawSlope / 1024).toFixed(1)} KB/s`)
  // the last one was taken after the run, settled
  for (const s of samples) {
    t.comment(`sample ${s.at.toFixed(1)} s: rss ${mb(s.rssBytes)} heap ${mb(s.heapBytes)} live ${mb(s.liveHeapBytes)} in-flight ${s.inFlight}`)
  }

  t.test('nothing failed: no transport errors, no 5xx, no failed WebSocket session', async t => {
    for (const [kind, r] of Object.entries({ gets, posts, limited })) {
      t.same(r.errors, {}, `${kind}: no transport errors`)
      t.same(Object.keys(r.statuses).filter(s => Number(s) >= 500), [], `${kind}: no 5xx`)
      t.ok(r.completed > 0, `${kind}: ${r.completed} answered`)
    }
    t.same(ws.failures, [], 'every WebSocket session opened, echoed and closed')
    t.ok(ws.sessions > 0, `${ws.sessions} WebSocket sessions`)
  })

  t.test('429s only for the clients over budget, who got their budget and no more', async t => {
    t.same(Object.keys(gets.statuses), ['200'], 'under-budget GETs: all 200')
    t.same(Object.keys(posts.statuses), ['200'], 'under-budget POSTs: all 200')
    t.same(Object.keys(limited.statuses).sort(), ['200', '429'], 'over-budget clients: 200s and 429s only')
    // a sliding window admits at most max + max·L/W over any interval L (README, "Sliding window bound")
    const bound = LIMITED_KEYS * MAX * (1 + Math.ceil(limited.elapsedMs / 1000 + 1) / WINDOW_S)
    t.ok(count(limited, 200) <= bound, `over-budget clients admitted ${count(limited, 200)} times, at most ${bound}`)
    t.ok(count(limited, 200) >= LIMITED_KEYS * MAX, `and at least their first window's budget (${LIMITED_KEYS * MAX})`)
    t.equal(metric(metricsText, 'sluice_rate_limited_total'), count(limited, 429), 'the gateway counted every 429 it sent')
  })

  t.test('nothing lost: every answer the gateway counted, every admitted request reached an upstream', async t => {
    const answered = series(metricsText, 'sluice_requests_total')
    const byClass = (cls: string): number => Object.entries(answered).filter(([labels]) => labels.includes(`status_class="${cls}"`)).reduce((a, [, n]) => a + n, 0)
    t.equal(byClass('2xx'), served - count(limited, 429), 'sluice_requests_total{status_class="2xx"} = 200s received')
    // README, Metrics: "Not counted or logged: ... WebSocket upgrades"
    t.equal(byClass('4xx'), count(limited, 429), 'sluice_requests_total{status_class="4xx"} = 429s received: WebSocket sessions are not counted')
    t.equal(metric(metricsText, 'sluice_requests_total'), served, 'sluice_requests_total = HTTP answers received')
    // the demo upstream counts every request but WebSocket upgrades; health checks left out
    const reached = backends.reduce((n, b) => n + [...b.hits].filter(([path]) => path !== '/health').reduce((a, [, c]) => a + c, 0), 0)
    t.equal(reached, served - count(limited, 429), 'upstream hits = requests admitted')
  })

  t.test('every in-flight counter back to 0', async t => {
    const inFlight = series(metricsText, 'sluice_upstream_in_flight')
    t.equal(Object.keys(inFlight).length, backends.length, 'one gauge per upstream')
    t.same(Object.values(inFlight), backends.map(() => 0), 'sluice_upstream_in_flight')
    const status = await request(`${url}/admin/status`)
    const servers = (await status.body.json() as { servers: Array<{ inFlight: number, state: string }> }).servers
    t.same(servers.map(s => [s.state, s.inFlight]), backends.map(() => ['healthy', 0]), 'GET /admin/status: every server healthy, none in flight')
  })

  t.test('no memory growth trend', async t => {
    t.ok(secondHalf.length >= 5, `${secondHalf.length} samples in the second half`)
    t.ok(liveSlope / rps < SLOPE_BOUND_BYTES_PER_REQUEST,
      `live heap over the second half grows ${(liveSlope / rps).toFixed(1)} B/request (${(liveSlope / 1024).toFixed(1)} KB/s), under ${SLOPE_BOUND_BYTES_PER_REQUEST}`)
    const allowed = Math.max(END_GROWTH_BOUND_BYTES, quarter.liveHeapBytes / 4)
    t.ok(settled.liveHeapBytes - quarter.liveHeapBytes < allowed,
      `live heap after the run ${mb(settled.liveHeapBytes)}, a quarter in ${mb(quarter.liveHeapBytes)}: grew less than ${mb(allowed)}`)
    t.ok(settled.rssBytes - quarter.rssBytes < RSS_GROWTH_BOUND_BYTES,
      `RSS after the run ${mb(settled.rssBytes)}, a quarter in ${mb(quarter.rssBytes)}: grew less than ${mb(RSS_GROWTH_BOUND_BYTES)}`)
  })
})

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, release, tmpdir, totalmem, type as osType } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import {
  canPin, delta, firstLine, freePort, get, killAllNow, pinSelf, processTree, readerPipe, redisPing, snapshot, start, stopAll, waitFor,
  type Child, type CpuDelta
} from './bench/procs.js'
import { forgetRequestsOfClosedConnections } from './autocannon-latency.js'
import { nginxVersion, startNginxBackends } from './bench/nginx.js'
import { runWrk, wrkVersion, type WrkResult } from './bench/wrk.js'
import {
  againstGoal, costLines, costs, int, median, ms, num, pairSummaries, pairsTable, resultsTable, runsTable, summarize, type PairRun, type PairSummary, type Run, type Summary
} from './bench/report.js'

// npm run bench [-- --connections 50 --duration 10 --warmup 5 --rounds 3 --out docs/benchmarks.md --quick]
//
// Measures in one invocation, side by side, in interleaved rounds: load straight at one backend
// (`direct`, the ceiling), two other Node proxies (the bare undici `forwarder`, the Node floor, and
// `fast-gateway`), the built gateway without limiter, with the in-memory limiter, with the Redis
// limiter (a private redis-server), and the full pipeline (Redis limiter + access log at info). Method: ../shared/bench/README.md and BASELINE.md.

const USAGE = 'usage: npm run bench -- [--connections N] [--duration S] [--warmup S] [--rounds N] [--out FILE] [--quick]'
const QUIET_MAX = 10 // % of one core: before a run, wait until CPU not used by the bench is below this...
const QUIET_WAIT_S = 30 // ...for at most this long
const NOISY = 15 // % of one core: a run with more foreign CPU than this is measured again...
const RETRIES = 2 // ...at most this many times
const SIDE_BY_SIDE = '## Side by side with nginx and haproxy'
const PLACEHOLDER = '(see closing note; filled from ../shared/bench/compare.sh)'

interface Options { connections: number, duration: number, warmup: number, rounds: number, out: string, quick: boolean }

interface Contender {
  name: string
  what: string
  port: number
  /** The process whose CPU is this contender's (the gateway; backend 1 for `direct`). */
  child: Child
  /** Every process whose CPU is this contender's: `child`, and a cluster primary's workers. */
  pids: number[]
  /** Measured only side by side (PAIRS), not in the rounds alone. */
  pairOnly?: boolean
}

/** Other Node proxies measured beside Sluice: built scripts under dist/tools/bench/, given PORT, HOST and UPSTREAMS. */
const PEERS = [
  { name: 'forwarder', script: 'forwarder.js', what: 'the Node floor: `http.createServer` + one undici `Pool` per upstream, round robin, no framework (`tools/bench/forwarder.ts`)' },
  { name: 'fast-gateway', script: 'fast-gateway.js', what: 'fast-gateway 5 (restana + fast-proxy-lite, keep-alive `http.Agent`), round robin per request (`tools/bench/fast-gateway.ts`)' },
  { name: 'raw-forwarder', script: 'raw-forwarder.js', what: 'the floor without undici: `forwarder`\'s client side, upstream keep-alive sockets read by Node\'s own llhttp binding; bodiless requests only, no timeouts (`tools/bench/raw-forwarder.ts`)' }
] as const

/** The full pipeline with `WORKERS=2`, its primary and both workers on the gateway's one core. */
const WORKERS_2 = 'gateway+full×2'

/**
 * The ratios the performance issue sets goals for, each measured again side by side: both
 * contenders on the gateway's core at once, each under its own load (`measurePair`).
 */
const PAIRS = [
  { base: 'forwarder', other: 'gateway+full' },
  { base: 'fast-gateway', other: 'gateway+full' },
  { base: 'gateway', other: 'gateway+redis' },
  { base: 'gateway+full', other: WORKERS_2 }
] as const

/**
 * The performance issue's goals. The verdict on a ratio is its side-by-side measurement when there
 * is one (host drift cancels out of it); the ratio of this invocation's medians is shown beside it.
 */
function goalLines (summaries: Summary[], pairs: PairSummary[], latency: WrkResult[], connections: number): string[] {
  const of = (name: string): Summary | undefined => summaries.find(s => s.contender === name)
  const paired = (base: string, other: string): PairSummary | undefined =>
    pairs.find(p => p.base === base && p.other === other && Number.isFinite(p.speed))
  const rounds = (p: PairSummary, show: (x: number) => string): string => p.perRound.length > 1 ? ` (per round: ${p.perRound.map(show).join(', ')})` : ''
  const full = of('gateway+full')
  const lines: string[] = []
  const versus = (peer: string, goal: number): void => {
    const p = of(peer)
    if (full === undefined || p === undefined) return
    const alone = full.rps / p.rps
    const side = paired(peer, 'gateway+full')
    const verdict = side?.speed ?? alone
    const cpu = full.cpuUs !== undefined && p.cpuUs !== undefined ? `; CPU per request ${num(p.cpuUs)} vs ${num(full.cpuUs)} µs (${(p.cpuUs / full.cpuUs).toFixed(2)}×)` : ''
    const how = side === undefined
      ? `req/s (goal ≥ ${goal}×: ${verdict >= goal ? 'met' : 'not met'})${cpu}`
      : `requests per CPU second side by side${rounds(side, x => x.toFixed(2))} (goal ≥ ${goal}×: ${verdict >= goal ? 'met' : 'not met'}); run alone: ${alone.toFixed(2)}× req/s${cpu}`
    lines.push(`- gateway+full ÷ ${peer}: **${againstGoal(verdict, goal)}×** ${how}`)
  }
  versus('forwarder', 0.85)
  versus('fast-gateway', 1.5)
  if (full !== undefined && latency.length > 0) {
    const p99 = median(latency.map(r => r.p99Ms))
    const failed = latency.reduce((sum, r) => sum + r.errors + r.non2xx, 0)
    lines.push(`- gateway+full p99 at ${connections} connections under wrk: **${p99.toFixed(1)} ms**${latency.length > 1 ? ` (per round: ${latency.map(r => r.p99Ms.toFixed(1)).join(', ')})` : ''} ` +
      `(goal < 15 ms at 50 connections: ${p99 < 15 && failed === 0 ? 'met' : 'not met'}${connections === 50 ? '' : `; measured at ${connections}`}${failed > 0 ? `; ${failed} errors or non-2xx answers` : ''}); under autocannon (the tables): ${ms(full.p99)} ms`)
  } else if (full !== undefined) {
    lines.push(`- gateway+full p99 at ${connections} connections under autocannon: ${ms(full.p99)} ms (goal < 15 ms at 50 connections: ${full.p99 < 15 ? 'met' : 'not met'}; wrk, the issue's load generator, was not installed)`)
  }
  const gateway = of('gateway')
  const redis = of('gateway+redis')
  if (gateway !== undefined && redis !== undefined) {
    const alone = 1 - redis.rps / gateway.rps
    const side = paired('gateway', 'gateway+redis')
    const cost = side === undefined ? alone : 1 - side.speed
    const how = side === undefined
      ? `of req/s (goal ≤ 10 %: ${cost <= 0.1 ? 'met' : 'not met'})`
      : `of the requests per CPU second side by side${rounds(side, x => `${((1 - x) * 100).toFixed(1)} %`)} (goal ≤ 10 %: ${cost <= 0.1 ? 'met' : 'not met'}); run alone: ${(alone * 100).toFixed(1)} % of req/s`
    lines.push(`- Redis limiter cost: **${(cost * 100).toFixed(1)} %** ${how}`)
  }
  const workers = paired('gateway+full', WORKERS_2)
  if (workers !== undefined) {
    lines.push(`- WORKERS=2 ÷ WORKERS=1, the full pipeline, both on one core: **${workers.speed.toFixed(2)}×** the requests per CPU second side by side${rounds(workers, x => x.toFixed(2))} ` +
      '(the scaling goal needs a core per worker and more for the load: this measures what a second worker adds to the work per request, whose absence scaling up to the cores rests on; how to run the scaling benchmark on a bigger box: the section "Scaling out across cores")')
  }
  const forwarder = of('forwarder')
  const raw = of('raw-forwarder')
  if (forwarder !== undefined && raw !== undefined) {
    const cpu = forwarder.cpuUs !== undefined && raw.cpuUs !== undefined ? `; CPU per request ${num(forwarder.cpuUs)} vs ${num(raw.cpuUs)} µs` : ''
    lines.push(`- not a goal: raw-forwarder ÷ forwarder: ${(raw.rps / forwarder.rps).toFixed(2)}× req/s${cpu} (what leaving undici's client could buy)`)
  }
  return lines
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const log = (line: string): void => { process.stderr.write(`bench: ${line}\n`) }

const options = parseOptions(process.argv.slice(2))
let stopping = false
const current = new Set<autocannon.Instance>()
let workDir: string | undefined

process.on('exit', killAllNow)
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => { shutdown(`interrupted (${sig})`, sig === 'SIGINT' ? 130 : 143).catch(() => process.exit(1)) })
}

try {
  await main(options)
} catch (err) {
  await shutdown((err as Error).message, 1)
}

async function shutdown (reason: string, code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    log(`${reason}: stopping every process started`)
    for (const instance of current) instance.stop()
    await stopAll()
    removeWorkDir()
  }
  process.exit(code)
}

function parseOptions (argv: string[]): Options {
  let values
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        connections: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        rounds: { type: 'string' },
        out: { type: 'string' },
        quick: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      }
    }).values
  } catch (err) {
    fail((err as Error).message)
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n  defaults: 50 connections, 10 s per run, 5 s warm-up per contender, 3 rounds, docs/benchmarks.md\n  --quick: 1 round of 3 s after 2 s of warm-up, written to ${join(tmpdir(), 'sluice-bench-quick.md')} unless --out\n`)
    process.exit(0)
  }
  const quick = values.quick
  return {
    connections: integer('connections', values.connections ?? '50', 1, 10_000),
    duration: seconds('duration', values.duration ?? (quick ? '3' : '10'), 1, 3600),
    warmup: seconds('warmup', values.warmup ?? (quick ? '2' : '5'), 0, 600),
    rounds: integer('rounds', values.rounds ?? (quick ? '1' : '3'), 1, 50),
    // A smoke run must not overwrite the real results.
    out: values.out ?? (quick ? join(tmpdir(), 'sluice-bench-quick.md') : 'docs/benchmarks.md'),
    quick
  }
}

function integer (name: string, raw: string, min: number, max: number): number {
  const n = Number(raw)
  if (!/^\d+$/.test(raw) || n < min || n > max) fail(`--${name}="${raw}" is invalid: expected an integer ${min}..${max}`)
  return n
}

function seconds (name: string, raw: string, min: number, max: number): number {
  const n = Number(raw.replace(/s$/, ''))
  if (!/^\d+(\.\d+)?s?$/.test(raw) || n < min || n > max) fail(`--${name}="${raw}" is invalid: expected seconds ${min}..${max} (e.g. 10 or 10s)`)
  return n
}

function fail (message: string): never {
  process.stderr.write(`bench: ${message} (${USAGE})\n`)
  process.exit(1)
}

async function main (opts: Options): Promise<void> {
  const server = join(root, 'dist', 'src', 'server.js')
  const backendsScript = join(root, 'dist', 'tools', 'bench', 'backends.js')
  if (!existsSync(server) || !existsSync(backendsScript)) throw new Error('dist/ is missing: run `npm run build` first (npm run bench does)')

  const cpuCount = cpus().length
  const pinned = canPin(cpuCount) && pinSelf('1')
  const gatewayCpus = pinned ? '0' : undefined
  const sideCpus = pinned ? '1' : undefined
  log(pinned
    ? 'pinning: gateway on CPU 0; load generator (this process), backends and redis on CPU 1'
    : 'pinning: NOT used (needs Linux, taskset and 2+ CPUs): numbers float and are not comparable with pinned runs')

  const redisVersion = versionOf('redis-server', ['--version'], /v=(\S+)/)
  const nginx = nginxVersion()
  const wrk = wrkVersion()
  if (wrk === undefined) log('wrk not found: the latency goal is read under autocannon (apt-get install wrk for the issue\'s own load generator)')
  if (nginx === undefined) log('nginx not found: the backends are Node servers (apt-get install nginx for the lighter backends the figures in docs/benchmarks.md use)')
  const contendersPlanned = ['direct', ...PEERS.map(p => p.name), 'gateway', 'gateway+memory', ...(redisVersion === undefined ? [] : ['gateway+redis', 'gateway+full'])]
  const pairOnlyPlanned: string[] = redisVersion === undefined ? [] : [WORKERS_2]
  const perRun = opts.duration + 1.5
  const startedPlanned = [...contendersPlanned, ...pairOnlyPlanned]
  const pairsPlanned = PAIRS.filter(p => startedPlanned.includes(p.base) && startedPlanned.includes(p.other)).length
  // an even number of side-by-side rounds, so each side of a pair starts its load first as often
  const pairRounds = opts.rounds + (opts.rounds % 2)
  const latencyRuns = wrk !== undefined && contendersPlanned.includes('gateway+full') ? opts.rounds : 0
  const runsPlanned = contendersPlanned.length * opts.rounds + pairsPlanned * pairRounds + latencyRuns
  // a pair-only contender is the 2-worker cluster: warmed up twice as long
  const expectedS = 20 + (startedPlanned.length + pairOnlyPlanned.length) * (opts.warmup + 8) + runsPlanned * perRun
  const limitS = Math.ceil(expectedS + runsPlanned * ((RETRIES + 1) * QUIET_WAIT_S + RETRIES * perRun) + 60)
  setTimeout(() => { shutdown(`time limit of ${limitS} s exceeded`, 1).catch(() => process.exit(1)) }, limitS * 1000).unref()
  log(`${contendersPlanned.length} contenders × ${opts.rounds} round(s) and ${pairsPlanned} pairs × ${pairRounds} rounds, ${opts.duration} s each, ${opts.connections} connections, ${opts.warmup} s warm-up each: about ${Math.ceil(expectedS / 60)} min (at most ${Math.ceil(limitS / 60)})`)
  if (redisVersion === undefined) log('WARNING: redis-server not found: gateway+redis is skipped')

  const work = mkdtempSync(join(tmpdir(), 'sluice-bench-'))
  workDir = work
  try {
    const contenders = await startAll(opts, server, backendsScript, work, gatewayCpus, sideCpus, redisVersion !== undefined, nginx)
    const ours = (): number[] => [process.pid, ...contenders.all.map(c => c.pid), ...contenders.list.flatMap(c => c.pids)]

    const warmUp = async (c: Contender): Promise<void> => {
      if (opts.warmup <= 0) return
      // a cluster's workers (its processes but the primary) share the load: each gets as much warm-up as a lone gateway
      const seconds = opts.warmup * Math.max(1, c.pids.length - 1)
      log(`warm-up ${c.name} (${seconds} s, not recorded)`)
      await load(c.port, opts.connections, seconds)
    }
    // a contender measured only side by side is warmed up just before the pairs: idle through the
    // solo rounds, its first pair round ran ≈ 20 % slower
    for (const c of contenders.list) if (c.pairOnly !== true) await warmUp(c)

    const runs: Run[] = []
    let remeasured = 0
    for (let round = 1; round <= opts.rounds; round++) {
      for (const c of contenders.list) {
        if (c.pairOnly === true) continue
        // A run disturbed by foreign load that started on a quiet machine is measured again (at
        // most RETRIES times); the least disturbed attempt is kept (cf. ../shared/bench/compare.sh).
        let kept: Run | undefined
        for (let attempt = 0; ; attempt++) {
          const quiet = await quietGate(ours())
          const run = await measure(round, c, opts, ours(), contenders.backends, contenders.redis)
          const noisy = (run.foreignPct ?? 0) > NOISY
          // Measuring again only helps against a passing disturbance, not on a machine that stays busy.
          const again = noisy && quiet && attempt < RETRIES
          const flags = [
            run.errors + run.non2xx > 0 ? `  ERRORS ${run.errors} / non-2xx ${run.non2xx}` : '',
            noisy ? `  (disturbed by foreign load${again ? ': measuring again' : ''})` : ''
          ].join('')
          log(`r${round} ${c.name.padEnd(15)} ${int(run.rps).padStart(7)} req/s  p50 ${ms(run.p50)} ms  p99 ${ms(run.p99)} ms  CPU ${num(run.cpuUs)} µs/req (${run.cpuPct?.toFixed(0) ?? '–'} %)  load ${run.loadPct?.toFixed(0) ?? '–'} %  foreign ${run.foreignPct?.toFixed(0) ?? '–'} %${flags}`)
          if (kept === undefined || (run.foreignPct ?? 0) < (kept.foreignPct ?? 0)) kept = run
          if (!again) break
          remeasured++
        }
        runs.push(kept)
      }
    }

    // the latency goal under wrk, as the performance issue measured it: the gateway alone on its core
    const latency: WrkResult[] = []
    const full = contenders.list.find(c => c.name === 'gateway+full')
    if (full !== undefined) {
      for (let round = 1; round <= latencyRuns; round++) {
        await quietGate(ours())
        const before = snapshot(ours())
        const run = await runWrk(full.port, opts.connections, opts.duration)
        const cpu = delta(before, snapshot(ours()))
        latency.push(run)
        log(`r${round} ${'gateway+full'.padEnd(15)} under wrk: ${int(run.rps).padStart(7)} req/s  p50 ${run.p50Ms.toFixed(1)} ms  p99 ${run.p99Ms.toFixed(1)} ms  CPU ${num(cpuPerRequest(cpu, full.pids, run.requests))} µs/req (${((cpuSeconds(cpu, full.pids) ?? Number.NaN) / cpu.wallS * 100).toFixed(0)} %)${run.errors + run.non2xx > 0 ? `  ERRORS ${run.errors} / non-2xx ${run.non2xx}` : ''}`)
      }
    }

    // the goals' ratios again, side by side: only meaningful when both share one pinned core
    const pairRuns: PairRun[] = []
    if (pinned) for (const c of contenders.list) if (c.pairOnly === true) await warmUp(c)
    const pairs = PAIRS.map(p => ({ base: contenders.list.find(c => c.name === p.base), other: contenders.list.find(c => c.name === p.other) }))
    for (let round = 1; round <= (pinned ? pairRounds : 0); round++) {
      for (const { base, other } of pairs) {
        if (base === undefined || other === undefined) continue
        await quietGate(ours())
        const run = await measurePair(round, base, other, opts, ours())
        pairRuns.push(run)
        log(`r${round} ${`${base.name} · ${other.name}`.padEnd(28)} ${int(run.baseRps)} · ${int(run.otherRps)} req/s  CPU ${num(run.baseCpuUs)} · ${num(run.otherCpuUs)} µs/req${run.errors > 0 ? `  ERRORS ${run.errors}` : ''}`)
      }
    }

    await stopAll()
    const report = render(opts, runs, pairRuns, latency, remeasured, contenders.list, pinned, { redis: redisVersion, nginx, wrk })
    process.stdout.write(`\n${report.stdout}\n`)
    const out = resolve(process.cwd(), opts.out)
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(out, report.markdown(existingSideBySide(out)))
    log(`wrote ${out.startsWith(process.cwd() + '/') ? relative(process.cwd(), out) : out}`)
  } finally {
    await stopAll()
    removeWorkDir()
  }
}

function removeWorkDir (): void {
  if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true })
  workDir = undefined
}

interface Started { list: Contender[], all: Child[], backends: Child[], redis: Child | undefined }

async function startAll (opts: Options, server: string, backendsScript: string, work: string,
  gatewayCpus: string | undefined, sideCpus: string | undefined, withRedis: boolean, nginx: string | undefined): Promise<Started> {
  let ports: number[]
  let backends: Child[]
  if (nginx !== undefined) {
    ({ ports, children: backends } = await startNginxBackends(3, work, sideCpus, [6379]))
    for (const [i, port] of ports.entries()) {
      await waitFor(backends[i] as Child, 'answering GET /', 10_000, async () => (await get(port, '/')).status === 200)
    }
  } else {
    const node = start('backends', process.execPath, [backendsScript, '3'], { cpus: sideCpus })
    ports = (JSON.parse(await firstLine(node, 10_000)) as { ports: number[] }).ports
    backends = [node]
  }
  const all: Child[] = [...backends]
  const list: Contender[] = [{ name: 'direct', what: `autocannon straight at backend 1 (${ports[0] ?? '?'}); no gateway`, port: ports[0] as number, child: backends[0] as Child, pids: [(backends[0] as Child).pid] }]
  const upstreams = ports.map(p => `http://127.0.0.1:${p}`).join(',')

  for (const peer of PEERS) {
    const port = await freePort([6379, ...ports])
    const child = start(peer.name, process.execPath, [join(root, 'dist', 'tools', 'bench', peer.script)], {
      cpus: gatewayCpus, cwd: work, env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), UPSTREAMS: upstreams }
    })
    all.push(child)
    await waitFor(child, 'answering GET /', 15_000, async () => (await get(port, '/')).status === 200)
    await check(peer.name, port, undefined)
    list.push({ name: peer.name, what: peer.what, port, child, pids: [child.pid] })
  }

  let redis: Child | undefined
  let redisPort: number | undefined
  if (withRedis) {
    redisPort = await freePort([6379])
    redis = start('redis-server', 'redis-server', [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', work, '--daemonize', 'no', '--loglevel', 'warning'
    ], { cpus: sideCpus, cwd: work })
    all.push(redis)
    const port = redisPort
    await waitFor(redis, 'PONG', 10_000, async () => await redisPing(port))
  }

  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOST: '127.0.0.1',
    UPSTREAMS: upstreams,
    LOG_LEVEL: 'warn',
    // The schema's maximum (1e8): at ≈ 5 k req/s a 1 min window counts ≈ 300 k, nothing is refused.
    RATE_LIMIT_MAX: '100000000',
    HEALTH_CHECK_INTERVAL: '5s',
    SHUTDOWN_TIMEOUT: '2s'
  }
  const gateways: Array<{ name: string, what: string, env: NodeJS.ProcessEnv, store?: string, log?: boolean, pairOnly?: boolean }> = [
    { name: 'gateway', what: 'the gateway, `RATE_LIMIT=off` (no limiter in the pipeline)', env: { RATE_LIMIT: 'off' } },
    { name: 'gateway+memory', what: 'the gateway, limiter on, in-memory store (no `REDIS_URL`)', env: { RATE_LIMIT: 'on' }, store: 'memory' }
  ]
  if (redisPort !== undefined) {
    gateways.push({ name: 'gateway+redis', what: 'the gateway, limiter on, Redis store (`REDIS_URL` = the private redis-server)', env: { RATE_LIMIT: 'on', REDIS_URL: `redis://127.0.0.1:${redisPort}` }, store: 'redis' })
    gateways.push({
      name: 'gateway+full',
      what: 'the full pipeline of the performance issue: Redis limiter, balancer, proxy, and the access log at `LOG_LEVEL=info` (one line per request to stdout, a pipe read by `cat` on the load side\'s CPU as a container runtime reads it)',
      env: { RATE_LIMIT: 'on', REDIS_URL: `redis://127.0.0.1:${redisPort}`, LOG_LEVEL: 'info' },
      store: 'redis',
      log: true
    })
    gateways.push({
      name: WORKERS_2,
      what: '`gateway+full` with `WORKERS=2`: the cluster primary and both workers on the gateway\'s core; its CPU is the three processes\'. Measured side by side with `gateway+full` only',
      env: { RATE_LIMIT: 'on', REDIS_URL: `redis://127.0.0.1:${redisPort}`, LOG_LEVEL: 'info', WORKERS: '2' },
      store: 'redis',
      log: true,
      pairOnly: true
    })
  }
  for (const g of gateways) {
    const port = await freePort([6379, ...ports, ...(redisPort === undefined ? [] : [redisPort])])
    // cwd: an empty directory, so no .env or CONFIG_FILE of the working tree leaks in.
    const stdout = g.log === true ? await readerPipe(g.name, sideCpus, work) : undefined
    const child = start(g.name, process.execPath, [server], {
      cpus: gatewayCpus, cwd: work, env: { ...base, ...g.env, PORT: String(port) }, ...(stdout !== undefined && { stdoutFd: stdout.fd })
    })
    await stdout?.close()
    all.push(child)
    await waitFor(child, 'ready /readyz', 15_000, async () => (await get(port, '/readyz')).status === 200)
    await check(g.name, port, g.store)
    // a cluster primary forks its workers before either answers: all there once one has
    const pids = processTree(child.pid)
    if (g.env.WORKERS !== undefined && pids.length !== 1 + Number(g.env.WORKERS)) throw new Error(`${g.name}: ${pids.length - 1} worker processes, expected ${g.env.WORKERS}`)
    list.push({ name: g.name, what: g.what, port, child, pids, pairOnly: g.pairOnly })
  }
  log(`started: backends ${ports.join(', ')}; ${list.slice(1).map(c => `${c.name} :${c.port}`).join(', ')}${redisPort === undefined ? '' : `; redis :${redisPort}`}`)
  return { list, all, backends, redis }
}

/** The contender is what it claims: proxies 200 "ok" over all 3 backends, limiter on or off, right store. */
async function check (name: string, port: number, store: string | undefined): Promise<void> {
  const servedBy = new Set<string>()
  for (let i = 0; i < 6; i++) {
    const reply = await get(port, '/')
    if (reply.status !== 200 || reply.body !== 'ok') throw new Error(`${name}: GET / answered ${reply.status} ${reply.body.slice(0, 200)}`)
    servedBy.add(String(reply.headers['x-served-by']))
    const limited = reply.headers['x-ratelimit-limit'] !== undefined
    if (limited !== (store !== undefined)) throw new Error(`${name}: rate-limit headers ${limited ? 'present' : 'absent'}, the limiter should be ${store === undefined ? 'off' : 'on'}`)
  }
  if (servedBy.size !== 3) log(`WARNING: ${name}: 6 requests reached only ${[...servedBy].join(', ')}`)
  if (store !== undefined) {
    const ready = JSON.parse((await get(port, '/readyz')).body) as { limiter?: { store?: string, degraded?: boolean } }
    if (ready.limiter?.store !== store || ready.limiter.degraded === true) throw new Error(`${name}: /readyz reports limiter ${JSON.stringify(ready.limiter)}, expected store ${store}, not degraded`)
  }
}

async function load (port: number, connections: number, duration: number): Promise<autocannon.Result> {
  return await new Promise((resolve, reject) => {
    const instance = autocannon({
      url: `http://127.0.0.1:${port}/`, connections, duration, timeout: 10, setupClient: forgetRequestsOfClosedConnections
    }, (err: unknown, result) => {
      current.delete(instance)
      if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error(String(err)))
      else resolve(result)
    })
    current.add(instance)
  })
}

async function measure (round: number, c: Contender, opts: Options, pids: number[], backends: Child[], redis: Child | undefined): Promise<Run> {
  const before = snapshot(pids)
  const result = await load(c.port, opts.connections, opts.duration)
  const cpu = delta(before, snapshot(pids))
  const requests = result.requests.total
  // a closed loop never has more requests in flight than connections: more means the latencies are miscounted
  const inFlight = requests / cpu.wallS * result.latency.average / 1000
  if (inFlight > opts.connections * 1.1) log(`${c.name}: req/s × mean latency = ${inFlight.toFixed(0)} requests in flight with ${opts.connections} connections: its latencies are suspect`)
  const per = (pids: readonly number[]): number | undefined => cpuPerRequest(cpu, pids, requests)
  const pct = (pids: readonly number[]): number | undefined => {
    const s = cpuSeconds(cpu, pids)
    return s === undefined ? undefined : s / cpu.wallS * 100
  }
  return {
    round,
    contender: c.name,
    requests,
    rps: requests / cpu.wallS,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    cpuUs: per(c.pids),
    cpuPct: pct(c.pids),
    redisUs: redis !== undefined && (c.name === 'gateway+redis' || c.name === 'gateway+full') ? per([redis.pid]) : undefined,
    loadPct: pct([process.pid]),
    backendsPct: backends.reduce((sum, b) => sum + (pct([b.pid]) ?? 0), 0),
    foreignPct: cpu.foreignPct
  }
}

/** CPU seconds of the processes `pids` together over the window of `cpu`; undefined when one is unknown. */
function cpuSeconds (cpu: CpuDelta, pids: readonly number[]): number | undefined {
  let sum = 0
  for (const pid of pids) {
    const s = cpu.cpuS.get(pid)
    if (s === undefined) return undefined
    sum += s
  }
  return sum
}

/** µs of the CPU of `pids` per request over the window of `cpu`; undefined when unknown or nothing was served. */
function cpuPerRequest (cpu: CpuDelta, pids: readonly number[], requests: number): number | undefined {
  const s = cpuSeconds(cpu, pids)
  return s === undefined || requests === 0 ? undefined : s * 1e6 / requests
}

/**
 * Both contenders loaded at once, each by its own autocannon with the full connection count, while
 * both share the gateway's core: each gets about half of it, so each one's CPU per request is
 * measured over the same stretch of host speed as the other's.
 */
async function measurePair (round: number, base: Contender, other: Contender, opts: Options, pids: number[]): Promise<PairRun> {
  const before = snapshot(pids)
  // the load started first gets its connections up first: each side goes first every other round
  const loads = round % 2 === 1
    ? await Promise.all([load(base.port, opts.connections, opts.duration), load(other.port, opts.connections, opts.duration)])
    : (await Promise.all([load(other.port, opts.connections, opts.duration), load(base.port, opts.connections, opts.duration)])).reverse()
  const [a, b] = loads as [autocannon.Result, autocannon.Result]
  const cpu = delta(before, snapshot(pids))
  return {
    round,
    base: base.name,
    other: other.name,
    baseRps: a.requests.total / cpu.wallS,
    otherRps: b.requests.total / cpu.wallS,
    baseCpuUs: cpuPerRequest(cpu, base.pids, a.requests.total),
    otherCpuUs: cpuPerRequest(cpu, other.pids, b.requests.total),
    errors: a.errors + a.non2xx + b.errors + b.non2xx
  }
}

/** Waits (at most QUIET_WAIT_S) until the CPU not used by the bench is below QUIET_MAX % for 1 s; false when it never was. */
async function quietGate (pids: number[]): Promise<boolean> {
  for (let waited = 0; ; waited++) {
    const before = snapshot(pids)
    await sleep(1000)
    const foreign = delta(before, snapshot(pids)).foreignPct
    if (foreign === undefined || foreign <= QUIET_MAX) return true
    if (waited === 0) log(`machine busy (foreign CPU ${foreign.toFixed(0)} %), waiting up to ${QUIET_WAIT_S} s for quiet`)
    if (waited >= QUIET_WAIT_S) { log(`still busy (${foreign.toFixed(0)} %): measuring anyway`); return false }
  }
}

function versionOf (command: string, args: string[], pattern: RegExp): string | undefined {
  const out = spawnSync(command, args, { encoding: 'utf8' })
  if (out.status !== 0) return undefined
  return pattern.exec(out.stdout)?.[1] ?? out.stdout.trim()
}

/** The lead's side-by-side section of an existing docs file, kept across re-runs. */
function existingSideBySide (file: string): string | undefined {
  if (!existsSync(file)) return undefined
  const text = readFileSync(file, 'utf8')
  const at = text.indexOf(`\n${SIDE_BY_SIDE}\n`)
  return at < 0 ? undefined : text.slice(at + 1).trimEnd()
}

/** Versions of the tools the bench found (undefined: not installed). */
interface Tools { redis: string | undefined, nginx: string | undefined, wrk: string | undefined }

function render (opts: Options, runs: Run[], pairRuns: PairRun[], latency: WrkResult[], remeasured: number, list: Contender[], pinned: boolean,
  tools: Tools): { stdout: string, markdown: (sideBySide: string | undefined) => string } {
  const { redis: redisVersion, nginx, wrk } = tools
  // a contender measured only side by side has no row of its own
  const order = list.filter(c => c.pairOnly !== true).map(c => c.name)
  const summaries = summarize(order, runs)
  const limiterCosts = costLines(costs(summaries, runs, ['gateway+memory', 'gateway+redis']))
  const goals = goalLines(summaries, pairSummaries(pairRuns), latency, opts.connections)
  const table = resultsTable(summaries)
  const bad = runs.filter(r => r.errors + r.non2xx > 0)
  const noisy = runs.filter(r => (r.foreignPct ?? 0) > NOISY)
  const warnings = [
    ...(bad.length > 0 ? [`**WARNING: ${bad.length} run(s) had socket errors or non-2xx answers** (${bad.map(r => `r${r.round} ${r.contender}: ${r.errors} / ${r.non2xx}`).join('; ')}): their req/s is not a proxying rate.`] : []),
    ...(remeasured > 0 ? [`${remeasured} run(s) disturbed by foreign load were measured again (up to ${RETRIES} more times per run, when the machine had been quiet before; the least disturbed attempt is kept).`] : []),
    ...(noisy.length > 0 ? [`${noisy.length} of the ${runs.length} runs kept still had more than ${NOISY} % of a core of foreign CPU (other work on the machine): ${noisy.map(r => `r${r.round} ${r.contender} ${r.foreignPct?.toFixed(0) ?? ''} %`).join(', ')}.`] : []),
    ...(redisVersion === undefined ? ['redis-server was not found: gateway+redis was not measured.'] : []),
    ...(pairRuns.some(r => r.errors > 0) ? [`**WARNING: side-by-side runs had socket errors or non-2xx answers** (${pairRuns.filter(r => r.errors > 0).map(r => `r${r.round} ${r.base} · ${r.other}: ${r.errors}`).join('; ')}).`] : [])
  ]
  const cpu = cpus()
  const model = cpu[0]?.model.trim() ?? 'unknown CPU'
  const settings = `${opts.connections} connections, ${opts.duration} s per run, ${opts.rounds} interleaved round(s), ${opts.warmup} s warm-up per contender (per worker for a cluster)${opts.quick ? ' (--quick: a smoke run, not a measurement)' : ''}`
  const pinning = pinned
    ? 'each gateway alone on CPU 0 (all its threads, `taskset -c 0`); the load generator (the bench process, `taskset -a -cp 1`), the backends and redis-server on CPU 1, as in ../shared/bench'
    : '**none** (needs Linux, taskset and 2+ CPUs): processes float and numbers are not comparable with pinned runs'

  const stdout = [
    `sluice bench: ${settings}; pinning ${pinned ? 'on (gateway CPU 0, everything else CPU 1)' : 'OFF'}`,
    '',
    table,
    '',
    'Cost of the rate limiter (vs gateway):',
    ...limiterCosts,
    '',
    'Against the performance goals:',
    ...goals,
    ...warnings.map(w => `! ${w.replace(/\*\*/g, '')}`)
  ].join('\n')

  const markdown = (sideBySide: string | undefined): string => [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench${opts.quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; re-run it to refresh this page (the last section is kept).`,
    'Timing lives here, never in the tests.',
    '',
    '## Machine',
    '',
    `- CPU: ${model}, ${cpu.length} logical CPUs; ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- ${osType()} ${release()}; Node ${process.version}; autocannon ${autocannonVersion()}${redisVersion === undefined ? '' : `; Redis ${redisVersion}`}${nginx === undefined ? '' : `; nginx ${nginx}`}${wrk === undefined ? '' : `; wrk ${wrk}`}`,
    '',
    '## Method',
    '',
    '- Contenders, all over HTTP/1.1 keep-alive on 127.0.0.1, `GET /` answered 200 "ok":',
    ...list.map(c => `  - \`${c.name}\`: ${c.what}`),
    '- Gateways: the built entry `node dist/src/server.js` as child processes, one per contender, all started before',
    '  the first run; `UPSTREAMS` = 3 backends (round robin), `LOG_LEVEL=warn`, `RATE_LIMIT_MAX=100000000`',
    '  (the maximum: nothing is refused), `HEALTH_CHECK_INTERVAL=5s`, started from an empty directory (no `.env`).',
    nginx === undefined
      ? '- Backends: 3 minimal Node HTTP servers (200 "ok" + `x-served-by`, also on `/health`) in one child process (nginx was not installed).'
      : '- Backends: 3 nginx processes (`master_process off`: one process each), every path answered 200 "ok" + `x-served-by` (`tools/bench/nginx.ts`).',
    '  Redis: a private `redis-server --save \'\' --appendonly no` on a free port (never 6379).',
    `- Pinning: ${pinning}.`,
    `- Load: autocannon (programmatic, in the bench process), ${settings}: round 1 runs every contender`,
    '  once in the order above, then round 2, and so on. Each gateway was checked first (6 requests reach all 3',
    '  backends; rate-limit headers present exactly when the limiter is on; `/readyz` names the expected store).',
    ...(latency.length > 0
      ? [`- Latency goal: after the rounds, \`gateway+full\` alone again under \`wrk -t1 -c${opts.connections} -d${opts.duration}s --latency\` (${pinned ? 'on CPU 1, ' : ''}${latency.length} run${latency.length === 1 ? '' : 's'}), the load generator`,
          '  of the performance issue\'s own figures and of ../shared/bench (autocannon\'s p99, from the rounds, is shown beside it).']
      : []),
    `- Noise: before each run the bench waits (≤ ${QUIET_WAIT_S} s) until CPU used outside its own processes is below ${QUIET_MAX} % of a core;`,
    `  a run that started quiet but saw more than ${NOISY} % of foreign CPU is measured again (≤ ${RETRIES} times), the least disturbed attempt kept.`,
    '- Reported per contender: the median over rounds (req/s with min–max, p50 and p99, CPU), errors summed.',
    '  CPU µs/req = utime+stime of the contender\'s process (the gateway; the backends process for `direct`)',
    '  from `/proc/<pid>/stat` over the run ÷ requests; CPU % = the same ÷ wall time (100 = one core).',
    '',
    '## Results',
    '',
    table,
    '',
    '### Cost of the rate limiter',
    '',
    ...limiterCosts,
    '',
    'cost = 1 − req/s(limiter) ÷ req/s(gateway), from the medians; per round, from the two runs of the same round.',
    '',
    '### Against the performance goals',
    '',
    ...goals,
    '',
    'The verdicts come from the side-by-side runs below when the bench could pin (the median over rounds): the two',
    'contenders of a ratio share CPU 0 at the same time, each under its own autocannon with the same connections',
    '(started first in turn, one side in odd rounds, the other in even ones),',
    'and the ratio is of their CPU per request (equivalently, of the requests each serves per CPU second). The host',
    'of a shared VM changes speed by up to 2× within seconds; run one after the other, two contenders see different',
    'speeds, run together they see the same. "Run alone" is the ratio of this invocation\'s medians above.',
    'The side-by-side table\'s CPU % is each side\'s share of CPU 0: about half each when both are busy all the time;',
    'a side that waits on something (redis-server shares CPU 1 with the load generators) can leave part of its half unused.',
    '`forwarder` is the Node floor (no framework; `tools/bench/forwarder.ts`); `fast-gateway` is fast-gateway 5 with',
    'round robin (`tools/bench/fast-gateway.ts`).',
    ...(warnings.length > 0 ? ['', ...warnings.map(w => `- ${w}`)] : []),
    '',
    ...(pairRuns.length > 0 ? ['### Side by side', '', pairsTable(pairRuns), ''] : []),
    '### Every run',
    '',
    runsTable(runs),
    '',
    'load % = the load generator\'s CPU, backends % = the backends\' processes\', foreign % = CPU busy on the machine',
    'outside the bench\'s processes (other work, and kernel time not charged to a process); all in % of one core.',
    '',
    '## How to read it / noise',
    '',
    '- All latencies are at saturation (closed loop: every connection sends its next request at once), so',
    '  p50 ≈ connections ÷ req/s; they say nothing about latency at normal load. autocannon records latency',
    '  in whole milliseconds. The gateways close every client connection after 1000 responses',
    '  (`MAX_REQUESTS_PER_SOCKET`, as nginx\'s `keepalive_requests`); autocannon 9 then miscounts every later',
    '  latency on that connection (about twice the real one), which the bench corrects',
    '  (`tools/autocannon-latency.ts`; before 2026-12-02 the gateways\' p50 and p99 here were inflated so).',
    '- `direct` is the ceiling of the load side: in every proxied run CPU 1 does the same autocannon + backend',
    '  work per request. A gateway at ≈ 100 % CPU is CPU-bound on its one core: its req/s is its capacity here.',
    '- The dev machines are shared VMs: other work and host speed drift move req/s by 20–50 % between rounds',
    '  (see ../shared/bench/BASELINE.md, "Noise seen"); compare only rows of the same invocation, look at the',
    '  min–max spread and the foreign column, and prefer CPU µs/req, which moves less. A difference under',
    '  ≈ 20 % in req/s from one 3-round invocation is not significant here.',
    '- For nginx and haproxy under the same layout (wrk, nginx backends, instruction counts with `PERF=1`) run',
    '  `GATEWAY_CMD=\'npm start --silent\' ../shared/bench/compare.sh` from the project root; its numbers are not',
    '  comparable with these (other load generator and backends), only with its own rows.',
    '',
    sideBySide ?? `${SIDE_BY_SIDE}\n\n${PLACEHOLDER}`,
    ''
  ].join('\n')

  return { stdout, markdown }
}

function autocannonVersion (): string {
  try {
    return (createRequire(import.meta.url)('autocannon/package.json') as { version: string }).version
  } catch {
    return '(version unknown)'
  }
}

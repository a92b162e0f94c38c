// Numbers → medians, ratios and tables (plain functions: no I/O).

/** One measured run of one contender. */
export interface Run {
  round: number
  contender: string
  requests: number
  rps: number
  p50: number
  p99: number
  /** Socket errors and timeouts, as autocannon counts them. */
  errors: number
  non2xx: number
  /** CPU of the contender's process (the gateway; the backends for `direct`) per request, µs. */
  cpuUs?: number
  /** The same CPU in % of one core over the run. */
  cpuPct?: number
  /** redis-server CPU per request, µs (gateway+redis only). */
  redisUs?: number
  /** CPU of the load generator (this process) and of the backends, % of one core. */
  loadPct?: number
  backendsPct?: number
  /** Busy CPU on the machine not used by any process of the bench, % of one core. */
  foreignPct?: number
}

export interface Summary {
  contender: string
  rounds: number
  rps: number
  rpsMin: number
  rpsMax: number
  p50: number
  p99: number
  cpuUs?: number
  cpuPct?: number
  redisUs?: number
  errors: number
  non2xx: number
  vsDirect?: number
  vsGateway?: number
}

export interface Cost {
  limiter: string
  /** 1 − req/s(limiter) / req/s(gateway), from the medians. */
  rpsCost: number
  /** The same per round (limiter and gateway of the same round), in round order. */
  perRound: number[]
  /** CPU µs per request added to the gateway's, and that in % of the gateway's. */
  cpuUs?: number
  cpuRel?: number
  redisUs?: number
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  if (sorted.length === 0) return Number.NaN
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

function medianOf (runs: Run[], pick: (run: Run) => number | undefined): number | undefined {
  const values = runs.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v))
  return values.length === 0 ? undefined : median(values)
}

export function summarize (order: string[], runs: Run[]): Summary[] {
  const summaries = order.map((contender): Summary => {
    const mine = runs.filter(r => r.contender === contender)
    const rps = mine.map(r => r.rps)
    return {
      contender,
      rounds: mine.length,
      rps: median(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      p50: medianOf(mine, r => r.p50) ?? Number.NaN,
      p99: medianOf(mine, r => r.p99) ?? Number.NaN,
      cpuUs: medianOf(mine, r => r.cpuUs),
      cpuPct: medianOf(mine, r => r.cpuPct),
      redisUs: medianOf(mine, r => r.redisUs),
      errors: mine.reduce((sum, r) => sum + r.errors, 0),
      non2xx: mine.reduce((sum, r) => sum + r.non2xx, 0)
    }
  })
  const direct = summaries.find(s => s.contender === 'direct')
  const gateway = summaries.find(s => s.contender === 'gateway')
  for (const s of summaries) {
    if (direct !== undefined) s.vsDirect = s.rps / direct.rps
    if (gateway !== undefined) s.vsGateway = s.rps / gateway.rps
  }
  return summaries
}

/** What each limiter costs against the plain `gateway` of the same invocation. */
export function costs (summaries: Summary[], runs: Run[], limiters: string[]): Cost[] {
  const gateway = summaries.find(s => s.contender === 'gateway')
  if (gateway === undefined) return []
  const result: Cost[] = []
  for (const limiter of limiters) {
    const s = summaries.find(x => x.contender === limiter)
    if (s === undefined) continue
    const perRound: number[] = []
    for (const run of runs.filter(r => r.contender === limiter)) {
      const base = runs.find(r => r.contender === 'gateway' && r.round === run.round)
      if (base !== undefined) perRound.push(1 - run.rps / base.rps)
    }
    const cost: Cost = { limiter, rpsCost: 1 - s.rps / gateway.rps, perRound, redisUs: s.redisUs }
    if (s.cpuUs !== undefined && gateway.cpuUs !== undefined) {
      cost.cpuUs = s.cpuUs - gateway.cpuUs
      cost.cpuRel = cost.cpuUs / gateway.cpuUs
    }
    result.push(cost)
  }
  return result
}

/**
 * One paired run: two contenders pinned to the same core at the same time, each under its own
 * load, so whatever the host does to that core's speed it does to both; their CPU per request is
 * then comparable however much the host drifts between runs.
 */
export interface PairRun {
  round: number
  /** The yardstick, and the contender measured against it. */
  base: string
  other: string
  baseRps: number
  otherRps: number
  baseCpuUs?: number
  otherCpuUs?: number
  /** Socket errors, timeouts and non-2xx answers of both loads. */
  errors: number
}

export interface PairSummary {
  base: string
  other: string
  /** `other`'s requests per CPU second ÷ `base`'s (base CPU µs/req ÷ other's), one per round. */
  perRound: number[]
  /** Their median. */
  speed: number
  errors: number
}

/** The paired runs per pair, in the order the pairs were first run. */
export function pairSummaries (runs: PairRun[]): PairSummary[] {
  const result: PairSummary[] = []
  for (const run of runs) {
    let s = result.find(x => x.base === run.base && x.other === run.other)
    if (s === undefined) {
      s = { base: run.base, other: run.other, perRound: [], speed: Number.NaN, errors: 0 }
      result.push(s)
    }
    s.errors += run.errors
    if (run.baseCpuUs !== undefined && run.otherCpuUs !== undefined && run.otherCpuUs > 0) s.perRound.push(run.baseCpuUs / run.otherCpuUs)
  }
  for (const s of result) s.speed = median(s.perRound)
  return result
}

// ---------------------------------------------------------------- formatting

/** 12345.6 → "12 346" (space-grouped, as in ../shared/bench/BASELINE.md). */
export function int (n: number): string {
  if (!Number.isFinite(n)) return '–'
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ' ')
}

/** Three significant digits, at most two decimals. */
export function num (n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–'
  const abs = Math.abs(n)
  if (abs >= 1000) return int(n)
  if (abs >= 100) return n.toFixed(0)
  if (abs >= 10) return n.toFixed(1)
  return n.toFixed(2)
}

/** Latency in ms: autocannon records whole milliseconds, so no false decimals. */
export function ms (n: number): string {
  if (!Number.isFinite(n)) return '–'
  return Number.isInteger(n) ? int(n) : n.toFixed(1)
}

export function ratio (n: number | undefined): string {
  return n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(2)
}

/** A ratio to two decimals, or to three where two would read as the goal it is measured against (1.498 is not 1.50). */
export function againstGoal (n: number, goal: number): string {
  const two = n.toFixed(2)
  return two === goal.toFixed(2) && n !== goal ? n.toFixed(3) : two
}

/** 0.123 → "12.3 %" (signed when asked). */
export function percent (n: number | undefined, signed = false): string {
  if (n === undefined || !Number.isFinite(n)) return '–'
  const text = `${(n * 100).toFixed(1)} %`
  return signed && n > 0 ? `+${text}` : text.replace('-', '−')
}

function table (header: string[], align: Array<'l' | 'r'>, rows: string[][]): string {
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${align.map(a => a === 'r' ? '---:' : '---').join('|')}|`,
    ...rows.map(row => `| ${row.join(' | ')} |`)
  ]
  return lines.join('\n')
}

export function resultsTable (summaries: Summary[]): string {
  return table(
    ['contender', 'req/s median (min–max)', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU %', 'vs direct', 'vs gateway', 'errors / non-2xx'],
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    summaries.map(s => [
      s.contender,
      `${int(s.rps)} (${int(s.rpsMin)}–${int(s.rpsMax)})`,
      ms(s.p50),
      ms(s.p99),
      num(s.cpuUs),
      s.cpuPct === undefined ? '–' : s.cpuPct.toFixed(0),
      ratio(s.vsDirect),
      ratio(s.vsGateway),
      `${s.errors} / ${s.non2xx}`
    ]))
}

export function costLines (list: Cost[]): string[] {
  return list.map(c => {
    const rounds = c.perRound.length > 1 ? ` (per round: ${c.perRound.map(x => percent(x)).join(', ')})` : ''
    const cpu = c.cpuUs === undefined ? '' : `; gateway CPU ${c.cpuUs >= 0 ? '+' : '−'}${num(Math.abs(c.cpuUs))} µs/request (${percent(c.cpuRel, true)})`
    const redis = c.redisUs === undefined ? '' : `, plus ${num(c.redisUs)} µs/request of redis-server CPU`
    return `- **${c.limiter}**: ${percent(c.rpsCost)} of the plain gateway's req/s${rounds}${cpu}${redis}`
  })
}

export function runsTable (runs: Run[]): string {
  return table(
    ['round', 'contender', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'CPU %', 'load %', 'backends %', 'foreign %', 'errors / non-2xx'],
    ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    runs.map(r => [
      String(r.round),
      r.contender,
      int(r.rps),
      ms(r.p50),
      ms(r.p99),
      num(r.cpuUs),
      r.cpuPct === undefined ? '–' : r.cpuPct.toFixed(0),
      r.loadPct === undefined ? '–' : r.loadPct.toFixed(0),
      r.backendsPct === undefined ? '–' : r.backendsPct.toFixed(0),
      r.foreignPct === undefined ? '–' : r.foreignPct.toFixed(0),
      `${r.errors} / ${r.non2xx}`
    ]))
}

/** Share of one core: requests per second × CPU µs per request. */
const cpuPct = (rps: number, cpuUs: number | undefined): string => cpuUs === undefined ? '–' : (rps * cpuUs / 1e4).toFixed(0)

export function pairsTable (runs: PairRun[]): string {
  return table(
    ['round', 'pair', 'req/s', 'CPU µs/req', 'CPU %', 'per CPU second, ÷ the first', 'errors'],
    ['r', 'l', 'r', 'r', 'r', 'r', 'r'],
    runs.map(r => [
      String(r.round),
      `${r.base} · ${r.other}`,
      `${int(r.baseRps)} · ${int(r.otherRps)}`,
      `${num(r.baseCpuUs)} · ${num(r.otherCpuUs)}`,
      `${cpuPct(r.baseRps, r.baseCpuUs)} · ${cpuPct(r.otherRps, r.otherCpuUs)}`,
      r.baseCpuUs === undefined || r.otherCpuUs === undefined ? '–' : ratio(r.baseCpuUs / r.otherCpuUs),
      String(r.errors)
    ]))
}

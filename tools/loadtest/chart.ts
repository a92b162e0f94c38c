// Horizontal bar charts and the human report of `npm run loadtest` (plain functions: no I/O).

import { upstreamOrder, type LoadtestResult } from './aggregate.js'

export const BLOCK = '█'
export const DEFAULT_BAR_WIDTH = 40
const MIN_BAR_WIDTH = 10
const MAX_BAR_WIDTH = 60

export interface Bar { label: string, count: number }

/**
 * One line per bar, in the order given: the label (padded to the longest), a bar of `width`
 * blocks for the largest count and proportionally fewer for the others (at least one for a
 * count above 0, none for 0), padded to `width`, then the count (right-aligned) and its share
 * of the sum of all counts with one decimal.
 */
export function renderBars (bars: readonly Bar[], width: number): string[] {
  const cells = Math.max(1, Math.floor(width))
  const max = Math.max(0, ...bars.map(b => b.count))
  const sum = bars.reduce((s, b) => s + b.count, 0)
  const labelWidth = Math.max(0, ...bars.map(b => b.label.length))
  const countWidth = Math.max(0, ...bars.map(b => String(b.count).length))
  return bars.map(({ label, count }) => {
    const length = count > 0 ? Math.max(1, Math.round(count / max * cells)) : 0
    return `${label.padEnd(labelWidth)}  ${BLOCK.repeat(length).padEnd(cells)}  ${String(count).padStart(countWidth)}  ${percent(count, sum)}`
  })
}

/** Bar width that fits a terminal of `columns` (indent, label, count and share included). */
export function barWidth (columns: number | undefined, bars: readonly Bar[]): number {
  if (columns === undefined || !(columns > 0)) return DEFAULT_BAR_WIDTH
  const labelWidth = Math.max(0, ...bars.map(b => b.label.length))
  const countWidth = Math.max(0, ...bars.map(b => String(b.count).length))
  const room = columns - 1 - (2 + labelWidth + 2 + 2 + countWidth + 2 + 6)
  return Math.min(MAX_BAR_WIDTH, Math.max(MIN_BAR_WIDTH, room))
}

/** The upstreams of a result as bars, in natural order with `(none)` last. */
export function upstreamBars (result: LoadtestResult): Bar[] {
  return Object.keys(result.upstreams).sort(upstreamOrder).map(label => ({ label, count: result.upstreams[label]! }))
}

/** The human report printed at the end of a run. */
export function formatReport (result: LoadtestResult, method: string, columns?: number): string {
  const { total } = result.requests
  const ms = (n: number): string => `${n.toFixed(2)} ms`
  const codes = Object.entries(result.statusCodes)
  const codeWidth = Math.max(0, ...codes.map(([, n]) => String(n).length))
  const bars = upstreamBars(result)
  const limited = result.statusCodes['429'] ?? 0
  const lines = [
    `${method} ${result.url}  ${result.connections} connections  ${result.durationSeconds.toFixed(2)} s`,
    '',
    `throughput    ${result.requests.perSecond.toFixed(1)} req/s avg (${total} responses)`,
    `latency       p50 ${ms(result.latencyMs.p50)}  p95 ${ms(result.latencyMs.p95)}  p99 ${ms(result.latencyMs.p99)}  max ${ms(result.latencyMs.max)}`,
    `rate limited  ${percent(limited, total).trim()} (${limited} answered 429)`,
    `errors        ${result.errors} errors, ${result.timeouts} timeouts`,
    '',
    'status codes',
    ...(codes.length === 0 ? ['  (no responses)'] : codes.map(([code, n]) => `  ${code}  ${String(n).padStart(codeWidth)}  ${percent(n, total)}`)),
    '',
    'upstreams (x-served-by)',
    ...(bars.length === 0 ? ['  (no responses)'] : renderBars(bars, barWidth(columns, bars)).map(line => `  ${line}`))
  ]
  return lines.join('\n') + '\n'
}

/** The one-line progress shown on a terminal while a run goes on. */
export function progressLine (elapsed: number, duration: number, responses: number, width = 30): string {
  const done = Math.min(width, Math.round(Math.min(elapsed, duration) / duration * width))
  return `[${BLOCK.repeat(done)}${'░'.repeat(width - done)}] ${Math.min(elapsed, duration)}/${duration} s  ${responses} responses`
}

function percent (count: number, sum: number): string {
  return `${(sum > 0 ? count / sum * 100 : 0).toFixed(1)}%`.padStart(6)
}

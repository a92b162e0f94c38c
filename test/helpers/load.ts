import { Agent, request } from 'undici'
import { LatencyHistogram } from '../../src/stats/histogram.js'

/** One request of a load run; `i` counts requests started so far, so callers can vary paths or clients. */
export interface LoadRequest {
  path: string
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
}

export interface LoadOptions {
  /** The gateway's origin, e.g. http://127.0.0.1:1234 */
  url: string
  /** What to send; defaults to GET /. */
  next?: (i: number) => LoadRequest
  /** Requests in flight at once (closed loop: each worker sends its next one when the last ends). */
  concurrency: number
  /** Stop starting requests after this long. Always bounded: at most 60 s. */
  durationMs?: number
  /** Stop starting requests after this many. */
  requests?: number
  /** A request that takes longer than this fails with `timeout` (default 10 s). */
  timeoutMs?: number
}

export interface LoadResult {
  /** Requests that got a response (any status). */
  completed: number
  /** Responses by status code. */
  statuses: Record<number, number>
  /** Requests that got no response, by error code (ECONNREFUSED, UND_ERR_SOCKET, timeout, ...). */
  errors: Record<string, number>
  /** Responses by the upstream's `x-served-by` header (the demo backend's name). */
  servedBy: Record<string, number>
  latency: LatencyHistogram
  /** Wall time of the run, ms. */
  elapsedMs: number
}

/** Responses that were not 2xx/3xx plus requests with no response at all. */
export function failures (result: LoadResult): number {
  let failed = 0
  for (const [status, n] of Object.entries(result.statuses)) if (Number(status) >= 400) failed += n
  for (const n of Object.values(result.errors)) failed += n
  return failed
}

/** A short figure line for `t.comment` and docs/reliability.md. */
export function summary (result: LoadResult): string {
  const [p50 = 0, p99 = 0] = result.latency.percentiles([0.5, 0.99])
  const total = result.completed + Object.values(result.errors).reduce((a, b) => a + b, 0)
  return `${total} requests in ${(result.elapsedMs / 1000).toFixed(1)} s, ${failures(result)} failed, ` +
    `statuses ${JSON.stringify(result.statuses)}, errors ${JSON.stringify(result.errors)}, ` +
    `p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${result.latency.max.toFixed(1)} ms`
}

const MAX_DURATION_MS = 60_000

/**
 * A bounded closed-loop load run against 127.0.0.1 over keep-alive connections (undici, like a
 * real client fleet sharing a connection pool). Every request ends as a status or an error code;
 * nothing is thrown, so a test can assert on what was lost.
 */
export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  const { url, concurrency, timeoutMs = 10_000 } = options
  const next = options.next ?? (() => ({ path: '/' }))
  const durationMs = Math.min(options.durationMs ?? MAX_DURATION_MS, MAX_DURATION_MS)
  const limit = options.requests ?? Number.POSITIVE_INFINITY
  const dispatcher = new Agent({ connections: concurrency, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  const result: LoadResult = { completed: 0, statuses: {}, errors: {}, servedBy: {}, latency: new LatencyHistogram(), elapsedMs: 0 }
  const started = performance.now()
  const deadline = started + durationMs
  let issued = 0

  const one = async (spec: LoadRequest): Promise<void> => {
    const t0 = performance.now()
    try {
      const response = await request(url + spec.path, {
        method: (spec.method ?? 'GET') as 'GET',
        headers: spec.headers,
        body: spec.body,
        dispatcher,
        signal: AbortSignal.timeout(timeoutMs)
      })
      await response.body.dump({ limit: Number.POSITIVE_INFINITY })
      result.latency.record(performance.now() - t0)
      result.completed++
      result.statuses[response.statusCode] = (result.statuses[response.statusCode] ?? 0) + 1
      const by = response.headers['x-served-by']
      if (typeof by === 'string') result.servedBy[by] = (result.servedBy[by] ?? 0) + 1
    } catch (err) {
      const e = err as { code?: string, name?: string }
      const code = e.name === 'TimeoutError' ? 'timeout' : e.code ?? e.name ?? 'unknown'
      result.errors[code] = (result.errors[code] ?? 0) + 1
    }
  }

  const worker = async (): Promise<void> => {
    while (issued < limit && performance.now() < deadline) await one(next(issued++))
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  result.elapsedMs = performance.now() - started
  await dispatcher.close()
  return result
}

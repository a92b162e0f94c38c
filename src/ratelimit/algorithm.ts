import type { Algorithm, Decision } from './store.js'

/** One client's counters. Windows are aligned to multiples of `windowMs` since the Unix epoch. */
export interface WindowState {
  /** Index of the window `count` belongs to: `floor(now / windowMs)`. */
  window: number
  /** Requests admitted in that window. */
  count: number
  /** Requests admitted in the window just before it (what the sliding window weighs). */
  previous: number
}

/**
 * The decision for one request, as a pure function: `next` is the state to store (`state` itself,
 * untouched, when the request is denied: a denied request is not counted).
 */
export function decide (
  state: WindowState | undefined,
  now: number,
  windowMs: number,
  max: number,
  algorithm: Algorithm
): { decision: Decision, next: WindowState | undefined } {
  const working: WindowState = state === undefined
    ? { window: Math.floor(now / windowMs), count: 0, previous: 0 }
    : { window: state.window, count: state.count, previous: state.previous }
  const decision = step(working, now, windowMs, max, algorithm)
  return { decision, next: decision.allowed ? working : state }
}

/**
 * `decide` in place, for the memory store's hot path: rolls `state` into the current window and
 * counts the request when it is allowed. The Lua script in lua.ts mirrors this function line by line.
 *
 * Every quantity is kept multiplied by `windowMs` (requests × ms), so the comparisons are exact
 * integer arithmetic (in JS and in Lua alike) instead of fractions of a request.
 */
export function step (state: WindowState, now: number, windowMs: number, max: number, algorithm: Algorithm): Decision {
  const idx = Math.floor(now / windowMs)
  // roll: the count of the window just before becomes `previous`; anything older is forgotten
  if (state.window !== idx) {
    state.previous = state.window === idx - 1 ? state.count : 0
    state.count = 0
    state.window = idx
  }
  const { count, previous } = state
  const elapsed = now - idx * windowMs
  const remaining = windowMs - elapsed
  const sliding = algorithm === 'sliding-window'
  // estimate × windowMs, where estimate = previous × (windowMs - elapsed) / windowMs + count
  const scaled = (sliding ? previous * remaining : 0) + count * windowMs
  // (estimate + 1 - max) × windowMs: positive when this request would exceed the budget
  const overshoot = scaled + windowMs - max * windowMs

  if (overshoot > 0) {
    let ttl = remaining
    if (sliding && max >= 1) {
      if (count <= max - 1) {
        // the previous window's weight decays enough within this window (previous > 0 here)
        ttl = Math.ceil(overshoot / previous)
      } else {
        // wait into the next window, where previous' = count and count' = 0
        ttl = remaining + Math.ceil(windowMs * (count - max + 1) / count)
      }
    }
    return { allowed: false, current: max + 1, ttl: Math.max(1, ttl) }
  }

  state.count = count + 1
  return { allowed: true, current: Math.min(max, Math.ceil((scaled + windowMs) / windowMs)), ttl: remaining }
}

/** When a stored state stops mattering: the end of its window (fixed) or of the window after it (sliding). */
export function expiresAt (state: WindowState, windowMs: number, algorithm: Algorithm): number {
  return (state.window + (algorithm === 'sliding-window' ? 2 : 1)) * windowMs
}

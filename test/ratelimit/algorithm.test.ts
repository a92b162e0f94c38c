import t, { type Test } from 'tap'
import { decide, expiresAt, step, type WindowState } from '../../src/ratelimit/algorithm.js'
import { ALGORITHMS, type Algorithm, type Decision } from '../../src/ratelimit/store.js'

const W = 1000
/** A window start: 1_700_000_000_000 is a multiple of W, so T + x is x ms into window IDX. */
const T = 1_700_000_000_000
const IDX = T / W

type Row = [at: number, expected: Decision, comment: string]

/** Threads the state through `decide` for each row, checking every decision exactly. */
function run (t: Test, algorithm: Algorithm, max: number, rows: Row[], initial?: WindowState): WindowState | undefined {
  let state = initial
  for (const [at, expected, comment] of rows) {
    const before = state === undefined ? undefined : { ...state }
    const { decision, next } = decide(state, T + at, W, max, algorithm)
    t.strictSame(decision, expected, `${algorithm} max=${max} @${at}: ${comment}`)
    if (!decision.allowed) {
      t.equal(next, state, `@${at}: denied, the state is returned untouched`)
      t.strictSame(state, before, `@${at}: denied, the input is not mutated`)
    } else {
      t.strictSame(state, before, `@${at}: decide does not mutate its input`)
    }
    state = next
  }
  return state
}

const allow = (current: number, ttl: number): Decision => ({ allowed: true, current, ttl })
const deny = (max: number, ttl: number): Decision => ({ allowed: false, current: max + 1, ttl })

t.test('budget counts down, then denies at max + 1 with the exact ttl; denied requests are not counted', async t => {
  for (const algorithm of ALGORITHMS) {
    // a fresh client has no previous window, so both algorithms agree within the first window
    const last = run(t, algorithm, 3, [
      [100, allow(1, 900), 'first'],
      [200, allow(2, 800), 'second'],
      [300, allow(3, 700), 'third uses the budget up'],
      [400, deny(3, algorithm === 'fixed-window' ? 600 : 600 + 334), 'fourth denied'],
      [400, deny(3, algorithm === 'fixed-window' ? 600 : 600 + 334), 'denied again, same answer: not counted'],
      [999, deny(3, algorithm === 'fixed-window' ? 1 : 1 + 334), 'last ms of the window']
    ])
    t.strictSame(last, { window: IDX, count: 3, previous: 0 }, `${algorithm}: three counted, no more`)
  }
})

t.test('fixed window: a new window starts from zero', async t => {
  run(t, 'fixed-window', 3, [
    [1000, allow(1, 1000), 'adjacent window, fresh budget'],
    [1500, allow(2, 500), 'second'],
    [1600, allow(3, 400), 'third'],
    [1700, deny(3, 300), 'denied until the window ends'],
    [3250, allow(1, 750), 'skipped a window: fresh budget']
  ], { window: IDX, count: 3, previous: 0 })
})

t.test('window roll: adjacent window carries count into previous, a skipped window forgets it', async t => {
  const full: WindowState = { window: IDX, count: 4, previous: 2 }
  for (const algorithm of ALGORITHMS) {
    t.strictSame(decide(full, T + W, W, 10, algorithm).next, { window: IDX + 1, count: 1, previous: 4 }, `${algorithm}: adjacent`)
    t.strictSame(decide(full, T + 2 * W, W, 10, algorithm).next, { window: IDX + 2, count: 1, previous: 0 }, `${algorithm}: one skipped`)
    t.strictSame(decide(full, T + 7 * W + 5, W, 10, algorithm).next, { window: IDX + 7, count: 1, previous: 0 }, `${algorithm}: many skipped`)
    t.strictSame(decide(full, T + 999, W, 10, algorithm).next, { window: IDX, count: 5, previous: 2 }, `${algorithm}: same window`)
    t.strictSame(decide(undefined, T + 5, W, 10, algorithm).next, { window: IDX, count: 1, previous: 0 }, `${algorithm}: fresh`)
  }
})

t.test('sliding window weighs the previous window by its remaining overlap', async t => {
  // previous = 10, nothing yet in this window: current = ceil(10 × (W - elapsed) / W + 1)
  const rows: Array<[elapsed: number, current: number]> = [
    [0, 11], [1, 11], [99, 11], [100, 10], [101, 10], [500, 6], [550, 6], [899, 3], [900, 2], [999, 2]
  ]
  for (const [elapsed, current] of rows) {
    const { decision, next } = decide({ window: IDX - 1, count: 10, previous: 3 }, T + elapsed, W, 100, 'sliding-window')
    t.strictSame(decision, allow(current, W - elapsed), `elapsed ${elapsed}`)
    t.strictSame(next, { window: IDX, count: 1, previous: 10 })
  }
  // the fixed window ignores it
  const fixed = decide({ window: IDX - 1, count: 10, previous: 3 }, T + 10, W, 100, 'fixed-window')
  t.strictSame(fixed.decision, allow(1, 990))
})

t.test('sliding window: exact retry while the previous window decays (count ≤ max - 1)', async t => {
  // max 4, previous 4: estimate = 4 × (W - elapsed) / W + count
  run(t, 'sliding-window', 4, [
    [250, allow(4, 750), '3 + 1 fits exactly'],
    [250, deny(4, 250), 'ceil(750 - 1000 × (4 - 1 - 1) / 4) = 250'],
    [499, deny(4, 1), '1 ms before it fits'],
    [500, allow(4, 500), '2 + 1 + 1 fits'],
    [600, deny(4, 150), 'ceil(400 - 1000 × 1 / 4) = 150'],
    [750, allow(4, 250), 'fits again'],
    [800, deny(4, 200), 'count = max - 1: wait until the previous window has no weight left'],
    [1000, allow(4, 1000), 'next window: previous = 3, estimate 3 + 1']
  ], { window: IDX - 1, count: 4, previous: 0 })
  // non-integer quotient: previous 3, max 3, elapsed 100: ceil(900 - 1000 × 2 / 3) = ceil(233.33) = 234
  t.strictSame(decide({ window: IDX, count: 0, previous: 3 }, T + 100, W, 3, 'sliding-window').decision, deny(3, 234))
  // max = 1: the previous window's single request must have fully decayed
  t.strictSame(decide({ window: IDX - 1, count: 1, previous: 0 }, T + 400, W, 1, 'sliding-window').decision, deny(1, 600))
  t.strictSame(decide({ window: IDX - 1, count: 1, previous: 0 }, T + 999, W, 1, 'sliding-window').decision, deny(1, 1))
})

t.test('sliding window: exact retry when waiting into the next window (count ≥ max)', async t => {
  run(t, 'sliding-window', 4, [
    [900, allow(1, 100), 'fresh'],
    [900, allow(2, 100), ''],
    [900, allow(3, 100), ''],
    [900, allow(4, 100), 'budget used'],
    [900, deny(4, 100 + 250), '(W - elapsed) + ceil(1000 × (1 - 3 / 4))'],
    [1249, deny(4, 1), 'next window: 4 × 751 / 1000 + 1 > 4'],
    [1250, allow(4, 750), 'next window: 4 × 750 / 1000 + 1 = 4']
  ])
  // max = 1: the request made in this window weighs on all of the next one
  run(t, 'sliding-window', 1, [
    [300, allow(1, 700), 'fresh'],
    [300, deny(1, 700 + 1000), 'wait until the window after next'],
    [1999, deny(1, 1), 'next window, 1 ms before its end'],
    [2000, allow(1, 1000), 'the window after next']
  ])
  // non-integer: max 3, count 3, elapsed 10: 990 + ceil(1000 × (1 - 2 / 3)) = 990 + 334
  t.strictSame(decide({ window: IDX, count: 3, previous: 0 }, T + 10, W, 3, 'sliding-window').decision, deny(3, 1324))
  // a budget lowered below the current count (e.g. a config change): count 7 > max 3
  t.strictSame(decide({ window: IDX, count: 7, previous: 9 }, T + 10, W, 3, 'sliding-window').decision, deny(3, 990 + Math.ceil(1000 * 5 / 7)))
})

/** Deterministic pseudo-random numbers (mulberry32). */
function prng (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6D2B79F5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('the ttl of a denial is the smallest wait after which the request is admitted', async t => {
  const random = prng(42)
  const int = (n: number): number => Math.floor(random() * n)
  let checked = 0
  for (let i = 0; i < 5000 && checked < 400; i++) {
    const algorithm = ALGORITHMS[i % 2]!
    const windowMs = [100, 250, 999, 1000, 1500][int(5)]!
    const max = 1 + int(12)
    const idx = 1_000_000 + int(3)
    const state: WindowState = { window: 1_000_000, count: int(max + 1), previous: int(max + 1) }
    const now = idx * windowMs + int(windowMs)
    const { decision } = decide(state, now, windowMs, max, algorithm)
    if (decision.allowed) continue
    checked++
    const at = (wait: number): boolean => decide(state, now + wait, windowMs, max, algorithm).decision.allowed
    let first = 1
    while (!at(first)) first++
    if (decision.ttl !== first || decision.current !== max + 1) {
      t.fail(`${algorithm} W=${windowMs} max=${max} ${JSON.stringify(state)} now=${now}: ttl ${decision.ttl}, first admitted after ${first}`)
    }
  }
  t.equal(checked, 400, `${checked} denials checked by brute force`)
  t.pass('every ttl was the first admitted ms')
})

t.test('current is never above max, and exactly max + 1 on denial', async t => {
  const random = prng(7)
  for (let i = 0; i < 500; i++) {
    const algorithm = ALGORITHMS[i % 2]!
    const max = 1 + Math.floor(random() * 8)
    const state: WindowState = { window: IDX - 1, count: Math.floor(random() * (max + 1)), previous: Math.floor(random() * (max + 1)) }
    const { decision } = decide(state, T + Math.floor(random() * W), W, max, algorithm)
    if (decision.current > max + 1 || decision.current < 1 || (decision.allowed && decision.current > max) || (!decision.allowed && decision.current !== max + 1)) {
      t.fail(`current ${decision.current} for max ${max}`)
    }
  }
  t.pass('checked')
})

/** A client that tries a request every ms from T + from to T + to; returns the times admitted. */
function greedy (algorithm: Algorithm, max: number, from: number, to: number, tries = 1): number[] {
  const admitted: number[] = []
  let state: WindowState | undefined
  for (let at = from; at < to; at++) {
    for (let k = 0; k < tries; k++) {
      const { decision, next } = decide(state, T + at, W, max, algorithm)
      state = next
      if (decision.allowed) admitted.push(at)
    }
  }
  return admitted
}

/** The most admitted within any interval [a, a + length). */
function busiest (times: number[], length: number): number {
  let most = 0
  let lo = 0
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! >= length) lo++
    most = Math.max(most, hi - lo + 1)
  }
  return most
}

t.test('the burst across a window edge: fixed admits 2 × max, sliding about max', async t => {
  const max = 10
  // a burst of max at the end of window N, then another at the start of N + 1
  const burst = (algorithm: Algorithm): Decision[] => {
    let state: WindowState | undefined
    const out: Decision[] = []
    for (const at of [...Array(2 * max).fill(950), ...Array(2 * max).fill(1005)] as number[]) {
      const { decision, next } = decide(state, T + at, W, max, algorithm)
      state = next
      out.push(decision)
    }
    return out
  }
  const fixed = burst('fixed-window')
  t.equal(fixed.filter(d => d.allowed).length, 2 * max, 'fixed: 2 × max within 55 ms')
  t.equal(fixed.slice(2 * max, 3 * max).filter(d => d.allowed).length, max, 'fixed: all of the second burst')
  const sliding = burst('sliding-window')
  t.equal(sliding.slice(0, 2 * max).filter(d => d.allowed).length, max, 'sliding: max in the first burst')
  t.equal(sliding.slice(2 * max).filter(d => d.allowed).length, 0, 'sliding: none in the second (10 × 0.995 + 1 > 10)')

  // a client hammering every ms (20 tries each) from late in window N to late in N + 3
  const fixedTimes = greedy('fixed-window', max, 900, 3900, 20)
  const slidingTimes = greedy('sliding-window', max, 900, 3900, 20)
  t.equal(busiest(fixedTimes, 101), 2 * max, 'fixed: 2 × max within 101 ms across the edge')
  t.equal(fixedTimes.length, 4 * max, 'fixed: max per aligned window')
  for (const length of [2, 10, 50, 100, 250, 500]) {
    const bound = max + Math.floor(max * length / W)
    t.ok(busiest(slidingTimes, length) <= bound, `sliding: at most ${bound} within any ${length} ms (got ${busiest(slidingTimes, length)})`)
  }
  t.ok(busiest(slidingTimes, W) < 2 * max, `sliding: under 2 × max within any window-long interval (got ${busiest(slidingTimes, W)})`)
})

t.test('step mutates in place and agrees with decide', async t => {
  const state: WindowState = { window: IDX - 1, count: 2, previous: 1 }
  const { decision, next } = decide(state, T + 500, W, 5, 'sliding-window')
  t.strictSame(step(state, T + 500, W, 5, 'sliding-window'), decision)
  t.strictSame(state, next)
  // a denial rolls the state but does not count
  const full: WindowState = { window: IDX - 1, count: 5, previous: 0 }
  t.equal(step(full, T + 10, W, 5, 'sliding-window').allowed, false)
  t.strictSame(full, { window: IDX, count: 0, previous: 5 })
})

t.test('a budget below 1 admits nothing and names the window end', async t => {
  for (const algorithm of ALGORITHMS) {
    t.strictSame(decide(undefined, T + 300, W, 0, algorithm), { decision: deny(0, 700), next: undefined }, algorithm)
  }
})

t.test('expiresAt: the end of the window (fixed) or of the next one (sliding)', async t => {
  const state: WindowState = { window: IDX, count: 1, previous: 0 }
  t.equal(expiresAt(state, W, 'fixed-window'), T + W)
  t.equal(expiresAt(state, W, 'sliding-window'), T + 2 * W)
})

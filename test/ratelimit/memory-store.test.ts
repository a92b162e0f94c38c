import t, { type Test } from 'tap'
import { decide, type WindowState } from '../../src/ratelimit/algorithm.js'
import { MemoryStore } from '../../src/ratelimit/memory-store.js'
import { ALGORITHMS, type Algorithm } from '../../src/ratelimit/store.js'
import { waitFor } from '../helpers/wait.js'

const W = 1000
const T = 1_700_000_000_000 // a multiple of W

/** A store on a clock the test moves. */
function clocked (t: Test, algorithm: Algorithm, options: { maxKeys?: number, sweepIntervalMs?: number } = {}): { store: MemoryStore, clock: { now: number } } {
  const clock = { now: T }
  const store = new MemoryStore({ algorithm, now: () => clock.now, ...options })
  t.teardown(() => store.close())
  return { store, clock }
}

t.test('hit is synchronous and counts down to a denial', async t => {
  for (const algorithm of ALGORITHMS) {
    const { store, clock } = clocked(t, algorithm)
    t.equal(store.kind, 'memory')
    clock.now = T + 200
    for (let i = 1; i <= 5; i++) {
      const decision = store.hit('c', W, 5)
      t.notOk(decision instanceof Promise, 'a plain Decision, not a Promise')
      t.strictSame(decision, { allowed: true, current: i, ttl: 800 }, `${algorithm}: hit ${i}`)
    }
    const retry = algorithm === 'fixed-window' ? 800 : 800 + 200
    for (let i = 0; i < 5; i++) t.strictSame(store.hit('c', W, 5), { allowed: false, current: 6, ttl: retry }, `${algorithm}: denied`)
    clock.now = T + W
    // not counted: fixed starts over; sliding weighs 5 (not 10) × 1 → still full at the edge...
    if (algorithm === 'fixed-window') {
      t.strictSame(store.hit('c', W, 5), { allowed: true, current: 1, ttl: 1000 }, 'fixed: fresh budget')
    } else {
      t.strictSame(store.hit('c', W, 5), { allowed: false, current: 6, ttl: 200 }, 'sliding: 5 × 1 + 1 > 5, fits after 200 ms')
      clock.now = T + W + 200
      t.strictSame(store.hit('c', W, 5), { allowed: true, current: 5, ttl: 800 }, 'sliding: 5 × 0.8 + 1 = 5: the denials were not counted')
    }
  }
})

t.test('the store decides exactly as decide() does, key by key', async t => {
  // a model: a plain map of states threaded through decide()
  let seed = 1
  const random = (): number => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
  for (const algorithm of ALGORITHMS) {
    const { store, clock } = clocked(t, algorithm)
    const model = new Map<string, WindowState | undefined>()
    let mismatches = 0
    for (let i = 0; i < 3000; i++) {
      clock.now += Math.floor(random() * 40)
      const key = `k${Math.floor(random() * 4)}`
      const max = key === 'k3' ? 1 : 6
      const { decision, next } = decide(model.get(key), clock.now, W, max, algorithm)
      model.set(key, next)
      const got = store.hit(key, W, max)
      if (got.allowed !== decision.allowed || got.current !== decision.current || got.ttl !== decision.ttl) mismatches++
    }
    t.equal(mismatches, 0, `${algorithm}: 3000 hits over ~60 windows, identical decisions`)
  }
})

t.test('keys are independent', async t => {
  const { store } = clocked(t, 'sliding-window')
  store.hit('a', W, 2)
  store.hit('a', W, 2)
  t.equal(store.hit('a', W, 2).allowed, false, 'a is used up')
  t.strictSame(store.hit('b', W, 2), { allowed: true, current: 1, ttl: 1000 }, 'b is untouched')
  t.strictSame(store.hit('a:', W, 2), { allowed: true, current: 1, ttl: 1000 }, 'a similar key is another client')
  t.equal(store.size, 3)
})

t.test('maxKeys bounds memory under 3 × maxKeys distinct clients', async t => {
  const maxKeys = 100
  const { store, clock } = clocked(t, 'fixed-window', { maxKeys })
  let largest = 0
  for (let i = 0; i < 3 * maxKeys; i++) {
    store.hit(`ip-${i}`, W, 2)
    store.hit(`ip-${i}`, W, 2)
    largest = Math.max(largest, store.size)
    clock.now++
  }
  t.equal(largest, maxKeys, 'never more than maxKeys')
  t.equal(store.size, maxKeys)
  t.equal(store.hit(`ip-${3 * maxKeys - 1}`, W, 2).allowed, false, 'the newest client is still remembered')
  t.strictSame(store.hit('ip-0', W, 2).current, 1, 'the oldest client was evicted (forgotten)')
  t.equal(store.size, maxKeys)
})

t.test('a client whose window rolls moves to the back of the eviction order', async t => {
  const { store, clock } = clocked(t, 'fixed-window', { maxKeys: 3 })
  const LONG = 10 * W // b, c and d stay in one window throughout
  clock.now = T + 900
  store.hit('old', W, 5)
  store.hit('b', LONG, 5)
  store.hit('c', LONG, 5)
  clock.now = T + W + 10
  t.equal(store.hit('old', W, 5).current, 1, 'old, in its new window, is re-inserted last')
  store.hit('d', LONG, 5) // full: evicts the oldest-inserted, now b
  t.equal(store.size, 3)
  t.equal(store.hit('c', LONG, 5).current, 2, 'c is remembered')
  t.equal(store.hit('old', W, 5).current, 2, 'old survived the eviction')
  t.equal(store.hit('b', LONG, 5).current, 1, 'b was evicted (forgotten)')
  t.equal(store.size, 3)
})

t.test('sweep forgets clients whose counts no longer matter', async t => {
  const fixed = clocked(t, 'fixed-window')
  fixed.clock.now = T + 100
  fixed.store.hit('a', W, 5)
  fixed.clock.now = T + 600
  fixed.store.hit('b', W, 5)
  fixed.store.hit('b2', 2 * W, 5) // a longer window lives longer
  fixed.clock.now = T + W - 1
  t.equal(fixed.store.sweep(), 0, 'fixed: kept to the end of the window')
  fixed.clock.now = T + W
  t.equal(fixed.store.sweep(), 2, 'fixed: gone when the window ends')
  t.equal(fixed.store.size, 1, 'the 2 s window remains')
  fixed.clock.now = T + 2 * W
  t.equal(fixed.store.sweep(), 1)
  t.equal(fixed.store.size, 0)

  const sliding = clocked(t, 'sliding-window')
  sliding.clock.now = T + 100
  for (let i = 0; i < 3; i++) sliding.store.hit('a', W, 3)
  sliding.clock.now = T + 2 * W - 1
  t.equal(sliding.store.sweep(), 0, 'sliding: kept through the next window, where it still weighs')
  t.strictSame(sliding.store.hit('a', W, 3), { allowed: true, current: 2, ttl: 1 }, 'its weight (3 × 1/1000) still counts')
  sliding.clock.now = T + 3 * W
  t.equal(sliding.store.sweep(), 1, 'sliding: gone two windows after its last one')
  t.equal(sliding.store.size, 0)
  t.strictSame(sliding.store.hit('a', W, 3), { allowed: true, current: 1, ttl: 1000 })
})

t.test('the timer sweeps by itself, is unref\'d, and stops on close', async t => {
  const timeouts = (): number => process.getActiveResourcesInfo().filter(r => r === 'Timeout').length
  const before = timeouts()
  const { store, clock } = clocked(t, 'fixed-window', { sweepIntervalMs: 5 })
  t.equal(timeouts(), before, 'the sweep timer does not keep the process alive')
  for (let i = 0; i < 10; i++) store.hit(`k${i}`, W, 5)
  t.equal(store.size, 10)
  clock.now = T + W
  await waitFor(() => store.size === 0, 'the timer to sweep')

  const closed = clocked(t, 'fixed-window', { sweepIntervalMs: 5 })
  closed.store.hit('k', W, 5)
  closed.store.close()
  closed.clock.now = T + 10 * W
  await new Promise(resolve => setTimeout(resolve, 60))
  t.equal(closed.store.size, 1, 'no sweep after close')
})

t.test('the real clock by default', async t => {
  const store = new MemoryStore({ algorithm: 'fixed-window' })
  t.teardown(() => store.close())
  const before = Date.now()
  const { ttl } = store.hit('k', 60_000, 5)
  const after = Date.now()
  t.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl} within the window`)
  if (Math.floor(before / 60_000) === Math.floor(after / 60_000)) {
    t.ok(ttl <= 60_000 - (before % 60_000) && ttl >= 60_000 - (after % 60_000), `ttl ${ttl} from Date.now()`)
  }
})

import t from 'tap'
import { RateWindow } from '../../src/stats/rate.js'

const clock = (start = 1_000_000): { now: () => number, advance: (ms: number) => void } => {
  let at = start
  return { now: () => at, advance: ms => { at += ms } }
}

t.test('counts the last 60 one-second buckets and drops older ones', async t => {
  const c = clock()
  const w = new RateWindow(60, c.now)
  t.equal(w.seconds, 60)
  for (let s = 0; s < 60; s++) {
    w.add(s + 1) // second s gets s+1 events
    c.advance(1000)
  }
  // now in second 60: the window is seconds 1..60, second 0 (1 event) fell out
  t.equal(w.total(), (60 * 61) / 2 - 1)
  c.advance(30_000)
  // seconds 31..90: only seconds 31..59 still hold events (32..60 each)
  t.equal(w.total(), Array.from({ length: 29 }, (_, i) => i + 32).reduce((a, b) => a + b))
  c.advance(60_000)
  t.equal(w.total(), 0, 'a quiet minute empties it')
  t.equal(w.perSecond(), 0)
})

t.test('a bucket reused a lap later starts from zero (no stale counts)', async t => {
  const c = clock(0)
  const w = new RateWindow(60, c.now)
  w.add(100)
  c.advance(60_000) // the same slot, one lap later
  w.add(1)
  t.equal(w.total(), 1)
})

t.test('memory is the ring whatever the traffic: hours of events keep only the last minute', async t => {
  const c = clock()
  const w = new RateWindow(60, c.now)
  for (let s = 0; s < 3 * 3600; s++) {
    for (let i = 0; i < 3; i++) w.add()
    c.advance(1000)
  }
  c.advance(-1) // still inside the last second written
  t.equal(w.total(), 180, '60 s × 3 events')
  t.equal(w.perSecond(), 3)
})

t.test('a young window divides by its age (at least 1 s), an old one by 60 s', async t => {
  const c = clock()
  const w = new RateWindow(60, c.now)
  for (let i = 0; i < 10; i++) w.add()
  t.equal(w.perSecond(), 10, 'within the first second: over 1 s')
  c.advance(4000)
  for (let i = 0; i < 10; i++) w.add()
  t.equal(w.perSecond(), 5, '20 events in 4 s')
  c.advance(120_000)
  for (let i = 0; i < 120; i++) w.add()
  t.equal(w.perSecond(), 2, '120 events over a full 60 s window')
})

t.test('rejects a size that is not a positive integer', async t => {
  t.throws(() => new RateWindow(0), RangeError)
  t.throws(() => new RateWindow(1.5), RangeError)
  t.equal(new RateWindow(5).seconds, 5, 'default clock works')
})

/**
 * Events per second over a sliding window of whole seconds: a ring of one-second buckets, each
 * stamped with the second it counts, so a bucket left over from an earlier lap is recognised as
 * stale and reset instead of summed. Memory is the ring (two arrays of `seconds` numbers), whatever
 * the traffic.
 */
export class RateWindow {
  readonly #size: number
  readonly #counts: Float64Array
  readonly #stamps: Float64Array
  readonly #now: () => number
  readonly #startedAt: number

  /** `now` is a monotonic clock in milliseconds; the window starts filling at construction. */
  constructor (seconds = 60, now: () => number = () => performance.now()) {
    if (!Number.isInteger(seconds) || seconds < 1) throw new RangeError('seconds must be a positive integer')
    this.#size = seconds
    this.#counts = new Float64Array(seconds)
    this.#stamps = new Float64Array(seconds).fill(-1)
    this.#now = now
    this.#startedAt = now()
  }

  get seconds (): number {
    return this.#size
  }

  add (n = 1): void {
    const second = Math.floor(this.#now() / 1000)
    const slot = second % this.#size
    if (this.#stamps[slot] !== second) {
      this.#stamps[slot] = second
      this.#counts[slot] = 0
    }
    this.#counts[slot] = (this.#counts[slot] as number) + n
  }

  /** Events in the window: the current second and the `seconds - 1` before it. */
  total (): number {
    const second = Math.floor(this.#now() / 1000)
    let sum = 0
    for (let slot = 0; slot < this.#size; slot++) {
      const stamp = this.#stamps[slot] as number
      if (stamp > second - this.#size && stamp <= second) sum += this.#counts[slot] as number
    }
    return sum
  }

  /**
   * Mean events per second over the window; while the window is younger than `seconds`, over the
   * time since it started (at least one second), so a fresh gateway does not under-report.
   */
  perSecond (): number {
    const elapsed = (this.#now() - this.#startedAt) / 1000
    return this.total() / Math.min(this.#size, Math.max(1, elapsed))
  }
}

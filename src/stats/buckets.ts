/**
 * Prometheus-style histograms (observations counted under fixed upper bounds) for a fixed number
 * of series: an observation is a short scan of the bounds and three array increments, with no
 * allocation, so it can run on every request. `cumulative` gives the `le` counts Prometheus expects.
 */
export class BucketHistograms {
  readonly bounds: readonly number[]
  readonly #counts: Float64Array[]
  readonly #sums: Float64Array
  readonly #totals: Float64Array

  constructor (bounds: readonly number[], series: number) {
    for (let i = 1; i < bounds.length; i++) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) throw new RangeError('bounds must be increasing')
    }
    this.bounds = Object.freeze([...bounds])
    // one more slot per series: observations above the last bound (only in +Inf)
    this.#counts = Array.from({ length: series }, () => new Float64Array(bounds.length + 1))
    this.#sums = new Float64Array(series)
    this.#totals = new Float64Array(series)
  }

  get series (): number {
    return this.#counts.length
  }

  observe (series: number, value: number): void {
    const counts = this.#counts[series]
    if (counts === undefined || !Number.isFinite(value)) return
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    counts[i] = (counts[i] as number) + 1
    this.#sums[series] = (this.#sums[series] as number) + value
    this.#totals[series] = (this.#totals[series] as number) + 1
  }

  count (series: number): number {
    return this.#totals[series] ?? 0
  }

  sum (series: number): number {
    return this.#sums[series] ?? 0
  }

  /** Observations ≤ each bound, in the order of `bounds` (the +Inf count is `count`). */
  cumulative (series: number): number[] {
    const counts = this.#counts[series]
    const out: number[] = []
    if (counts === undefined) return out
    let acc = 0
    for (let i = 0; i < this.bounds.length; i++) {
      acc += counts[i] as number
      out.push(acc)
    }
    return out
  }
}

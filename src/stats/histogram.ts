/** Where a `LatencyHistogram`'s buckets start and end, and how wide each one is. */
export interface HistogramOptions {
  /** Lower bound of the first bucket; smaller values are counted in it. Default 0.01 (10 µs in ms). */
  lowest?: number
  /** Values above this are counted in the last bucket (min, max and avg stay exact). Default 3 600 000 (1 h in ms). */
  highest?: number
  /** Relative width of a bucket: each one's upper bound is `1 + precision` times its lower bound. Default 0.02. */
  precision?: number
}

export interface Percentiles {
  p50: number
  p95: number
  p99: number
}

/**
 * A histogram of positive values (latencies) over fixed log-scale buckets, as HDR histograms do:
 * memory is set by the range and the precision (about 1 100 buckets, 9 KB, by default), never by
 * how many values were recorded. A percentile is reported as the geometric middle of its bucket,
 * so it is within `precision / 2` (1% by default) of the true value, and never outside [min, max]
 * (the first and last ranks are the exact min and max).
 */
export class LatencyHistogram {
  readonly #lowest: number
  readonly #logBase: number
  readonly #counts: Float64Array
  #count = 0
  #sum = 0
  #min = Infinity
  #max = -Infinity

  constructor (options: HistogramOptions = {}) {
    const { lowest = 0.01, highest = 3_600_000, precision = 0.02 } = options
    if (!(lowest > 0) || !(highest > lowest) || !(precision > 0)) throw new RangeError('need 0 < lowest < highest and precision > 0')
    this.#lowest = lowest
    this.#logBase = Math.log1p(precision)
    this.#counts = new Float64Array(Math.ceil(Math.log(highest / lowest) / this.#logBase) + 1)
  }

  /** How many buckets the histogram holds (fixed at construction). */
  get buckets (): number {
    return this.#counts.length
  }

  get count (): number {
    return this.#count
  }

  get sum (): number {
    return this.#sum
  }

  /** The smallest value recorded; 0 when none was. */
  get min (): number {
    return this.#count === 0 ? 0 : this.#min
  }

  /** The largest value recorded; 0 when none was. */
  get max (): number {
    return this.#count === 0 ? 0 : this.#max
  }

  get mean (): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count
  }

  record (value: number): void {
    if (!(value >= 0) || value === Infinity) return
    const bucket = this.#index(value)
    this.#counts[bucket] = (this.#counts[bucket] as number) + 1
    this.#count++
    this.#sum += value
    if (value < this.#min) this.#min = value
    if (value > this.#max) this.#max = value
  }

  /** The value below which `q` (0..1) of the recorded values fall (nearest rank); 0 when empty. */
  percentile (q: number): number {
    return this.percentiles([q])[0] as number
  }

  /** Several percentiles (each 0..1) in one pass over the buckets, in the order asked. */
  percentiles (qs: readonly number[]): number[] {
    const out = qs.map(() => 0)
    if (this.#count === 0) return out
    const order = qs.map((_, i) => i).sort((a, b) => (qs[a] as number) - (qs[b] as number))
    const counts = this.#counts
    let next = 0
    let seen = 0
    for (let bucket = 0; bucket < counts.length && next < order.length; bucket++) {
      seen += counts[bucket] as number
      while (next < order.length) {
        const at = order[next] as number
        const rank = Math.max(1, Math.ceil(Math.min(1, Math.max(0, qs[at] as number)) * this.#count))
        if (seen < rank) break
        // the extremes are known exactly, and beyond the range the max is the only estimate left
        out[at] = rank === 1 ? this.#min : rank === this.#count || bucket === counts.length - 1 ? this.#max : this.#clamp(this.#middle(bucket))
        next++
      }
    }
    return out
  }

  reset (): void {
    this.#counts.fill(0)
    this.#count = 0
    this.#sum = 0
    this.#min = Infinity
    this.#max = -Infinity
  }

  #index (value: number): number {
    if (value <= this.#lowest) return 0
    const i = Math.floor(Math.log(value / this.#lowest) / this.#logBase)
    return i < this.#counts.length ? i : this.#counts.length - 1
  }

  /** The geometric middle of a bucket: the estimate whose relative error is the smallest. */
  #middle (bucket: number): number {
    return this.#lowest * Math.exp((bucket + 0.5) * this.#logBase)
  }

  #clamp (value: number): number {
    return value < this.#min ? this.#min : value > this.#max ? this.#max : value
  }
}

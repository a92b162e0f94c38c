/**
 * Counters per upstream server, each a fixed row of `width` numbers (one per combination of the
 * other, bounded labels), so recording is an array increment with no allocation after a server's
 * first request. Rows of servers that left the pool are read one last time by `forEach` and then
 * dropped (and, past `slack` rows, whenever a new row is made), so memory follows the pool, not
 * the history of servers ever added.
 */
export class UpstreamSeries {
  readonly #width: number
  readonly #slack: number
  readonly #keep: Set<string>
  readonly #rows = new Map<string, Float64Array>()

  /** `isLive(id)` says whether a server is still in the pool; ids in `keep` (e.g. "none") always are. */
  constructor (width: number, readonly isLive: (id: string) => boolean, keep: readonly string[] = [], slack = 16) {
    this.#width = width
    this.#slack = slack + keep.length
    this.#keep = new Set(keep)
  }

  get size (): number {
    return this.#rows.size
  }

  add (id: string, column: number, n = 1): void {
    let row = this.#rows.get(id)
    if (row === undefined) {
      row = new Float64Array(this.#width)
      this.#rows.set(id, row)
      if (this.#rows.size > this.#slack) this.#prune(id)
    }
    row[column] = (row[column] as number) + n
  }

  get (id: string, column: number): number {
    return this.#rows.get(id)?.[column] ?? 0
  }

  /** Visits every non-zero cell; rows of servers no longer live are dropped once visited. */
  forEach (visit: (id: string, column: number, value: number) => void): void {
    for (const [id, row] of this.#rows) {
      for (let column = 0; column < row.length; column++) {
        const value = row[column] as number
        if (value !== 0) visit(id, column, value)
      }
      if (!this.#live(id)) this.#rows.delete(id)
    }
  }

  #live (id: string): boolean {
    return this.#keep.has(id) || this.isLive(id)
  }

  #prune (current: string): void {
    for (const id of this.#rows.keys()) {
      if (id !== current && !this.#live(id)) this.#rows.delete(id)
    }
  }
}

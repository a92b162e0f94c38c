import { constants, fstatSync, openSync, writeSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LineBytes } from './access-log.js'

/** pino's stream contract, as far as the gateway uses it. */
export interface LogDestination {
  write (line: string): boolean
  /** At process exit: writes what can still be written synchronously. */
  flushSync (): void
  /** At the end of a graceful shutdown: hands everything on and waits (at most `timeoutMs`) until the output took it. */
  end (timeoutMs: number): Promise<void>
}

/** Where a batch of lines goes. `bytes` is the batch's own memory, valid only during the call: what is kept is copied. */
interface Output {
  write (bytes: Buffer): void
  flushSync (): void
  end (timeoutMs: number): Promise<void>
}

/** The bytes lines are gathered in; more are handed on at once. */
const BATCH_BYTES = 64 * 1024
/**
 * How long a line may wait in the batch. Writes come at most this often, and with them the wake-ups
 * of a pipe's reader: one write per event-loop turn cost 1.4–1.6 µs per request in the pipe write
 * alone, one per 10 ms 0.2–0.3 µs (docs/benchmarks.md).
 */
const FLUSH_MS = 10
/** What a pipe may hold back while its reader is slower than the gateway: past it lines are dropped, not memory grown. */
const MAX_QUEUED = 16 * 1024 * 1024
/** Linux's atomic pipe write (pipe(7)). */
const PIPE_BUF = 4096
const NEWLINE = 0x0a
const PAUSE = new Int32Array(new SharedArrayBuffer(4))

/**
 * The gateway's log destination for a file descriptor (stdout). Lines (the access log above all:
 * one line per request) are gathered for at most FLUSH_MS, or up to BATCH_BYTES, and leave
 * together in one write(2) (a few to a pipe):
 * - to a pipe (a container runtime's log collector, a shell pipeline) without blocking, when the
 *   process may reopen it: written at once when the pipe has room, queued (up to MAX_QUEUED, then
 *   dropped) while its reader is behind;
 * - to anything else (a file, a terminal, /dev/null, journald's socket) synchronously, as pino's
 *   default destination and Node's own stdout do.
 * pino's asynchronous destination instead sends each write through libuv's thread pool, a thread
 * hand-off both ways on the gateway's one core: about 4 % of throughput with the access log on
 * (docs/benchmarks.md).
 */
export function logDestination (fd: number): LogDestination {
  if (!fstatSync(fd).isFIFO()) return new Batched(new SyncOutput(fd))
  const nonBlocking = reopenNonBlocking(fd)
  if (nonBlocking === undefined) {
    // another user's pipe (a container running as non-root): still whole lines, but blocking
    process.stderr.write('sluice: stdout is a pipe this process cannot reopen non-blocking; log writes wait while its reader is behind\n')
  }
  return new Batched(new FifoOutput(nonBlocking ?? fd))
}

/** A descriptor of its own, with O_NONBLOCK, on the pipe behind `fd` (Linux's /proc); undefined where that cannot be had. */
function reopenNonBlocking (fd: number): number | undefined {
  try {
    return openSync(`/proc/self/fd/${fd}`, constants.O_WRONLY | constants.O_NONBLOCK)
  } catch {
    return undefined
  }
}

/**
 * Gathers lines as UTF-8 in one reused buffer, each encoded as it is written (while it is hot in
 * the cache, and into no new string or buffer): joining them as strings, then flattening and
 * encoding the rope at the end of each turn, cost about a tenth of the throughput with the access
 * log on (docs/benchmarks.md).
 */
class Batched implements LogDestination, LineBytes {
  readonly #out: Output
  readonly batch = Buffer.allocUnsafeSlow(BATCH_BYTES)
  #length = 0
  #scheduled = false

  constructor (out: Output) {
    this.#out = out
  }

  write (line: string): boolean {
    // a line of n UTF-16 code units takes at most 3n bytes
    const at = this.reserve(line.length * 3)
    if (at < 0) {
      // longer than a batch (a long error stack): on its own
      this.#out.write(Buffer.from(line))
      return true
    }
    this.commit(at + this.batch.write(line, at))
    return true
  }

  reserve (most: number): number {
    if (most > this.batch.length) {
      this.#handOn()
      return -1
    }
    if (most > this.batch.length - this.#length) this.#handOn()
    return this.#length
  }

  commit (end: number): void {
    this.#length = end
    if (!this.#scheduled) {
      this.#scheduled = true
      // at exit the process's 'exit' handler flushes (flushSync): the timer need not hold it open
      setTimeout(this.#flushDue, FLUSH_MS).unref()
    }
  }

  flushSync (): void {
    this.#handOn()
    this.#out.flushSync()
  }

  async end (timeoutMs: number): Promise<void> {
    this.#handOn()
    await this.#out.end(timeoutMs)
  }

  #handOn (): void {
    const length = this.#length
    if (length === 0) return
    this.#length = 0
    this.#out.write(this.batch.subarray(0, length))
  }

  readonly #flushDue = (): void => {
    this.#scheduled = false
    this.#handOn()
  }
}

/**
 * Files, terminals, /dev/null: written at once, synchronously, as pino's default destination and
 * Node's own stdout do. A descriptor another process left non-blocking (a terminal) is waited on.
 */
class SyncOutput implements Output {
  readonly #fd: number
  #failed = false

  constructor (fd: number) {
    this.#fd = fd
  }

  write (bytes: Buffer): void {
    let offset = 0
    while (offset < bytes.length && !this.#failed) {
      try {
        offset += writeSync(this.#fd, bytes, offset, bytes.length - offset)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') Atomics.wait(PAUSE, 0, 0, 5)
        else {
          this.#failed = true
          outputFailed(err as NodeJS.ErrnoException)
        }
      }
    }
  }

  flushSync (): void {}

  async end (): Promise<void> {}
}

/**
 * A pipe, written through a non-blocking descriptor of its own (the inherited one, shared with
 * other processes, keeps its mode); where the pipe cannot be reopened (it belongs to another
 * user), through the inherited, blocking one, and then a full pipe waits instead of queueing.
 * A batch goes out in pieces of whole lines of at most PIPE_BUF bytes, which a pipe takes
 * whole or not at all, so other writers of the same pipe (the other WORKERS) never cut into a
 * line. What the pipe cannot take now waits in a queue (a copy), retried every few milliseconds.
 */
class FifoOutput implements Output {
  readonly #fd: number
  readonly #queue: Buffer[] = []
  /** Bytes of `#queue[0]` already written. */
  #offset = 0
  #queued = 0
  #retry: NodeJS.Timeout | null = null
  #dropped = 0
  #failed = false

  constructor (fd: number) {
    this.#fd = fd
  }

  write (bytes: Buffer): void {
    if (this.#failed) return
    if (this.#queued > MAX_QUEUED) {
      if (this.#dropped++ === 0) process.stderr.write('sluice: the log reader is behind by 16 MiB; log lines are dropped until it catches up\n')
      return
    }
    if (this.#dropped > 0) {
      this.#enqueue(Buffer.from(`{"level":40,"time":${Date.now()},"pid":${process.pid},"msg":"${this.#dropped} batches of log lines dropped while the log reader was behind"}\n`))
      this.#dropped = 0
    }
    if (this.#queue.length === 0) {
      // the usual case: the pipe takes the batch now, and nothing is copied
      const written = this.#writeFrom(bytes, 0)
      if (written < bytes.length && !this.#failed) this.#enqueue(Buffer.from(bytes.subarray(written)))
      return
    }
    this.#enqueue(Buffer.from(bytes))
    // while the pipe is full, only the retry writes: a refused write costs ~12 µs (an EAGAIN
    // exception), and every batch would pay it
    if (this.#retry === null) this.#flush()
  }

  flushSync (): void {
    // at exit: the reader gets a last second to take what is queued
    const until = performance.now() + 1000
    while (!this.#flush() && performance.now() < until) Atomics.wait(PAUSE, 0, 0, 5)
  }

  async end (timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs
    while (!this.#flush() && performance.now() < until) await sleep(5)
  }

  #enqueue (copy: Buffer): void {
    this.#queue.push(copy)
    this.#queued += copy.length
  }

  /** Writes what the pipe takes now; true when nothing is left. */
  #flush (): boolean {
    const queue = this.#queue
    while (queue.length > 0) {
      const bytes = queue[0] as Buffer
      const from = this.#offset
      const to = this.#writeFrom(bytes, from)
      // a failed output holds nothing more: its lines are dropped, and exit need not wait for them
      if (this.#failed) return true
      this.#queued -= to - from
      if (to < bytes.length) {
        this.#offset = to
        return false
      }
      queue.shift()
      this.#offset = 0
    }
    return true
  }

  /** Writes `bytes` from `from` on, as far as the pipe takes them; returns where it stopped. */
  #writeFrom (bytes: Buffer, from: number): number {
    while (from < bytes.length) {
      let to = bytes.length
      if (to - from > PIPE_BUF) {
        to = bytes.lastIndexOf(NEWLINE, from + PIPE_BUF - 1) + 1
        // a single line longer than PIPE_BUF goes alone, and may be cut when the pipe is nearly full
        // (access lines are bounded below it; a long error stack is not)
        if (to <= from) {
          const end = bytes.indexOf(NEWLINE, from + PIPE_BUF)
          to = end === -1 ? bytes.length : end + 1
        }
      }
      try {
        from += writeSync(this.#fd, bytes, from, to - from)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') this.#retryLater()
        else this.#fail(err as NodeJS.ErrnoException)
        return from
      }
    }
    return from
  }

  #retryLater (): void {
    if (this.#retry !== null) return
    this.#retry = setTimeout(() => {
      this.#retry = null
      this.#flush()
    }, 5)
    // a full log pipe alone must not keep the process alive
    this.#retry.unref()
  }

  #fail (err: NodeJS.ErrnoException): void {
    this.#failed = true
    this.#queue.length = 0
    this.#queued = 0
    outputFailed(err)
  }
}

/** The output is gone (EPIPE: the reader left; a full disk): nothing can be logged any more, and that must not stop the gateway. */
function outputFailed (err: NodeJS.ErrnoException): void {
  process.stderr.write(`sluice: log output failed (${err.code ?? err.message}); log lines are dropped from now on\n`)
}

/** A RESP2 reply: simple strings and bulk strings as strings, integers as numbers, errors as `ReplyError`. */
export type Reply = string | number | null | ReplyError | Reply[]

export class ReplyError extends Error {}

/** Sentinel for "the buffer ends before this reply does". */
const INCOMPLETE = Symbol('incomplete')
type Parsed = { value: Reply, end: number } | typeof INCOMPLETE

const CR = 13

/**
 * An incremental RESP2 reader: `push` a chunk, get every reply it completes, in order. A reply
 * split across chunks is kept until its end arrives (only then are the bytes copied together).
 */
export class ReplyReader {
  #pending: Buffer | undefined

  push (chunk: Buffer, onReply: (reply: Reply) => void): void {
    const buffer = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk])
    let offset = 0
    while (offset < buffer.length) {
      const parsed = parse(buffer, offset)
      if (parsed === INCOMPLETE) break
      offset = parsed.end
      onReply(parsed.value)
    }
    this.#pending = offset < buffer.length ? buffer.subarray(offset) : undefined
  }

  reset (): void {
    this.#pending = undefined
  }
}

/** The index of the `\r` ending the line that starts at `from`, or -1. */
function lineEnd (buffer: Buffer, from: number): number {
  const cr = buffer.indexOf(CR, from)
  return cr === -1 || cr + 1 >= buffer.length ? -1 : cr
}

function parse (buffer: Buffer, offset: number): Parsed {
  const cr = lineEnd(buffer, offset + 1)
  if (cr === -1) return INCOMPLETE
  const type = buffer[offset]
  const line = buffer.toString('latin1', offset + 1, cr)
  const next = cr + 2
  switch (type) {
    case 0x3a: // ':' integer
      return { value: Number(line), end: next }
    case 0x2b: // '+' simple string
      return { value: line, end: next }
    case 0x2d: // '-' error
      return { value: new ReplyError(line), end: next }
    case 0x24: { // '$' bulk string
      const length = Number(line)
      if (length < 0) return { value: null, end: next }
      if (next + length + 2 > buffer.length) return INCOMPLETE
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 }
    }
    case 0x2a: { // '*' array
      const count = Number(line)
      if (count < 0) return { value: null, end: next }
      const items: Reply[] = new Array<Reply>(count)
      let at = next
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, at)
        if (item === INCOMPLETE) return INCOMPLETE
        items[i] = item.value
        at = item.end
      }
      return { value: items, end: at }
    }
    default:
      throw new ReplyError(`unexpected RESP type byte ${String(type)}`)
  }
}

/** One command in RESP2 (an array of bulk strings), ready to write. */
export function encodeCommand (args: ReadonlyArray<string | number>): string {
  let out = `*${args.length}\r\n`
  for (const arg of args) {
    const text = typeof arg === 'number' ? String(arg) : arg
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`
  }
  return out
}

/**
 * What a `ResponseParser` reports, in order: `onHead` for every response head (1xx included),
 * `onBody` for each piece of a body (slices of the chunks read, not copies), `onComplete` at the end
 * of each message (1xx included).
 */
export interface ResponseEvents {
  /**
   * `headers` is a flat name, value list as sent (names not lower-cased, values trimmed);
   * `keepAlive`: the connection can carry another request once this response is complete. Not
   * called for a 101: the parser stops there and calls `onUpgrade`.
   */
  onHead (statusCode: number, headers: string[], keepAlive: boolean): void
  onBody (chunk: Buffer): void
  onComplete (): void
  /** A 101 Switching Protocols: what follows is not HTTP, the parser stops. */
  onUpgrade (): void
}

/** A response that is not valid HTTP/1.1; `code` says what was wrong with it. */
export class ResponseParseError extends Error {
  constructor (readonly code: string, message: string) {
    super(message)
    this.name = 'ResponseParseError'
  }
}

/** Node's default `--max-http-header-size`: a response head (status line and final empty line included) larger than this is refused. */
export const MAX_HEAD_BYTES = 16 * 1024
/** A chunk-size line (with its extensions) or trailer section larger than this is refused. */
const MAX_LINE_BYTES = 4 * 1024

const enum State { Head, Length, ChunkSize, ChunkData, ChunkDataEnd, Trailers, UntilClose, Stopped }

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1')
// anything but HTAB, SP, visible ASCII and obs-text in a head, and a CR or LF not part of a CRLF
const BAD_HEAD = /[^\t\r\n\x20-\x7e\x80-\xff]|\r(?!\n)|(?<!\r)\n/
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/
const DIGITS = /^\d{1,15}$/
const CHUNK_SIZE = /^([0-9a-fA-F]{1,13})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/
/** RFC 9110 §5.6.2 tchar, by char code. */
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

/**
 * A strict HTTP/1.1 response parser for the upstream client, in plain JavaScript: it reads the
 * head from the bytes as latin1 in one pass (RFC 9112: CRLF line ends, token header names, no
 * obs-fold, no control characters), frames the body (RFC 9112 §6.3: no body for HEAD, 1xx, 204
 * and 304; chunked; content-length; else until the connection closes) and hands body bytes on as
 * slices of the chunks it was given. It refuses what llhttp, Node's own parser, refuses in a
 * response (`test/proxy/response-parser.test.ts` holds them side by side), for less than llhttp
 * costs through Node's internal binding (1.2–1.8 against 2.1–2.8 µs per response; docs/benchmarks.md).
 */
export class ResponseParser {
  readonly #events: ResponseEvents
  #state = State.Head
  /** Head bytes received so far, while the head is incomplete. */
  #pending: Buffer | null = null
  /** Bytes left in the body (content-length) or in the current chunk. */
  #left = 0
  /** A chunk-size line or the trailer section so far, while incomplete. */
  #line = ''
  /** The final response to come answers a HEAD: it has no body whatever its headers say. */
  #headOnly = false
  /** Why the parser stopped, once it failed. */
  #error: ResponseParseError | undefined

  constructor (events: ResponseEvents) {
    this.#events = events
  }

  /** Parses `chunk`; an error ends the parser (every later call returns it again). */
  execute (chunk: Buffer): ResponseParseError | undefined {
    let at = 0
    while (at < chunk.length) {
      switch (this.#state) {
        case State.Head: at = this.#head(chunk, at); break
        case State.Length: at = this.#lengthBody(chunk, at); break
        case State.ChunkSize: at = this.#chunkSize(chunk, at); break
        case State.ChunkData: at = this.#chunkData(chunk, at); break
        case State.ChunkDataEnd: at = this.#chunkDataEnd(chunk, at); break
        case State.Trailers: at = this.#trailers(chunk, at); break
        case State.UntilClose:
          this.#events.onBody(at === 0 ? chunk : chunk.subarray(at))
          at = chunk.length
          break
        case State.Stopped: return this.#error
      }
      if (at < 0) return this.#error
    }
    return undefined
  }

  /** At the end of the stream: completes a body read until close; an error when a message was cut short. */
  finish (): ResponseParseError | undefined {
    const state = this.#state
    if (state === State.Stopped) return this.#error
    if (state === State.UntilClose) {
      this.#state = State.Head
      this.#events.onComplete()
      return undefined
    }
    if (state === State.Head && this.#pending === null) return undefined
    return this.#fail('INCOMPLETE', 'the response ended before its end')
  }

  /** Says what the next request is: the response to a HEAD has no body. */
  expect (method: string): void {
    this.#headOnly = method === 'HEAD'
  }

  /** Ignores everything from now on (the connection is being dropped). */
  stop (): void {
    this.#state = State.Stopped
  }

  #fail (code: string, message: string): ResponseParseError {
    this.#state = State.Stopped
    this.#pending = null
    this.#error ??= new ResponseParseError(code, message)
    return this.#error
  }

  /** Returns where the head ended in `chunk`, or -1 (failed). */
  #head (chunk: Buffer, at: number): number {
    const pending = this.#pending
    // empty lines before a status line are skipped (RFC 9112 §2.2), as llhttp does
    if (pending === null) while (at < chunk.length && (chunk[at] === 13 || chunk[at] === 10)) at++
    if (at === chunk.length) return at
    let buf = chunk
    let from = at
    let searchFrom = at
    if (pending !== null) {
      buf = Buffer.concat([pending, at === 0 ? chunk : chunk.subarray(at)])
      from = 0
      searchFrom = Math.max(0, pending.length - 3)
    }
    const end = buf.indexOf(CRLFCRLF, searchFrom)
    if (end === -1 || end + 4 - from > MAX_HEAD_BYTES) {
      if (buf.length - from > MAX_HEAD_BYTES) {
        this.#fail('HEADER_OVERFLOW', `the response head is larger than ${MAX_HEAD_BYTES} bytes`)
        return -1
      }
      this.#pending = from === 0 && buf !== chunk ? buf : Buffer.from(buf.subarray(from))
      return chunk.length
    }
    this.#pending = null
    const consumed = pending === null ? end + 4 : end + 4 - pending.length + at
    if (!this.#parseHead(buf.toString('latin1', from, end + 2))) return -1
    return this.#state === State.Stopped ? chunk.length : consumed
  }

  /** `head` is the status line and header lines, each ending in CRLF. False when it failed. */
  #parseHead (head: string): boolean {
    if (BAD_HEAD.test(head)) {
      this.#fail('INVALID_CHARACTER', 'the response head holds a control character or a bare CR or LF')
      return false
    }
    let eol = head.indexOf('\r\n')
    const status = STATUS_LINE.exec(head.slice(0, eol))
    if (status === null) {
      this.#fail('INVALID_STATUS_LINE', 'the status line is not HTTP/1.x followed by a 3-digit status')
      return false
    }
    const http11 = status[1] === '1'
    const statusCode = Number(status[2])
    const headers: string[] = []
    let length = -1
    let encoding: string | undefined
    let connection: string | undefined
    for (let at = eol + 2; at < head.length; at = eol + 2) {
      eol = head.indexOf('\r\n', at)
      const colon = fieldColon(head, at, eol)
      if (colon === -1) {
        this.#fail('INVALID_HEADER', 'a header line is not a token name, a colon and a value (or it is folded)')
        return false
      }
      const name = head.slice(at, colon)
      const value = trimmed(head, colon + 1, eol)
      headers.push(name, value)
      switch (name.length) {
        case 14:
          if (name.toLowerCase() !== 'content-length') break
          if (length !== -1 || !DIGITS.test(value)) {
            this.#fail('INVALID_CONTENT_LENGTH', 'the content-length is repeated or not a number')
            return false
          }
          length = Number(value)
          break
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') encoding = encoding === undefined ? value : `${encoding}, ${value}`
          break
        case 10:
          if (name.toLowerCase() === 'connection') connection = connection === undefined ? value.toLowerCase() : `${connection}, ${value.toLowerCase()}`
          break
      }
    }
    if (encoding !== undefined && length !== -1) {
      this.#fail('INVALID_CONTENT_LENGTH', 'a content-length beside a transfer-encoding')
      return false
    }
    if (statusCode === 101) {
      this.#state = State.Stopped
      this.#events.onUpgrade()
      return true
    }
    const chunked = encoding !== undefined && lastCoding(encoding) === 'chunked'
    const bodiless = statusCode < 200 || statusCode === 204 || statusCode === 304 || this.#headOnly || length === 0
    // a body that ends when the connection does (no length, not chunked) leaves nothing to reuse
    const untilClose = !bodiless && (encoding !== undefined ? !chunked : length === -1)
    const keepAlive = !untilClose && (http11 ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive'))
    this.#events.onHead(statusCode, headers, keepAlive)
    if ((this.#state as State) === State.Stopped) return true
    if (bodiless) {
      this.#complete()
    } else if (chunked) {
      this.#state = State.ChunkSize
    } else if (length > 0) {
      this.#left = length
      this.#state = State.Length
    } else {
      this.#state = State.UntilClose
    }
    return true
  }

  #complete (): void {
    this.#state = State.Head
    this.#events.onComplete()
  }

  #lengthBody (chunk: Buffer, at: number): number {
    const take = Math.min(this.#left, chunk.length - at)
    this.#left -= take
    this.#events.onBody(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take))
    if (this.#left === 0 && (this.#state as State) !== State.Stopped) this.#complete()
    return at + take
  }

  #chunkSize (chunk: Buffer, at: number): number {
    const eol = chunk.indexOf(10, at)
    const piece = chunk.toString('latin1', at, eol === -1 ? chunk.length : eol + 1)
    const line = this.#line + piece
    if (line.length > MAX_LINE_BYTES) {
      this.#fail('INVALID_CHUNK', 'a chunk-size line is too long')
      return -1
    }
    if (eol === -1) {
      this.#line = line
      return chunk.length
    }
    this.#line = ''
    const size = line.length >= 2 && line.charCodeAt(line.length - 2) === 13 ? CHUNK_SIZE.exec(line.slice(0, -2)) : null
    if (size === null) {
      this.#fail('INVALID_CHUNK', 'a chunk-size line is not a hexadecimal size, extensions and CRLF')
      return -1
    }
    this.#left = parseInt(size[1] as string, 16)
    this.#state = this.#left === 0 ? State.Trailers : State.ChunkData
    return eol + 1
  }

  #chunkData (chunk: Buffer, at: number): number {
    const take = Math.min(this.#left, chunk.length - at)
    this.#left -= take
    this.#events.onBody(chunk.subarray(at, at + take))
    if (this.#left === 0 && (this.#state as State) !== State.Stopped) {
      this.#state = State.ChunkDataEnd
      this.#line = ''
    }
    return at + take
  }

  /** The CRLF after a chunk's data, possibly split across reads (`#line` holds a CR already seen). */
  #chunkDataEnd (chunk: Buffer, at: number): number {
    while (at < chunk.length) {
      const c = chunk[at++] as number
      if (this.#line === '' && c === 13) {
        this.#line = '\r'
      } else if (this.#line === '\r' && c === 10) {
        this.#line = ''
        this.#state = State.ChunkSize
        return at
      } else {
        this.#fail('INVALID_CHUNK', 'a chunk\'s data is not followed by CRLF')
        return -1
      }
    }
    return at
  }

  /** Trailer lines after the last chunk, until an empty line: checked like headers, then dropped (not relayed). */
  #trailers (chunk: Buffer, at: number): number {
    const seen = this.#line
    // the section is CRLF alone (no trailers), or ends in CRLFCRLF; look for either across reads
    const joined = seen + chunk.toString('latin1', at, Math.min(chunk.length, at + MAX_LINE_BYTES - seen.length + 4))
    let end: number
    if (joined.startsWith('\r\n')) end = 2
    else {
      const found = joined.indexOf('\r\n\r\n')
      end = found === -1 ? -1 : found + 4
    }
    if (end === -1) {
      if (joined.length >= MAX_LINE_BYTES) {
        this.#fail('INVALID_CHUNK', 'the trailer section is too long')
        return -1
      }
      this.#line = joined
      return chunk.length
    }
    this.#line = ''
    const section = joined.slice(0, end - 2)
    if (section !== '' && (BAD_HEAD.test(section) || !validTrailers(section))) {
      this.#fail('INVALID_HEADER', 'a trailer line is not a token name, a colon and a value')
      return -1
    }
    this.#complete()
    return at + end - seen.length
  }
}

/** Where the colon of the field line `s[at..eol)` is, after a token name; -1 when the line is no `token: value`. */
function fieldColon (s: string, at: number, eol: number): number {
  const colon = s.indexOf(':', at)
  return colon <= at || colon > eol || !isToken(s, at, colon) ? -1 : colon
}

function isToken (s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    if (c > 127 || TCHAR[c] !== 1) return false
  }
  return true
}

/** `s` from `from` to `to` without the optional whitespace (SP, HTAB) around a field value. */
function trimmed (s: string, from: number, to: number): string {
  while (from < to && (s.charCodeAt(from) === 32 || s.charCodeAt(from) === 9)) from++
  while (to > from && (s.charCodeAt(to - 1) === 32 || s.charCodeAt(to - 1) === 9)) to--
  return s.slice(from, to)
}

/** The last transfer coding of a list, lower-cased (`gzip, chunked` → `chunked`). */
function lastCoding (list: string): string {
  const comma = list.lastIndexOf(',')
  return list.slice(comma + 1).trim().toLowerCase()
}

/** Whether a lower-cased comma-separated list (a Connection value) holds `token`. */
function hasToken (list: string | undefined, token: string): boolean {
  if (list === undefined || !list.includes(token)) return false
  if (list === token) return true
  for (const item of list.split(',')) if (item.trim() === token) return true
  return false
}

/** Every line of a trailer section (CRLF-separated, CRLF-terminated) is `token: value`. */
function validTrailers (section: string): boolean {
  for (let at = 0, eol = section.indexOf('\r\n'); eol !== -1; at = eol + 2, eol = section.indexOf('\r\n', at)) {
    if (fieldColon(section, at, eol) === -1) return false
  }
  return true
}

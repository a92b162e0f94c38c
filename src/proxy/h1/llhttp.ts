/**
 * Node's own HTTP/1.1 parser (llhttp, native): the one `node:http` reads every message with, the
 * fastest and strictest there is for Node, and reachable only through `process.binding` (DEP0111).
 * Loaded once, with its deprecation warning silenced: it would only repeat that.
 */
export interface ResponseParser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** Bytes parsed, or the parse error (`code` `HPE_...`). */
  execute (chunk: Buffer): number | ParseError
  /** At the end of the stream: completes a body read until close, or says the message was cut. */
  finish (): ParseError | undefined
  close (): void
  [callback: number]: unknown
}

export type ParseError = Error & { code?: string }

interface ParserClass {
  new (): ResponseParser
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
}

function load (): ParserClass {
  // already true (and read-only) under --no-deprecation
  const silenced = process.noDeprecation === true
  if (!silenced) process.noDeprecation = true
  try {
    const binding = (process as unknown as { binding: (name: string) => { HTTPParser: ParserClass } }).binding('http_parser') // eslint-disable-line n/no-deprecated-api
    return binding.HTTPParser
  } finally {
    if (!silenced) process.noDeprecation = false
  }
}

export const HTTPParser = load()

/**
 * What llhttp calls when a response's head is parsed: `headers` is a flat name, value list, or
 * undefined when more than 32 lines came first through `kOnHeaders`. Returning 1 tells it the
 * response has no body (the answer to a HEAD).
 */
export type OnHeadersComplete = (versionMajor: number, versionMinor: number, headers: string[] | undefined, method: unknown,
  url: unknown, statusCode: number, statusMessage: string, upgrade: boolean, shouldKeepAlive: boolean) => number

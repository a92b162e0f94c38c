import t from 'tap'
import { MAX_HEAD_BYTES, ResponseParser, type ResponseEvents } from '../../src/proxy/h1/response-parser.js'

// The upstream client's response parser, held side by side with llhttp (Node's own parser, the one
// it replaced): every response below gets the same events from both, whole, split at every byte and
// byte by byte; every malformed one is refused by both.

interface Llhttp {
  new (): {
    initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
    execute (chunk: Buffer): number | Error
    finish (): Error | undefined
    [callback: number]: unknown
  }
  RESPONSE: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
}

const silenced = process.noDeprecation
process.noDeprecation = true
const HTTPParser = (process as unknown as { binding: (name: string) => { HTTPParser: Llhttp } }).binding('http_parser').HTTPParser // eslint-disable-line n/no-deprecated-api
process.noDeprecation = silenced

/** What a parser reported, as one string per event (body pieces joined), or where it failed. */
interface Outcome { events: string[], failed: boolean }

function push (events: string[], event: string): void {
  const last = events.length - 1
  if (event.startsWith('body ') && events[last]?.startsWith('body ') === true) events[last] += event.slice(5)
  else events.push(event)
}

function ours (pieces: Buffer[], method: string): Outcome {
  const events: string[] = []
  const handler: ResponseEvents = {
    onHead (status, headers, keepAlive) { events.push(`head ${status} ${JSON.stringify(headers)} keepAlive=${keepAlive}`) },
    onBody (chunk) { push(events, `body ${chunk.toString('latin1')}`) },
    onComplete () { events.push('complete') },
    onUpgrade () { events.push('upgrade') }
  }
  const parser = new ResponseParser(handler)
  parser.expect(method)
  for (const piece of pieces) if (parser.execute(piece) !== undefined) return { events, failed: true }
  return { events, failed: parser.finish() !== undefined }
}

function llhttp (pieces: Buffer[], method: string): Outcome {
  const events: string[] = []
  const parser = new HTTPParser()
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0)
  let early: string[] = []
  parser[HTTPParser.kOnHeaders] = (headers: string[]) => { early = early.concat(headers) }
  parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[] | undefined, _m: unknown, _u: unknown,
    status: number, _message: string, upgrade: boolean, keepAlive: boolean) => {
    const all = early.concat(headers ?? [])
    early = []
    if (status === 101 || upgrade) {
      events.push('upgrade')
      return 2
    }
    // llhttp reports keep-alive at the head for a body read until close; ours says at once that it cannot be reused
    events.push(`head ${status} ${JSON.stringify(all)} keepAlive=${keepAlive}`)
    return method === 'HEAD' && status >= 200 ? 1 : 0
  }
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => { push(events, `body ${chunk.toString('latin1')}`) }
  parser[HTTPParser.kOnMessageComplete] = () => {
    early = []
    if (events.at(-1) !== 'upgrade') events.push('complete')
  }
  for (const piece of pieces) {
    if (events.at(-1) === 'upgrade') break
    if (typeof parser.execute(piece) !== 'number') return { events, failed: true }
  }
  if (events.at(-1) === 'upgrade') return { events, failed: false }
  return { events, failed: parser.finish() !== undefined }
}

/** The input whole, split in two at every byte, and one byte at a time. */
function splits (input: Buffer): Buffer[][] {
  const all: Buffer[][] = [[input]]
  for (let i = 1; i < input.length; i++) all.push([input.subarray(0, i), input.subarray(i)])
  all.push([...input].map(byte => Buffer.from([byte])))
  return all
}

const VALID: Array<[string, string, string?]> = [
  ['content-length', 'HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\nX-Upstream: 19001\r\n\r\nok'],
  ['no reason phrase', 'HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx'],
  ['empty reason phrase', 'HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n'],
  ['two responses back to back', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nb'],
  ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;name=value;x="q s"\r\n!\r\nA\r\n0123456789\r\n0\r\n\r\n'],
  ['chunked with trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n'],
  ['chunked, codings before', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n'],
  ['chunked, then another response', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'],
  ['until close, HTTP/1.1', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the end'],
  ['until close, transfer-encoding not ending in chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz'],
  ['HTTP/1.0, keep-alive asked', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok'],
  ['HTTP/1.0, no keep-alive', 'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['connection: close', 'HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 2\r\n\r\nok'],
  ['204 with no length', 'HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n'],
  ['304 with a length', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n'],
  ['HEAD with a length', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HEAD'],
  ['HEAD, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HEAD'],
  ['HEAD without a length', 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n', 'HEAD'],
  ['1xx before the response', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'],
  ['101 stops the parser', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x00\x01binary'],
  ['empty lines before the status line', '\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'],
  ['values trimmed, empty value, obs-text, repeated names', 'HTTP/1.1 200 OK\r\nX-A:   spaced \t \r\nX-Empty:\r\nX-Latin: caf\xe9\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n'],
  ['leading zeros in the length', 'HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok'],
  ['binary body', 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\x00\r\n\xff']
]

const INVALID: Array<[string, string]> = [
  ['not HTTP', 'HTTX/1.1 200 OK\r\n\r\n'],
  ['two-digit status', 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n'],
  ['status with a letter', 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n'],
  ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n'],
  ['a bare LF inside a header line', 'HTTP/1.1 200 OK\r\nX-A: b\nX-C: d\r\nContent-Length: 0\r\n\r\n'],
  ['a bare CR inside a header value', 'HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n'],
  ['NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 0\r\n\r\n'],
  ['space before the colon', 'HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 0\r\n\r\n'],
  ['no colon', 'HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 0\r\n\r\n'],
  ['empty name', 'HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n'],
  ['separator in a name', 'HTTP/1.1 200 OK\r\nX(A): b\r\nContent-Length: 0\r\n\r\n'],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n'],
  ['content-length not a number', 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok'],
  ['negative content-length', 'HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok'],
  ['content-length list', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok'],
  ['content-length twice', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok'],
  ['content-length beside chunked', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
  ['chunk size not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n'],
  ['chunk size line with a bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n'],
  ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokk\r\n0\r\n\r\n'],
  ['chunked body cut short', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'],
  ['length body cut short', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel'],
  ['head cut short', 'HTTP/1.1 200 OK\r\nContent-Len'],
  ['malformed trailer', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a trailer\r\n\r\n']
]

// Where the parser knowingly differs from llhttp: a version other than 1.0 and 1.1 on an HTTP/1.1
// connection (llhttp takes "HTTP/2.0") is refused, and the answer to a HEAD without a length is
// reusable (llhttp says keep-alive before it learns the response has no body, and closes it).
const STRICTER: Array<[string, string]> = [
  ['HTTP/2.0', 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'],
  ['HTTP/1.2', 'HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n']
]

t.test('valid responses: the same events as llhttp, however the bytes are split', async t => {
  for (const [name, text, method = 'GET'] of VALID) {
    const input = Buffer.from(text, 'latin1')
    const expected = llhttp([input], method)
    t.notOk(expected.failed, `${name}: llhttp accepts it`)
    const mine = ours([input], method)
    // llhttp says keep-alive for a body read until close (and stops reading it at the close): ours says no at once
    const untilClose = /until close/.test(name)
    const headReusable = name === 'HEAD without a length'
    const wanted = expected.events.map(e => untilClose ? e.replace('keepAlive=true', 'keepAlive=false') : headReusable ? e.replace('keepAlive=false', 'keepAlive=true') : e)
    t.same(mine.events, wanted, `${name}: same events`)
    t.notOk(mine.failed, `${name}: accepted`)
    let differing = 0
    for (const pieces of splits(input)) {
      const split = ours(pieces, method)
      if (split.failed || JSON.stringify(split.events) !== JSON.stringify(mine.events)) differing++
    }
    t.equal(differing, 0, `${name}: the same events in ${input.length + 1} ways of splitting it`)
  }
})

t.test('malformed responses: refused like llhttp refuses them, however the bytes are split', async t => {
  for (const [name, text] of INVALID) {
    const input = Buffer.from(text, 'latin1')
    t.ok(llhttp([input], 'GET').failed, `${name}: llhttp refuses it`)
    let accepted = 0
    for (const pieces of splits(input)) if (!ours(pieces, 'GET').failed) accepted++
    t.equal(accepted, 0, `${name}: refused in all ${input.length + 1} ways of splitting it`)
  }
})

t.test('versions other than HTTP/1.0 and HTTP/1.1 are refused', async t => {
  for (const [name, text] of STRICTER) {
    t.ok(ours([Buffer.from(text, 'latin1')], 'GET').failed, name)
  }
})

t.test('a head larger than the limit is refused, one at the limit is not', async t => {
  const head = (size: number): Buffer => {
    const start = 'HTTP/1.1 200 OK\r\nX-Pad: '
    const end = '\r\nContent-Length: 0\r\n\r\n'
    return Buffer.from(`${start}${'a'.repeat(size - start.length - end.length)}${end}`, 'latin1')
  }
  t.notOk(ours([head(MAX_HEAD_BYTES)], 'GET').failed, 'at the limit')
  t.ok(ours([head(MAX_HEAD_BYTES + 1)], 'GET').failed, 'one byte over, whole')
  const over = head(MAX_HEAD_BYTES * 2)
  t.ok(ours([over.subarray(0, 10_000), over.subarray(10_000, 20_000), over.subarray(20_000)], 'GET').failed, 'over, in pieces, before its end arrives')
  const endless = Buffer.alloc(MAX_HEAD_BYTES + 10, 'a')
  t.ok(ours([Buffer.from('HTTP/1.1 200 OK\r\nX: '), endless], 'GET').failed, 'no end in sight')
})

t.test('a chunk-size line or a trailer section past 4 KiB is refused, whole or in pieces', async t => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
  const longExtension = Buffer.from(`${head}1;${'e'.repeat(5000)}\r\nx\r\n0\r\n\r\n`, 'latin1')
  const longTrailers = Buffer.from(`${head}1\r\nx\r\n0\r\nX-T: ${'t'.repeat(5000)}\r\n\r\n`, 'latin1')
  for (const [name, input] of [['chunk-size line', longExtension], ['trailers', longTrailers]] as const) {
    t.equal(ours([input], 'GET').failed, true, `${name}, whole`)
    t.equal(ours([input.subarray(0, 1000), input.subarray(1000, 3000), input.subarray(3000)], 'GET').failed, true, `${name}, in pieces`)
  }
})

t.test('errors are sticky; stop() ignores the rest; finish() between messages is clean', async t => {
  const events: string[] = []
  const parser = new ResponseParser({
    onHead () { events.push('head'); parser.stop() },
    onBody () { events.push('body') },
    onComplete () { events.push('complete') },
    onUpgrade () { events.push('upgrade') }
  })
  t.equal(parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')), undefined)
  t.same(events, ['head'], 'nothing after stop()')
  t.equal(parser.execute(Buffer.from('more')), undefined)
  t.equal(parser.finish(), undefined)

  const bad = new ResponseParser({ onHead () {}, onBody () {}, onComplete () {}, onUpgrade () {} })
  const error = bad.execute(Buffer.from('nonsense\r\n\r\n'))
  t.equal(error?.code, 'INVALID_STATUS_LINE')
  t.equal(bad.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), error, 'the same error again')
  t.equal(bad.finish(), error)

  const clean = new ResponseParser({ onHead () {}, onBody () {}, onComplete () {}, onUpgrade () {} })
  t.equal(clean.execute(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n')), undefined)
  t.equal(clean.finish(), undefined, 'no message in progress')
})

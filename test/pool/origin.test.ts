import t from 'tap'
import { normaliseOrigin, serverId, type OriginProblem } from '../../src/pool/origin.js'

t.test('accepted forms normalise to the origin', async t => {
  const rows: Array<[string, string]> = [
    ['http://h', 'http://h'],
    ['http://H:80/', 'http://h'],
    ['https://h:443', 'https://h'],
    ['https://h:443/', 'https://h'],
    ['http://[::1]:3000', 'http://[::1]:3000'],
    ['http://[0:0:0:0:0:0:0:1]:3000', 'http://[::1]:3000'],
    ['http://127.0.0.1:3000/', 'http://127.0.0.1:3000'],
    ['HTTP://Example.COM:8080', 'http://example.com:8080'],
    ['https://h:80', 'https://h:80'],
    ['http://h:443', 'http://h:443'],
    ['http://h:03000', 'http://h:3000'],
    ['  http://h:3000  ', 'http://h:3000']
  ]
  for (const [input, origin] of rows) {
    t.strictSame(normaliseOrigin(input), { ok: true, origin }, `${JSON.stringify(input)} → ${origin}`)
  }
})

t.test('refused forms name the problem', async t => {
  const rows: Array<[string, OriginProblem, string]> = [
    ['not a url', 'invalid', 'is not a URL'],
    ['', 'invalid', 'is not a URL'],
    ['h:3000', 'scheme', 'must use http:// or https://'],
    ['/relative', 'invalid', 'is not a URL'],
    ['http://', 'invalid', 'is not a URL'],
    ['http://h:99999', 'invalid', 'is not a URL'],
    ['http://h:3000=3', 'invalid', 'is not a URL'],
    ['ftp://h', 'scheme', 'must use http:// or https://'],
    ['ws://h:3000', 'scheme', 'must use http:// or https://'],
    ['file:///etc/passwd', 'scheme', 'must use http:// or https://'],
    ['http://u:p@h', 'credentials', 'must not contain credentials'],
    ['http://u@h', 'credentials', 'must not contain credentials'],
    ['http://:p@h', 'credentials', 'must not contain credentials'],
    ['http://h/path', 'path', 'must be an origin without a path (a lone trailing "/" is allowed)'],
    ['http://h//', 'path', 'must be an origin without a path (a lone trailing "/" is allowed)'],
    ['http://h/api/', 'path', 'must be an origin without a path (a lone trailing "/" is allowed)'],
    ['http://h/?q=1', 'query', 'must not contain a query string'],
    ['http://h?q=1', 'query', 'must not contain a query string'],
    ['http://h?', 'query', 'must not contain a query string'],
    ['http://h/?', 'query', 'must not contain a query string'],
    ['http://h#f', 'fragment', 'must not contain a fragment'],
    ['http://h/#', 'fragment', 'must not contain a fragment'],
    ['http://h#', 'fragment', 'must not contain a fragment']
  ]
  for (const [input, problem, message] of rows) {
    t.strictSame(normaliseOrigin(input), { ok: false, problem, message }, `${JSON.stringify(input)}: ${problem}`)
  }
})

t.test('serverId', async t => {
  const known: Array<[string, string]> = [
    ['http://h', '4f8d848825a1'],
    ['https://h', 'ecffbe29a2ad'],
    ['http://127.0.0.1:3000', '039867371988']
  ]
  for (const [origin, id] of known) {
    t.equal(serverId(origin), id, `${origin}: a known, stable id`)
    t.equal(serverId(origin), serverId(origin), `${origin}: same input, same id`)
    t.match(serverId(origin), /^[0-9a-f]{12}$/, `${origin}: 12 hex characters`)
  }
  const origins = ['http://h', 'https://h', 'http://h:3000', 'http://h:3001', 'http://g', 'http://[::1]:3000']
  t.equal(new Set(origins.map(serverId)).size, origins.length, 'a different id per origin')

  const idOf = (input: string): string => {
    const result = normaliseOrigin(input)
    if (!result.ok) throw new Error(`${input} refused`)
    return serverId(result.origin)
  }
  t.equal(idOf('http://H:80/'), idOf('http://h'), 'http://H:80/ and http://h share an id')
  t.equal(idOf('http://H:80/'), '4f8d848825a1')
  t.equal(idOf('HTTPS://h:443/'), idOf('https://h'))
  t.not(idOf('http://h:443'), idOf('https://h'), 'scheme matters')
})

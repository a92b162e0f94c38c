import t, { type Test as Tap } from 'tap'
import { readFileSync } from 'node:fs'
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http'
import fc from 'fast-check'
import { Pool, type Dispatcher } from 'undici'
import { startBackends } from '../helpers/backends.js'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { normaliseOrigin, serverId } from '../../src/pool/origin.js'

// Property tests: whatever a client sends to the admin API (bodies, URLs, paths, ids, headers,
// methods), it never gets a 5xx, every 4xx is a `{ statusCode, error, code, message }` body whose
// code docs/errors.md lists for that status (bar the known gaps below), the gateway keeps serving
// (/healthz after every run), and the pool (as GET /admin/servers and app.balancer.pool both see
// it) changes only when the gateway itself answered a 2xx, and then exactly as asked.

const RUNS = { numRuns: 150 }
const TOKEN = 'fuzz-token-0123456789abcdef'
const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']
/** The gateway's default MAX_HEADER_SIZE: a request head larger than this is answered 431. */
const MAX_HEAD = 16_384

type Json = Record<string, unknown>

/** Every code docs/errors.md lists, with its status. */
const DOCUMENTED = new Map([...readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  .matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map(([, code, status]) => [code as string, Number(status)]))
if (DOCUMENTED.get('SLUICE_BAD_REQUEST') !== 400) throw new Error('docs/errors.md: could not read its table of codes')

/** A listener of a gateway under test, with its own connection pool so paths are sent byte for byte. */
interface Target {
  gw: Gateway
  /** Where /admin is served. */
  admin: Pool
  /** Where /healthz is served. */
  pub: Pool
}

interface Sent {
  method: string
  /** Sent as is (no URL normalisation): dots, percent-encodings and all. */
  path: string
  headers?: Record<string, string | string[]>
  body?: string
}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  /** The parsed body when it is JSON. */
  body: Json | undefined
  text: string
  /** Answered by an upstream (the demo backend names itself in x-served-by), not by the gateway. */
  proxied: boolean
}

/** Answers seen per property, to check the generators reach both sides of every rule. */
let seen = new Map<number, number>()
let counting = true

async function send (client: Pool, sent: Sent): Promise<Answer> {
  const res = await client.request({ method: sent.method as Dispatcher.HttpMethod, path: sent.path, headers: sent.headers, body: sent.body })
  const text = await res.body.text()
  let body: Json | undefined
  if (String(res.headers['content-type']).startsWith('application/json') && text !== '') {
    try {
      body = JSON.parse(text) as Json
    } catch {
      throw new Error(`${describe(sent)} answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`)
    }
  }
  if (counting) seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
  return { status: res.statusCode, headers: res.headers, body, text, proxied: res.headers['x-served-by'] !== undefined }
}

/** An admin call by its path under /admin, as the original properties make them. */
async function call (target: Target, method: string, path: string, body?: string, headers: Record<string, string | string[]> = {}): Promise<Answer> {
  return send(target.admin, { method, path: `/admin${path}`, headers, body })
}

const describe = (sent: Sent): string => {
  const headers = Object.entries(sent.headers ?? {}).map(([k, v]) => [k, String(v).length > 80 ? `${String(v).slice(0, 80)}… (${String(v).length})` : v])
  return `${sent.method} ${JSON.stringify(sent.path.length > 120 ? `${sent.path.slice(0, 120)}… (${sent.path.length})` : sent.path)} ` +
    `headers ${JSON.stringify(Object.fromEntries(headers))} body ${JSON.stringify(sent.body?.slice(0, 120))}`
}

/** Runs a property, then checks that it produced each of `statuses` at least once. */
async function property (t: Tap, runs: number, statuses: number[], run: () => Promise<void>): Promise<void> {
  seen = new Map()
  await run()
  t.pass(`${runs} runs: ${JSON.stringify(Object.fromEntries(seen))}`)
  for (const status of statuses) t.ok((seen.get(status) ?? 0) > 0, `some runs answered ${status}`)
}

const JSON_HEADERS = { 'content-type': 'application/json' }
const AUTH = { authorization: `Bearer ${TOKEN}` }

/** The pool as GET /admin/servers gives it, checked against app.balancer.pool. */
async function snapshot (target: Target): Promise<Json[]> {
  const was = counting
  counting = false
  let res: Answer
  try {
    res = await call(target, 'GET', '/servers', undefined, AUTH)
  } finally {
    counting = was
  }
  if (res.status !== 200 || res.body === undefined) throw new Error(`GET /admin/servers answered ${res.status}`)
  const servers = res.body.servers as Json[]
  same(servers, JSON.parse(JSON.stringify(target.gw.app.balancer.pool.list())), 'GET /admin/servers and app.balancer.pool')
  return servers
}

/** What an admin call can change about a server (not its counters or health checks), by id. */
function view (servers: Json[]): Json[] {
  return servers.map(({ id, url, name, weight, enabled, state }) => ({ id, url, name, weight, enabled, state }))
    .sort((a, b) => String(a.id).localeCompare(String(b.id)))
}

/** A non-2xx answer is a documented error body and never a server error. */
function checkAnswer (res: Answer, what: string, sent?: Sent): void {
  if (res.status >= 500) throw new Error(`${what}: ${res.status} ${res.text.slice(0, 300)}`)
  if (res.status < 400 || sent?.method === 'HEAD') return
  const body = res.body
  if (body === undefined) throw new Error(`${what}: ${res.status} without a JSON body: ${res.text.slice(0, 200)}`)
  const keys = Object.keys(body).sort()
  if (JSON.stringify(keys) !== JSON.stringify(ERROR_KEYS)) throw new Error(`${what}: error body ${JSON.stringify(body)}`)
  if (body.statusCode !== res.status || body.error !== STATUS_CODES[res.status] || typeof body.message !== 'string' || body.message === '') {
    throw new Error(`${what}: error body ${JSON.stringify(body)}`)
  }
  const code = String(body.code)
  if (DOCUMENTED.get(code) === res.status) return
  throw new Error(`${what}: ${res.status} with code ${code}, which docs/errors.md does not list for ${res.status}: ${JSON.stringify(body)}`)
}

function same (a: unknown, b: unknown, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`)
}

/** After each run: the process still serves. */
async function alive (target: Target): Promise<void> {
  const res = await target.pub.request({ method: 'GET', path: '/healthz' })
  const text = await res.body.text()
  if (res.statusCode !== 200 || text !== '{"status":"ok"}') throw new Error(`/healthz answered ${res.statusCode} ${text}`)
}

/** Undoes successful changes, so every run starts from the same pool. */
async function undo (target: Target, before: Json[]): Promise<void> {
  counting = false
  try {
    await restore(target, before)
  } finally {
    counting = true
  }
}

async function restore (target: Target, before: Json[]): Promise<void> {
  const ids = new Set(before.map(s => s.id))
  const now = await snapshot(target)
  for (const server of now) {
    if (!ids.has(server.id)) await call(target, 'DELETE', `/servers/${server.id as string}`, undefined, AUTH)
  }
  for (const server of before) {
    if (!now.some(s => s.id === server.id)) {
      // deleted by the run: add it back once its drain has ended (at once, with nothing in flight)
      const spec = JSON.stringify({ url: server.url, weight: server.weight, name: server.name })
      let added: Answer | undefined
      await waitFor(async () => (added = await call(target, 'POST', '/servers', spec, { ...JSON_HEADERS, ...AUTH })).status !== 409, 'the drain to end')
      if (added?.status !== 201) throw new Error(`re-adding ${spec} answered ${added?.status}`)
    }
    await call(target, 'PATCH', `/servers/${server.id as string}`, JSON.stringify({ weight: server.weight, enabled: server.enabled }), { ...JSON_HEADERS, ...AUTH })
  }
  // with active checks off and nothing in flight, a drain ends at once
  await waitFor(async () => (await snapshot(target)).length === before.length, 'the pool to be restored')
  same(view(await snapshot(target)), view(before), 'restored pool')
}

/** Adds a server for a property to change and delete (so the seeded ones stay as they are); removed when `t` ends. */
async function addVictim (t: Tap, target: Target, url: string): Promise<string> {
  const res = await call(target, 'POST', '/servers', JSON.stringify({ url, name: 'victim' }), { ...JSON_HEADERS, ...AUTH })
  if (res.status !== 201) throw new Error(`adding the victim ${url} answered ${res.status}`)
  const id = res.body?.id as string
  t.teardown(async () => {
    await call(target, 'DELETE', `/servers/${id}`, undefined, AUTH)
    await waitFor(() => target.gw.app.balancer.pool.get(id) === undefined, 'the victim to leave')
  })
  return id
}

/** What POST /admin/servers must accept: the model the answers are checked against. */
function validPost (body: unknown): { url: string, weight: number, name: string | undefined } | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined
  const { url, weight, name, ...rest } = body as Json
  if (Object.keys(rest).length > 0 || typeof url !== 'string' || url.length === 0 || url.length > 2048) return undefined
  if (weight !== undefined && !(Number.isInteger(weight) && (weight as number) >= 1 && (weight as number) <= 1000)) return undefined
  if (name !== undefined && !(typeof name === 'string' && name.length >= 1 && name.length <= 100)) return undefined
  const origin = normaliseOrigin(url)
  return origin.ok ? { url: origin.origin, weight: (weight as number | undefined) ?? 1, name: name as string | undefined } : undefined
}

/** What PATCH /admin/servers/:id must accept. */
function validPatch (body: unknown): body is { weight?: number, enabled?: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false
  const o = body as Json
  return Object.keys(o).length > 0 && Object.keys(o).every(k => k === 'weight' || k === 'enabled') &&
    (o.weight === undefined || (Number.isInteger(o.weight) && (o.weight as number) >= 1 && (o.weight as number) <= 1000)) &&
    (o.enabled === undefined || typeof o.enabled === 'boolean')
}

/** Checks one POST against the model and the pool, then restores the pool. */
async function checkPost (target: Target, before: Json[], body: unknown, res: Answer): Promise<void> {
  checkAnswer(res, `POST ${JSON.stringify(body)}`)
  const after = await snapshot(target)
  const expected = validPost(body)
  if (expected === undefined) {
    if (res.status !== 400) throw new Error(`POST ${JSON.stringify(body)}: expected 400, got ${res.status}`)
    same(after, before, 'the pool after a refused POST')
    return
  }
  const exists = before.some(s => s.url === expected.url)
  if (exists) {
    if (res.status !== 409) throw new Error(`POST ${JSON.stringify(body)}: expected 409, got ${res.status}`)
    same(after, before, 'the pool after a 409')
    return
  }
  if (res.status !== 201) throw new Error(`POST ${JSON.stringify(body)}: expected 201, got ${res.status} ${res.text}`)
  const added = after.find(s => !before.some(b => b.id === s.id))
  same(after.length, before.length + 1, 'one server added')
  same([added?.id, added?.url, added?.weight, added?.name], [serverId(expected.url), expected.url, expected.weight, expected.name ?? new URL(expected.url).host], 'the added server')
  same(res.body, added, 'the 201 body is the server')
  await undo(target, before)
}

/** The id a path names after /servers/, as the router decodes it (undefined when it cannot). */
function idIn (path: string): string | undefined {
  const segment = path.split(/[?#]/, 1)[0]!.split('/').pop()!
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

/**
 * The pool model for any request: unchanged unless the gateway itself answered a 2xx to POST,
 * PATCH or DELETE, and then changed exactly as that request asked, on the server it named.
 */
function checkChange (before: Json[], after: Json[], sent: Sent, res: Answer, what: string): boolean {
  const was = view(before)
  const now = view(after)
  const changed = JSON.stringify(was) !== JSON.stringify(now)
  const method = sent.method.toUpperCase()
  const mutating = !res.proxied && res.status >= 200 && res.status < 300 && ['POST', 'PATCH', 'DELETE'].includes(method)
  if (!mutating) {
    if (changed) throw new Error(`${what}: the pool changed on a ${res.proxied ? 'proxied ' : ''}${res.status}: ${JSON.stringify(was)} -> ${JSON.stringify(now)}`)
    return false
  }
  let body: unknown
  if (method !== 'DELETE') {
    try {
      body = JSON.parse(sent.body ?? '')
    } catch {
      throw new Error(`${what}: ${res.status} for a body that is not JSON`)
    }
  }
  const others = (id: unknown): void => same(now.filter(s => s.id !== id), was.filter(s => s.id !== id), `${what}: the other servers`)
  if (method === 'POST') {
    const expected = validPost(body)
    if (res.status !== 201 || expected === undefined) throw new Error(`${what}: ${res.status} for an invalid POST`)
    const id = serverId(expected.url)
    if (res.body?.id !== id || !now.some(s => s.id === id && s.url === expected.url && s.weight === expected.weight) || was.some(s => s.id === id)) {
      throw new Error(`${what}: 201 but ${expected.url} was not added as asked: ${JSON.stringify(now)}`)
    }
    others(id)
    return true
  }
  const id = res.body?.id
  if (id === undefined || idIn(sent.path) !== id || !was.some(s => s.id === id)) throw new Error(`${what}: ${res.status} for server ${String(id)}, which the path does not name`)
  if (method === 'PATCH') {
    if (res.status !== 200 || !validPatch(body)) throw new Error(`${what}: ${res.status} for an invalid PATCH`)
    const server = now.find(s => s.id === id)
    const old = was.find(s => s.id === id)!
    same([server?.weight, server?.enabled], [body.weight ?? old.weight, body.enabled ?? old.enabled], `${what}: the patched server`)
  } else {
    if (res.status !== 202) throw new Error(`${what}: DELETE answered ${res.status}`)
    const server = now.find(s => s.id === id)
    if (server !== undefined && server.state !== 'draining') throw new Error(`${what}: 202 but the server is ${String(server.state)}`)
  }
  others(id)
  return changed
}

const origins = fc.tuple(
  fc.constantFrom('http', 'https', 'HTTP', 'ftp', 'ws', 'file', ''),
  fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map(ip => `[${ip}]`), fc.constant('')),
  fc.option(fc.integer({ min: 0, max: 70_000 }), { nil: undefined }),
  fc.constantFrom('', '/', '//', '/x', '?', '?a=1', '#', '#f', '/?'),
  fc.constantFrom('', 'user@', 'user:pw@', ':@')
).map(([scheme, host, port, tail, auth]) => `${scheme}${scheme === '' ? '' : '://'}${auth}${host}${port === undefined ? '' : `:${port}`}${tail}`)

const urlLike = fc.oneof(
  origins,
  // the seeded servers, spelled differently: 409
  fc.constantFrom('http://127.0.0.1:9', 'http://127.0.0.1:9/', 'HTTPS://KNOWN.example:443/', 'https://known.example'),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.webUrl().map(u => new URL(u).origin),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ maxLength: 3000 })
)

const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.integer({ min: -5, max: 1005 }), fc.double(), fc.string({ maxLength: 120 }))

const postBodies = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({ url: fc.oneof(urlLike, anyValue), weight: anyValue, name: anyValue }, { requiredKeys: [] }),
  fc.record({ url: urlLike, weight: fc.integer({ min: 0, max: 1001 }), name: fc.string({ maxLength: 110 }) }, { requiredKeys: ['url'] }),
  fc.tuple(fc.record({ url: urlLike }), fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }))
    .map(([body, extra]) => ({ ...extra, ...body }))
)

/** Characters undici sends in a header value, and Node's parser accepts: tab, visible ASCII and space, 0x80-0xff. */
const headerChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  fc.constant(0x09),
  fc.integer({ min: 0x80, max: 0xff })
).map(c => String.fromCharCode(c))
const oddValue = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: headerChar, maxLength: 300 }) },
  // large heads, up to past MAX_HEADER_SIZE (431)
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1000, max: 20_000 }), fc.constantFrom('a', 'é', ' ', '%', '\t')).map(([n, c]) => `x${c.repeat(n)}x`) }
)
/** Header names undici lets a caller set freely (the framing ones it refuses or owns are left out). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'host', 'te', 'trailer',
  'authorization', 'content-type'])
const headerName = fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,24}$/).filter(name => !FRAMING.has(name))
const extraHeaders = fc.dictionary(headerName, oddValue, { maxKeys: 4 })

/** Bytes of a request head, near enough to tell what must fit MAX_HEADER_SIZE from what cannot. */
function headBytes (sent: Sent): number {
  let n = sent.method.length + sent.path.length + 64
  for (const [name, value] of Object.entries(sent.headers ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) n += name.length + Buffer.byteLength(v, 'latin1') + 4
  }
  return n
}

/** Query strings that leave the demo backend answering 200 (it obeys ?status, ?delay and ?size). */
const query = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), maxLength: 30 }).map(q => `?${q}`),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 12 }), { maxKeys: 3 }).map(d => `?${new URLSearchParams(d).toString()}`),
  fc.integer({ min: 100, max: 24_000 }).map(n => `?q=${'y'.repeat(n)}`)
).filter(q => !['status', 'delay', 'size'].some(k => new URLSearchParams(q.slice(1)).has(k)))

/** Every byte of `s` percent-encoded, in either case: the router decodes it back to `s`. */
const hex = (s: string, upper: boolean): string => [...s].map(c => `%${c.charCodeAt(0).toString(16)[upper ? 'toUpperCase' : 'toLowerCase']()}`).join('')

/** Every spelling of a path segment the router might decode, normalise or refuse. */
function segments (ids: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('servers', 'status', 'dashboard', '', ...ids) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...ids, 'servers'), fc.boolean()).map(([s, upper]) => hex(s, upper)) },
    { weight: 3, arbitrary: fc.constantFrom('.', '..', '%2e', '%2E%2e', '%2F', '%2f', '%73ervers', 'SERVERS', 'servers;x', 'servers%00', '%', '%zz', '%00', '%C3', '%FF', '*', '~', ':id', '%3Aid', '?', '#') },
    { weight: 2, arbitrary: fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), maxLength: 12 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map(encodeURIComponent) },
    // raw bytes past ASCII: undici sends them, Node's parser refuses them (400)
    { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0x80, max: 0xff }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 4 }) },
    // very long: mostly past MAX_HEADER_SIZE (431)
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 24_000 }).map(n => 'x'.repeat(n)) }
  )
}

/** Paths under /admin: well-formed routes among every odd spelling, with or without a query. */
function adminPaths (ids: string[]): fc.Arbitrary<string> {
  const wellFormed = fc.constantFrom('/admin/servers', '/admin/status', '/admin/dashboard', ...ids.map(id => `/admin/servers/${id}`))
  const odd = fc.tuple(
    fc.constantFrom('/admin/', '/admin', '/admin//', '/admin/./', '/admin/../admin/', '/ADMIN/', '/%61dmin/', '/admin%2F', '/admin/servers/'),
    fc.array(segments(ids), { maxLength: 4 })
  ).map(([prefix, parts]) => `${prefix}${parts.join('/')}`)
  return fc.tuple(fc.oneof({ weight: 1, arbitrary: wellFormed }, { weight: 2, arbitrary: odd }), fc.option(query, { nil: '' }))
    .map(([path, q]) => `${path}${q}`)
}

const METHODS = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE') },
  { weight: 2, arbitrary: fc.constantFrom('HEAD', 'PUT', 'OPTIONS', 'TRACE', 'PROPFIND', 'M-SEARCH', 'PURGE', 'QUERY', 'SEARCH', 'LOCK', 'COPY', 'MKCOL', 'REPORT', 'LINK') },
  // CONNECT is refused by undici before sending; anything else reaches Node's parser
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z][A-Za-z-]{0,11}$/).filter(m => m.toUpperCase() !== 'CONNECT') }
)

const CONTENT_TYPES = fc.constantFrom('application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', '')

/**
 * Requests to /admin paths: random method, path and body, or one that means a change (POST a
 * server, PATCH or DELETE the victim, spelled in any of its ways) so that 2xx changes happen often
 * enough to be checked; with `extra` headers.
 */
function adminRequests (victim: string, addUrl: string): fc.Arbitrary<Sent> {
  const patchBody = fc.record({ weight: fc.integer({ min: 0, max: 1001 }), enabled: fc.boolean() }, { requiredKeys: [] }).map(b => JSON.stringify(b))
  const bodies = fc.oneof(
    fc.constant(undefined),
    fc.constant(JSON.stringify({ url: addUrl })),
    patchBody,
    // no url: a POST that passes must name `addUrl`
    fc.jsonValue({ maxDepth: 2 }).filter(v => !JSON.stringify(v).includes('"url"')).map(v => JSON.stringify(v)),
    fc.constant('not json')
  )
  const random = fc.record({ method: METHODS, path: adminPaths([victim]), body: bodies, type: CONTENT_TYPES })
  const victimPath = fc.tuple(fc.constantFrom(victim, hex(victim, false), hex(victim, true)), fc.option(query, { nil: '' }))
    .map(([id, q]) => `/admin/servers/${id}${q}`)
  const meant = fc.oneof(
    fc.record({ method: fc.constant('POST'), path: fc.option(query, { nil: '' }).map(q => `/admin/servers${q}`), body: fc.constant<string | undefined>(JSON.stringify({ url: addUrl })), type: CONTENT_TYPES }),
    fc.record({ method: fc.constant('PATCH'), path: victimPath, body: patchBody.map(b => b as string | undefined), type: CONTENT_TYPES }),
    // without a body, as clients send it (a content-type with no body is a 400/415, see the random ones)
    fc.record({ method: fc.constant('DELETE'), path: victimPath, body: fc.constant(undefined), type: fc.constant('') })
  )
  return fc.tuple(fc.oneof({ weight: 3, arbitrary: random }, { weight: 2, arbitrary: meant }), extraHeaders)
    .map(([{ method, path, body, type }, extra]) => {
      const noBody = ['GET', 'HEAD'].includes(method.toUpperCase())
      return {
        method,
        path,
        headers: { ...extra, ...AUTH, ...(type === '' || noBody ? {} : { 'content-type': type }) },
        body: noBody ? undefined : body
      }
    })
}

t.test('fuzz: a gateway with its admin API on ADMIN_PORT', async t => {
  // ADMIN_PORT: the admin listener proxies nothing, so no generated path can reach the seeded
  // upstreams (one is not on 127.0.0.1); health checks off for the same reason
  const adminPort = await freePort()
  const gw = await startGateway(t, {
    UPSTREAMS: 'http://127.0.0.1:9=3,https://known.example',
    HEALTH_CHECK_INTERVAL: '0',
    ADMIN_TOKEN: TOKEN,
    ADMIN_PORT: String(adminPort)
  })
  const target: Target = { gw, admin: new Pool(gw.adminUrl, { connections: 1 }), pub: new Pool(gw.url, { connections: 1 }) }
  t.teardown(async () => { await Promise.all([target.admin.close(), target.pub.close()]) })
  const initial = await snapshot(target)

  t.test('random JSON bodies to POST /admin/servers', async t => {
    await property(t, RUNS.numRuns, [201, 400], () => fc.assert(fc.asyncProperty(postBodies, async body => {
      const before = await snapshot(target)
      const res = await call(target, 'POST', '/servers', JSON.stringify(body), { ...JSON_HEADERS, ...AUTH })
      await checkPost(target, before, body, res)
      await alive(target)
    }), RUNS))
  })

  t.test('random strings as URLs', async t => {
    await property(t, RUNS.numRuns, [201, 400, 409], () => fc.assert(fc.asyncProperty(urlLike, async url => {
      const before = await snapshot(target)
      const res = await call(target, 'POST', '/servers', JSON.stringify({ url }), { ...JSON_HEADERS, ...AUTH })
      if (res.status === 400 && !String(res.body?.message).startsWith('body/url ')) throw new Error(`${url}: the message does not name body/url: ${String(res.body?.message)}`)
      await checkPost(target, before, { url }, res)
      await alive(target)
    }), RUNS))
  })

  t.test('random PATCH bodies to a known server', async t => {
    const id = initial[0]!.id as string
    const patches = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record({ weight: anyValue, enabled: fc.oneof(fc.boolean(), anyValue) }, { requiredKeys: [] }),
      fc.record({ weight: fc.integer({ min: 0, max: 1001 }), enabled: fc.boolean() }, { requiredKeys: [] })
    )
    await property(t, RUNS.numRuns, [200, 400], () => fc.assert(fc.asyncProperty(patches, async body => {
      const before = await snapshot(target)
      const res = await call(target, 'PATCH', `/servers/${id}`, JSON.stringify(body), { ...JSON_HEADERS, ...AUTH })
      checkAnswer(res, `PATCH ${JSON.stringify(body)}`)
      const after = await snapshot(target)
      await alive(target)
      if (!validPatch(body)) {
        if (res.status !== 400) throw new Error(`PATCH ${JSON.stringify(body)}: expected 400, got ${res.status}`)
        same(after, before, 'the pool after a refused PATCH')
        return
      }
      if (res.status !== 200) throw new Error(`PATCH ${JSON.stringify(body)}: expected 200, got ${res.status}`)
      const server = after.find(s => s.id === id)!
      same([server.weight, server.enabled], [body.weight ?? before[0]!.weight, body.enabled ?? before[0]!.enabled], 'the patched server')
      same(after.filter(s => s.id !== id), before.filter(s => s.id !== id), 'the other servers')
      await undo(target, before)
    }), RUNS))
  })

  t.test('random ids in GET, PATCH and DELETE /admin/servers/:id', async t => {
    const victim = await addVictim(t, target, 'http://victim.example')
    const known = (await snapshot(target)).map(s => s.id as string)
    const otherIds = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[0-9a-f]{12}$/),
      fc.tuple(fc.constantFrom(...known), fc.string({ minLength: 1, maxLength: 3 })).map(([id, s]) => `${id}${s}`),
      fc.constantFrom(...known).map(id => id.toUpperCase()),
      fc.constantFrom('.', '..', '...', ' ', '%', '/', '\\', '\u0000'),
      fc.integer({ min: 200, max: 20_000 }).map(n => 'f'.repeat(n))
    ).filter(id => !known.includes(id))
    // each id as the path segment it is sent as: encoded as a client library would, or raw
    const spelled = fc.oneof(
      { weight: 4, arbitrary: otherIds.map(encodeURIComponent) },
      // every byte percent-encoded (either case): decodes to the victim, so it must be found
      { weight: 2, arbitrary: fc.boolean().map(upper => hex(victim, upper)) },
      { weight: 1, arbitrary: fc.constant(victim) },
      // raw printable ASCII as it comes: '%', '?', '#' and '/' included
      { weight: 2, arbitrary: fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map(c => String.fromCharCode(c)), minLength: 1, maxLength: 20 }) }
    )
    const methods = fc.constantFrom('GET', 'PATCH', 'DELETE')
    await property(t, RUNS.numRuns, [200, 202, 404], () => fc.assert(fc.asyncProperty(spelled, methods, fc.integer({ min: 1, max: 1000 }), async (segment, method, weight) => {
      const before = await snapshot(target)
      const sent: Sent = {
        method,
        path: `/admin/servers/${segment}`,
        headers: method === 'PATCH' ? { ...JSON_HEADERS, ...AUTH } : AUTH,
        body: method === 'PATCH' ? JSON.stringify({ weight }) : undefined
      }
      const res = await send(target.admin, sent)
      const what = describe(sent)
      checkAnswer(res, what, sent)
      const id = idIn(sent.path)
      const names = id !== undefined && known.includes(id) && !segment.split(/[?#]/, 1)[0]!.includes('/') && headBytes(sent) < MAX_HEAD - 512
      // a segment that decodes to a pool id names that server; any other is not found (or refused)
      if (names && res.status !== { GET: 200, PATCH: 200, DELETE: 202 }[method]) throw new Error(`${what}: names ${id}, but answered ${res.status}`)
      if (!names && ![400, 404, 414, 431].includes(res.status)) throw new Error(`${what}: names no server, but answered ${res.status}`)
      if (checkChange(before, await snapshot(target), sent, res, what)) await undo(target, before)
      await alive(target)
    }), RUNS))
  })

  t.test('random header values with a wrong token', async t => {
    const value = fc.oneof(
      fc.string({ maxLength: 300 }).filter(v => !/[^\t\x20-\x7e\x80-\xff]/.test(v)),
      fc.constantFrom('Bearer', 'Bearer ', `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN}!`, `Basic ${TOKEN}`, TOKEN, `Bearer  ${TOKEN.toUpperCase()}`),
      fc.string({ maxLength: 40 }).map(s => `Bearer ${s}`).filter(v => !/[^\t\x20-\x7e\x80-\xff]/.test(v)),
      oddValue
    )
    const headers = fc.tuple(fc.record({
      authorization: fc.oneof(value, fc.array(value, { minLength: 2, maxLength: 3 })),
      'content-type': fc.oneof(value, fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x')),
      'x-forwarded-for': fc.oneof(value, fc.ipV4(), fc.ipV6()),
      'x-request-id': value
    }, { requiredKeys: [] }), extraHeaders).map(([named, extra]) => ({ ...extra, ...named }))
    const methods = fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE')
    await property(t, RUNS.numRuns, [401, 431], () => fc.assert(fc.asyncProperty(headers, methods, async (h, method) => {
      const before = await snapshot(target)
      const path = method === 'GET' || method === 'POST' ? '/admin/servers' : `/admin/servers/${initial[0]!.id as string}`
      const body = method === 'POST' ? '{"url":"http://fuzz.example"}' : method === 'PATCH' ? '{"weight":7}' : undefined
      const sent: Sent = { method, path, headers: h as Record<string, string | string[]>, body }
      const res = await send(target.admin, sent)
      const what = describe(sent)
      checkAnswer(res, what, sent)
      // no generated header carries the exact token, so every call is refused (or its head is too large)
      const size = headBytes(sent)
      const expected = size > MAX_HEAD + 256 ? [431] : size < MAX_HEAD - 512 ? [401] : [401, 431]
      if (!expected.includes(res.status)) throw new Error(`${what}: expected ${expected.join(' or ')} for a ${size}-byte head, got ${res.status}`)
      if (res.status === 401 && res.headers['www-authenticate'] !== 'Bearer realm="sluice-admin"') throw new Error(`${what}: 401 without the Bearer challenge`)
      same(await snapshot(target), before, 'the pool after a refused call')
      await alive(target)
    }), RUNS))
  })

  t.test('authorization spellings: only the exact token is let in', async t => {
    const victim = await addVictim(t, target, 'http://victim.example')
    const wrong = fc.oneof(
      fc.constantFrom('', TOKEN.slice(1), TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), `x${TOKEN}`, `${TOKEN}${TOKEN}`, `"${TOKEN}"`, `${TOKEN},`),
      fc.tuple(fc.nat({ max: TOKEN.length - 1 }), fc.integer({ min: 0x21, max: 0x7e })).map(([i, c]) => `${TOKEN.slice(0, i)}${String.fromCharCode(c)}${TOKEN.slice(i + 1)}`)
        .filter(v => v !== TOKEN),
      fc.string({ unit: headerChar, maxLength: 60 })
    )
    const spelling = fc.record({
      lead: fc.constantFrom('', ' ', '\t'),
      scheme: fc.constantFrom('Bearer', 'bearer', 'BEARER', 'bEaReR', 'Basic', 'Token', 'Bearer:', 'Bearer-', ''),
      gap: fc.constantFrom(' ', '  ', '\t', ' \t', ''),
      token: fc.oneof({ weight: 2, arbitrary: fc.constant(TOKEN) }, { weight: 3, arbitrary: wrong }),
      tail: fc.constantFrom('', ' ', '\t', ' x', ',', `, Bearer ${TOKEN}`, ' Bearer')
    })
    const calls = fc.constantFrom('GET /admin/servers', 'GET /admin/status', 'PATCH victim')
    await property(t, RUNS.numRuns, [200, 401], () => fc.assert(fc.asyncProperty(fc.array(spelling, { minLength: 1, maxLength: 2 }), calls, fc.integer({ min: 1, max: 1000 }), async (spellings, which, weight) => {
      const values = spellings.map(s => `${s.lead}${s.scheme}${s.gap}${s.token}${s.tail}`)
      const before = await snapshot(target)
      const patch = which === 'PATCH victim'
      const sent: Sent = {
        method: patch ? 'PATCH' : 'GET',
        path: patch ? `/admin/servers/${victim}` : which.slice(4),
        headers: { authorization: values.length === 1 ? values[0]! : values, ...(patch ? JSON_HEADERS : {}) },
        body: patch ? JSON.stringify({ weight }) : undefined
      }
      const res = await send(target.admin, sent)
      const what = describe(sent)
      checkAnswer(res, what, sent)
      if (![200, 401].includes(res.status)) throw new Error(`${what}: expected 200 or 401, got ${res.status}`)
      // safety: nothing without the exact token; liveness: the canonical spellings of it pass
      const first = spellings[0]!
      if (res.status === 200 && !values.some(v => v.includes(TOKEN))) throw new Error(`${what}: let in without the token`)
      const canonical = spellings.length === 1 && first.scheme.toLowerCase() === 'bearer' && first.gap === ' ' && first.token === TOKEN && first.tail.trim() === ''
      if (canonical && res.status !== 200) throw new Error(`${what}: the exact token was refused`)
      if (checkChange(before, await snapshot(target), sent, res, what)) await undo(target, before)
      await alive(target)
    }), RUNS))
  })

  t.test('random content types and forwarded-for values with the right token', async t => {
    const headers = fc.record({
      'content-type': fc.oneof(fc.string({ unit: headerChar, maxLength: 60 }), fc.constantFrom('application/json', 'APPLICATION/JSON', 'application/json; charset=utf-8', 'application/jsonx', 'text/plain', 'application/*', 'application/json, text/plain', ' application/json ', 'application/json;charset=')),
      'x-forwarded-for': fc.oneof(fc.string({ unit: headerChar, maxLength: 60 }), fc.ipV4(), fc.ipV6())
    }, { requiredKeys: [] })
    const methods = fc.constantFrom('POST', 'PATCH')
    await property(t, RUNS.numRuns, [200, 201, 415], () => fc.assert(fc.asyncProperty(headers, methods, async (h, method) => {
      const before = await snapshot(target)
      const sent: Sent = {
        method,
        path: method === 'POST' ? '/admin/servers' : `/admin/servers/${initial[0]!.id as string}`,
        headers: { ...h, ...AUTH },
        body: method === 'POST' ? '{"url":"http://fuzz.example"}' : '{"weight":7}'
      }
      const res = await send(target.admin, sent)
      const what = describe(sent)
      checkAnswer(res, what, sent)
      if (![200, 201, 400, 415].includes(res.status)) throw new Error(`${what}: expected 200, 201, 400 or 415, got ${res.status}`)
      const after = await snapshot(target)
      if (res.status < 300 && JSON.stringify(after) === JSON.stringify(before)) throw new Error(`${what}: ${res.status} but the pool did not change`)
      if (checkChange(before, after, sent, res, what)) await undo(target, before)
      await alive(target)
    }), RUNS))
  })

  t.test('random paths, methods, headers and bodies under /admin on the admin listener', async t => {
    const victim = await addVictim(t, target, 'http://victim.example')
    const runs = 250
    await property(t, runs, [200, 201, 202, 400, 404, 431], () => fc.assert(fc.asyncProperty(adminRequests(victim, 'http://fuzz-path.example'), async sent => {
      const before = await snapshot(target)
      const res = await send(target.admin, sent)
      const what = describe(sent)
      checkAnswer(res, what, sent)
      if (res.proxied) throw new Error(`${what}: the admin listener proxied it`)
      if (checkChange(before, await snapshot(target), sent, res, what)) await undo(target, before)
      await alive(target)
    }), { numRuns: runs }))
  })

  t.test('the gateway survived', async t => {
    await alive(target)
    t.same(await snapshot(target), initial, 'the pool is as it started')
  })
})

t.test('fuzz: paths under /admin on the public port of a gateway that also proxies', async t => {
  // no ADMIN_PORT: a path no admin route takes goes to the upstreams, here real demo backends
  // (b2 is a victim to change and delete, b3 what POSTs add)
  const [b1, b2, b3] = await startBackends(t, 3)
  // the gateway refuses heads over 16 KiB (431); its upstreams must take the largest it forwards
  // (plus the x-forwarded-* it adds), or their own bare 431 would pass for the gateway's
  for (const b of [b1!, b2!, b3!]) Object.assign(b.server, { maxHeaderSize: 64 * 1024 })
  const gw = await startGateway(t, {
    UPSTREAMS: b1!.url,
    HEALTH_CHECK_INTERVAL: '0',
    ADMIN_TOKEN: TOKEN,
    RATE_LIMIT_MAX: '100000000'
  })
  const client = new Pool(gw.url, { connections: 1 })
  const target: Target = { gw, admin: client, pub: client }
  t.teardown(() => client.close())
  const initial = view(await snapshot(target))
  const victim = await addVictim(t, target, b2!.url)
  const hits = (): number => [b1!, b2!, b3!].reduce((n, b) => n + [...b.hits.values()].reduce((a, c) => a + c, 0), 0)

  const runs = 250
  let proxied = 0
  await property(t, runs, [200, 201, 202, 400, 404, 431], () => fc.assert(fc.asyncProperty(adminRequests(victim, b3!.url), async sent => {
    const before = await snapshot(target)
    const hitsBefore = hits()
    const res = await send(client, sent)
    const what = describe(sent)
    checkAnswer(res, what, sent)
    if (res.proxied) {
      proxied++
      // the upstream's own answer, passed through: it saw the request and said 200
      if (res.status !== 200 || hits() !== hitsBefore + 1) throw new Error(`${what}: proxied, answered ${res.status}, backend hits ${hitsBefore} -> ${hits()}`)
    } else if (hits() !== hitsBefore) {
      throw new Error(`${what}: the gateway answered ${res.status} itself, yet an upstream saw the request`)
    }
    if (checkChange(before, await snapshot(target), sent, res, what)) await undo(target, before)
    await alive(target)
  }), { numRuns: runs }))
  t.ok(proxied > 0, `some paths were not the admin API's and went upstream (${proxied})`)
  await alive(target)
  const final = view(await snapshot(target)).filter(s => s.id !== victim)
  t.same(final, initial, 'the pool is as it started (besides the victim)')
})

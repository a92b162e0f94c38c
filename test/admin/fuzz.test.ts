import t, { type Test as Tap } from 'tap'
import fc from 'fast-check'
import { request } from 'undici'
import { startGateway, type Gateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'
import { normaliseOrigin, serverId } from '../../src/pool/origin.js'

// Property tests: whatever a client sends to the admin API, it never gets a 5xx, the gateway keeps
// serving, and the pool changes only when the answer is a 2xx (and then exactly as asked).

const RUNS = { numRuns: 150 }
const TOKEN = 'fuzz-token-0123456789abcdef'
const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']

type Json = Record<string, unknown>
type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'

interface Answer { status: number, body: Json }

/** Answers seen per property, to check the generators reach both sides of every rule. */
let seen = new Map<number, number>()
let counting = true

async function call (gw: Gateway, method: Method, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${gw.adminUrl}/admin${path}`, { method, headers, body })
  const text = await res.body.text()
  let parsed: Json
  try {
    parsed = JSON.parse(text) as Json
  } catch {
    throw new Error(`${method} ${path} answered ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`)
  }
  if (counting && !(method === 'GET' && path === '/servers')) seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1)
  return { status: res.statusCode, body: parsed }
}

/** Runs a property, then checks that it produced each of `statuses` at least once. */
async function property (t: Tap, statuses: number[], run: () => Promise<void>): Promise<void> {
  seen = new Map()
  await run()
  t.pass(`${RUNS.numRuns} runs: ${JSON.stringify(Object.fromEntries(seen))}`)
  for (const status of statuses) t.ok((seen.get(status) ?? 0) > 0, `some runs answered ${status}`)
}

const JSON_HEADERS = { 'content-type': 'application/json' }
const AUTH = { authorization: `Bearer ${TOKEN}` }

async function snapshot (gw: Gateway): Promise<Json[]> {
  const res = await call(gw, 'GET', '/servers', undefined, AUTH)
  if (res.status !== 200) throw new Error(`GET /admin/servers answered ${res.status}`)
  return res.body.servers as Json[]
}

/** A non-2xx answer is a well-formed SLUICE error and not a server error. */
function checkAnswer (res: Answer, what: string): void {
  if (res.status >= 500) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`)
  if (res.status >= 400) {
    const keys = Object.keys(res.body).sort()
    if (JSON.stringify(keys) !== JSON.stringify(ERROR_KEYS)) throw new Error(`${what}: error body ${JSON.stringify(res.body)}`)
    if (res.body.statusCode !== res.status || !String(res.body.code).startsWith('SLUICE_')) throw new Error(`${what}: error body ${JSON.stringify(res.body)}`)
  }
}

function same (a: unknown, b: unknown, what: string): void {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`)
}

/** Undoes a successful change, so every run starts from the same pool. */
async function undo (gw: Gateway, before: Json[]): Promise<void> {
  counting = false
  try {
    await restore(gw, before)
  } finally {
    counting = true
  }
}

async function restore (gw: Gateway, before: Json[]): Promise<void> {
  const ids = new Set(before.map(s => s.id))
  for (const server of await snapshot(gw)) {
    if (!ids.has(server.id)) await call(gw, 'DELETE', `/servers/${server.id as string}`, undefined, AUTH)
  }
  for (const server of before) {
    await call(gw, 'PATCH', `/servers/${server.id as string}`, JSON.stringify({ weight: server.weight, enabled: server.enabled }), { ...JSON_HEADERS, ...AUTH })
  }
  // with active checks off and nothing in flight, a drain ends at once
  await waitFor(async () => (await snapshot(gw)).length === before.length, 'the pool to be restored')
  same(await snapshot(gw), before, 'restored pool')
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

/** Checks one POST against the model and the pool, then restores the pool. */
async function checkPost (gw: Gateway, before: Json[], body: unknown, res: Answer): Promise<void> {
  checkAnswer(res, `POST ${JSON.stringify(body)}`)
  const after = await snapshot(gw)
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
  if (res.status !== 201) throw new Error(`POST ${JSON.stringify(body)}: expected 201, got ${res.status} ${JSON.stringify(res.body)}`)
  const added = after.find(s => !before.some(b => b.id === s.id))
  same(after.length, before.length + 1, 'one server added')
  same([added?.id, added?.url, added?.weight, added?.name], [serverId(expected.url), expected.url, expected.weight, expected.name ?? new URL(expected.url).host], 'the added server')
  same(res.body, added, 'the 201 body is the server')
  await undo(gw, before)
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

t.test('fuzz: a gateway', async t => {
  const gw = await startGateway(t, {
    UPSTREAMS: 'http://127.0.0.1:9=3,https://known.example',
    HEALTH_CHECK_INTERVAL: '0',
    ADMIN_TOKEN: TOKEN
  })
  const initial = await snapshot(gw)

  t.test('random JSON bodies to POST /admin/servers', async t => {
    await property(t, [201, 400], () => fc.assert(fc.asyncProperty(postBodies, async body => {
      const before = await snapshot(gw)
      const res = await call(gw, 'POST', '/servers', JSON.stringify(body), { ...JSON_HEADERS, ...AUTH })
      await checkPost(gw, before, body, res)
    }), RUNS))
  })

  t.test('random strings as URLs', async t => {
    await property(t, [201, 400, 409], () => fc.assert(fc.asyncProperty(urlLike, async url => {
      const before = await snapshot(gw)
      const res = await call(gw, 'POST', '/servers', JSON.stringify({ url }), { ...JSON_HEADERS, ...AUTH })
      if (res.status === 400 && !String(res.body.message).startsWith('body/url ')) throw new Error(`${url}: the message does not name body/url: ${String(res.body.message)}`)
      await checkPost(gw, before, { url }, res)
    }), RUNS))
  })

  t.test('random PATCH bodies to a known server', async t => {
    const id = initial[0]!.id as string
    const patches = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.record({ weight: anyValue, enabled: fc.oneof(fc.boolean(), anyValue) }, { requiredKeys: [] }),
      fc.record({ weight: fc.integer({ min: 0, max: 1001 }), enabled: fc.boolean() }, { requiredKeys: [] })
    )
    await property(t, [200, 400], () => fc.assert(fc.asyncProperty(patches, async body => {
      const before = await snapshot(gw)
      const res = await call(gw, 'PATCH', `/servers/${id}`, JSON.stringify(body), { ...JSON_HEADERS, ...AUTH })
      checkAnswer(res, `PATCH ${JSON.stringify(body)}`)
      const after = await snapshot(gw)
      const o = body as Json
      const valid = typeof body === 'object' && body !== null && !Array.isArray(body) &&
        Object.keys(o).length > 0 && Object.keys(o).every(k => k === 'weight' || k === 'enabled') &&
        (o.weight === undefined || (Number.isInteger(o.weight) && (o.weight as number) >= 1 && (o.weight as number) <= 1000)) &&
        (o.enabled === undefined || typeof o.enabled === 'boolean')
      if (!valid) {
        if (res.status !== 400) throw new Error(`PATCH ${JSON.stringify(body)}: expected 400, got ${res.status}`)
        same(after, before, 'the pool after a refused PATCH')
        return
      }
      if (res.status !== 200) throw new Error(`PATCH ${JSON.stringify(body)}: expected 200, got ${res.status}`)
      const server = after.find(s => s.id === id)!
      same([server.weight, server.enabled], [o.weight ?? before[0]!.weight, o.enabled ?? before[0]!.enabled], 'the patched server')
      same(after.filter(s => s.id !== id), before.filter(s => s.id !== id), 'the other servers')
      await undo(gw, before)
    }), RUNS))
  })

  t.test('random ids', async t => {
    const known = initial.map(s => s.id as string)
    const ids = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[0-9a-f]{12}$/),
      fc.tuple(fc.constantFrom(...known), fc.string({ minLength: 1, maxLength: 3 })).map(([id, s]) => `${id}${s}`),
      fc.constantFrom(...known).map(id => id.toUpperCase())
    ).filter(id => !known.includes(id))
    const methods = fc.constantFrom<Method>('GET', 'PATCH', 'DELETE')
    await property(t, [404], () => fc.assert(fc.asyncProperty(ids, methods, async (id, method) => {
      const before = await snapshot(gw)
      const res = await call(gw, method, `/servers/${encodeURIComponent(id)}`, method === 'PATCH' ? '{"weight":2}' : undefined,
        method === 'PATCH' ? { ...JSON_HEADERS, ...AUTH } : AUTH)
      checkAnswer(res, `${method} ${JSON.stringify(id)}`)
      if (res.status !== 404) throw new Error(`${method} ${JSON.stringify(id)}: expected 404, got ${res.status}`)
      same(await snapshot(gw), before, 'the pool after a 404')
    }), RUNS))
  })

  t.test('random header values', async t => {
    const value = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.constantFrom('Bearer', 'Bearer ', `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN}!`, `Basic ${TOKEN}`, TOKEN, `Bearer  ${TOKEN.toUpperCase()}`),
      fc.string({ maxLength: 40 }).map(s => `Bearer ${s}`)
    )
    const headers = fc.record({
      authorization: value,
      'content-type': fc.oneof(value, fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x')),
      'x-forwarded-for': fc.oneof(value, fc.ipV4(), fc.ipV6()),
      'x-request-id': value
    }, { requiredKeys: [] })
    const methods = fc.constantFrom<Method>('GET', 'POST', 'PATCH', 'DELETE')
    await property(t, [401], () => fc.assert(fc.asyncProperty(headers, methods, async (h, method) => {
      const before = await snapshot(gw)
      const path = method === 'GET' || method === 'POST' ? '/servers' : `/servers/${initial[0]!.id as string}`
      const body = method === 'POST' ? '{"url":"http://fuzz.example"}' : method === 'PATCH' ? '{"weight":7}' : undefined
      const res = await call(gw, method, path, body, h)
      checkAnswer(res, `${method} with ${JSON.stringify(h)}`)
      // no generated header carries the exact token, so every call is refused
      if (res.status !== 401) throw new Error(`${method} with ${JSON.stringify(h)}: expected 401, got ${res.status}`)
      same(await snapshot(gw), before, 'the pool after a 401')
    }), RUNS))
  })

  t.test('random content types and forwarded-for values with the right token', async t => {
    const headers = fc.record({
      'content-type': fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('application/json', 'APPLICATION/JSON', 'application/json; charset=utf-8', 'application/jsonx', 'text/plain', 'application/*')),
      'x-forwarded-for': fc.oneof(fc.string({ maxLength: 60 }), fc.ipV4(), fc.ipV6())
    }, { requiredKeys: [] })
    await property(t, [200, 201, 415], () => fc.assert(fc.asyncProperty(headers, fc.constantFrom<Method>('POST', 'PATCH'), async (h, method) => {
      const before = await snapshot(gw)
      const path = method === 'POST' ? '/servers' : `/servers/${initial[0]!.id as string}`
      const res = await call(gw, method, path, method === 'POST' ? '{"url":"http://fuzz.example"}' : '{"weight":7}', { ...h, ...AUTH })
      checkAnswer(res, `${method} with ${JSON.stringify(h)}`)
      const after = await snapshot(gw)
      if (res.status < 300) {
        if (JSON.stringify(after) === JSON.stringify(before)) throw new Error(`${method} with ${JSON.stringify(h)}: ${res.status} but the pool did not change`)
        await undo(gw, before)
      } else {
        same(after, before, `the pool after a ${res.status}`)
      }
    }), RUNS))
  })

  t.test('the gateway survived', async t => {
    const res = await request(`${gw.url}/healthz`)
    t.equal(res.statusCode, 200, 'the gateway still serves')
    await res.body.dump()
    t.same(await snapshot(gw), initial, 'the pool is as it started')
  })
})

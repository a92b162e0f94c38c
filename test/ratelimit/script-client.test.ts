import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { LIMIT_LUA } from '../../src/ratelimit/lua.js'
import { RedisStore } from '../../src/ratelimit/redis-store.js'
import { encodeCommand, ReplyError, ReplyReader, type Reply } from '../../src/ratelimit/resp.js'
import { RedisUnavailableError, ScriptClient } from '../../src/ratelimit/script-client.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'

const UNAVAILABLE = { message: /^Redis is unavailable/ }
const ECHO = 'return { KEYS[1], ARGV[1], ARGV[2] }'

/** A started client, closed when the test ends; resolves once it is ready. */
async function ready (t: Test, url: string, script = ECHO, commandTimeoutMs = 200): Promise<ScriptClient> {
  const client = started(t, url, script, commandTimeoutMs)
  await new Promise<void>(resolve => client.once('ready', () => resolve()))
  return client
}

function started (t: Test, url: string, script = ECHO, commandTimeoutMs = 200): ScriptClient {
  const client = new ScriptClient({ url, script, commandTimeoutMs, connectTimeoutMs: 500 })
  client.on('error', () => {})
  t.teardown(() => client.close())
  client.connect()
  return client
}

async function run (client: ScriptClient, key: string, ...args: Array<string | number>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    client.run([key], args, (err, reply) => { err === null ? resolve(reply as Reply) : reject(err) })
  })
}

t.test('RESP reader: every reply type, split at every byte, in order', async t => {
  const wire = Buffer.from('+OK\r\n:42\r\n-ERR bad thing\r\n$4\r\nhé!\r\n$-1\r\n*-1\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n+x\r\n$3\r\nend\r\n', 'utf8')
  const expected: Reply[] = ['OK', 42, new ReplyError('ERR bad thing'), 'hé!', null, null, [1, [''], 'x'], 'end']
  for (let cut = 0; cut <= wire.length; cut++) {
    const reader = new ReplyReader()
    const got: Reply[] = []
    reader.push(wire.subarray(0, cut), reply => got.push(reply))
    reader.push(wire.subarray(cut), reply => got.push(reply))
    if (JSON.stringify(got) !== JSON.stringify(expected) || !(got[2] instanceof ReplyError)) {
      t.fail(`split at ${cut}: ${JSON.stringify(got)}`)
      return
    }
  }
  t.pass('identical replies wherever the stream is split')
  t.throws(() => new ReplyReader().push(Buffer.from('?huh\r\n'), () => {}), { message: /unexpected RESP type/ }, 'an unknown type byte is refused')
  t.equal(encodeCommand(['SET', 'ké', 7]), '*3\r\n$3\r\nSET\r\n$3\r\nké\r\n$1\r\n7\r\n', 'lengths in bytes')
})

t.test('runs the script by SHA; a burst from one tick is answered in order, each with its own reply', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url)
  const replies = await Promise.all(Array.from({ length: 300 }, async (_, i) => run(client, `k${i}`, i, 'ünï')))
  t.same(replies, Array.from({ length: 300 }, (_, i) => [`k${i}`, String(i), 'ünï']))
  t.ok(client.ready)
})

t.test('a callback that throws: the replies after it still arrive on the same connection, and the error is thrown on its own', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url)
  let closed = 0
  client.on('close', () => { closed++ })
  // tap fails a test on an uncaught exception: catch this one ourselves, then hand the handlers back
  const handlers = process.rawListeners('uncaughtException') as Array<(err: Error) => void>
  process.removeAllListeners('uncaughtException')
  t.teardown(() => { for (const handler of handlers) process.on('uncaughtException', handler) })
  const thrown = new Promise<Error>(resolve => process.once('uncaughtException', resolve))
  const replies: Reply[] = []
  // one turn: written together, answered in one read, so the throwing callback sits between the others
  client.run(['a'], [1, 'x'], (_err, reply) => { replies.push(reply as Reply) })
  client.run(['b'], [2, 'x'], () => { throw new Error('a bug in a caller') })
  const last = new Promise<Reply>(resolve => { client.run(['c'], [3, 'x'], (_err, reply) => { resolve(reply as Reply) }) })
  t.same(await last, ['c', '3', 'x'], 'the reply after the throwing callback')
  t.same(replies, [['a', '1', 'x']])
  t.match(await thrown, { message: 'a bug in a caller' }, 'the exception surfaces as uncaught, not swallowed')
  t.same(await run(client, 'd', 4, 'x'), ['d', '4', 'x'], 'the connection is still in use')
  t.equal(closed, 0, 'and was never dropped')
})

t.test('a script reply of another shape is an error for the caller, not a crash', async t => {
  const redis = await startRedis(t)
  const store = new RedisStore(await ready(t, redis.url, 'return "not a decision"'), { algorithm: 'fixed-window', prefix: 't:' })
  await t.rejects(store.hit('k', 1000, 5), { message: /^unexpected reply from the limiter script: "not a decision"/ })
})

t.test('the limiter over it: exactly max admitted out of a concurrent burst', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url, LIMIT_LUA)
  const store = new RedisStore(client, { algorithm: 'sliding-window', prefix: 'sc:' })
  const decisions = await Promise.all(Array.from({ length: 120 }, async () => store.hit('client', 60_000, 50)))
  t.equal(decisions.filter(d => d.allowed).length, 50)
  t.ok(decisions.filter(d => !d.allowed).every(d => d.current === 51 && d.ttl > 0))
  const other = await store.hit('client', 30_000, 5)
  t.ok(other.allowed, 'another policy (window, max) on another key encoding works too')
})

t.test('AUTH with a password or a user, and SELECT from the URL path', async t => {
  const redis = await startRedis(t, ['--requirepass', 'sesame'])
  const admin = new Redis(`redis://:sesame@127.0.0.1:${redis.port}`)
  t.teardown(() => admin.disconnect())
  const client = await ready(t, `redis://:sesame@127.0.0.1:${redis.port}/3`, LIMIT_LUA)
  await new RedisStore(client, { algorithm: 'fixed-window', prefix: 'db:' }).hit('c', 60_000, 5)
  await admin.select(3)
  t.equal(await admin.exists('db:rl:{c}'), 1, 'the key is in database 3')

  await admin.call('ACL', 'SETUSER', 'limiter', 'on', '>p@ss word', '~*', '+@all')
  const user = await ready(t, `redis://limiter:${encodeURIComponent('p@ss word')}@127.0.0.1:${redis.port}`)
  t.same(await run(user, 'k', 1, 2), ['k', '1', '2'], 'user and URL-encoded password')

  const refused = started(t, `redis://:wrong@127.0.0.1:${redis.port}`)
  const errors: Error[] = []
  refused.on('error', err => errors.push(err))
  await waitFor(() => errors.some(e => /WRONGPASS|invalid/i.test(e.message)), 'the refused AUTH')
  t.notOk(refused.ready, 'never ready with a wrong password')
  await t.rejects(run(refused, 'k'), UNAVAILABLE, 'and its commands fail at once')
})

t.test('a flushed script is sent again with EVAL, transparently', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url)
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.script('FLUSH')
  const replies = await Promise.all([run(client, 'a', 1, 2), run(client, 'b', 3, 4)])
  t.same(replies, [['a', '1', '2'], ['b', '3', '4']])
  t.same(await admin.script('EXISTS', '0'.repeat(40)), [0])
})

t.test('Redis hung: a command fails after the timeout, late replies are dropped, then it works again', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url, ECHO, 150)
  process.kill(redis.pid, 'SIGSTOP')
  t.teardown(() => { try { process.kill(redis.pid, 'SIGCONT') } catch {} })
  const started = performance.now()
  const stuck = await Promise.allSettled([run(client, 'x', 1, 2), run(client, 'y', 1, 2)])
  const waited = performance.now() - started
  t.ok(stuck.every(r => r.status === 'rejected' && r.reason instanceof RedisUnavailableError), 'both failed as unavailable')
  t.ok(waited >= 140 && waited < 1000, `failed after the timeout, not before and not much later (${waited.toFixed(0)} ms)`)
  process.kill(redis.pid, 'SIGCONT')
  t.same(await run(client, 'z', 5, 6), ['z', '5', '6'], 'the late replies went to nobody; this one is its own')
})

t.test('connection lost: pending commands fail, it reconnects and reloads the script into the new server', async t => {
  const redis = await startRedis(t)
  const client = await ready(t, redis.url)
  const events: string[] = []
  client.on('close', () => events.push('close'))
  client.on('ready', () => events.push('ready'))
  const inFlight = run(client, 'a', 1, 2).then(() => undefined, (err: Error) => err)
  await redis.kill()
  t.match(await inFlight, UNAVAILABLE, 'the command in flight failed')
  await t.rejects(run(client, 'b', 1, 2), UNAVAILABLE, 'nothing is queued while disconnected')
  await redis.restart()
  await waitFor(() => client.ready, 'the reconnect', 5000)
  t.same(await run(client, 'c', 1, 2), ['c', '1', '2'], 'the fresh server has the script (loaded again on connect)')
  t.same(events.slice(0, 1), ['close'])
  t.equal(events.at(-1), 'ready')
})

t.test('not started, refused or closed: commands fail at once; close stops reconnecting', async t => {
  const port = await freePort()
  const idle = new ScriptClient({ url: `redis://127.0.0.1:${port}`, script: ECHO, commandTimeoutMs: 100 })
  await t.rejects(run(idle, 'k'), UNAVAILABLE, 'never connected')
  await idle.close()

  const refused = started(t, `redis://127.0.0.1:${port}`)
  const errors: Error[] = []
  refused.on('error', err => errors.push(err))
  await waitFor(() => errors.length >= 2, 'two refused attempts (it keeps retrying)')
  t.match(errors[0]?.message, /ECONNREFUSED/)

  const tls = started(t, `rediss://127.0.0.1:${(await startRedis(t)).port}`)
  const tlsErrors: Error[] = []
  tls.on('error', err => tlsErrors.push(err))
  await waitFor(() => tlsErrors.length > 0, 'the TLS handshake failing against a plain server')
  t.notOk(tls.ready)

  const redis = await startRedis(t)
  const client = await ready(t, redis.url)
  let ended = false
  client.on('end', () => { ended = true })
  await client.close()
  t.ok(ended, 'end after close')
  await t.rejects(run(client, 'k'), UNAVAILABLE)
  client.connect()
  t.notOk(client.ready, 'a closed client does not connect again')
})

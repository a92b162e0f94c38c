import t from 'tap'
import { createIpHash, hashKey } from '../../src/balancer/ip-hash.js'
import type { Strategy } from '../../src/balancer/strategy.js'
import { serverId } from '../../src/pool/origin.js'
import { Upstream } from '../../src/pool/upstream.js'

function server (n: number, weight = 1): Upstream {
  const url = `http://10.0.0.${n}:3000`
  const s = new Upstream(serverId(url), url, `s${n}`, weight, true)
  s.state = 'healthy'
  return s
}

function range (from: number, to: number, weight = 1): Upstream[] {
  const out: Upstream[] = []
  for (let n = from; n <= to; n++) out.push(server(n, weight))
  return out
}

/** Deterministic client addresses spread over the IPv4 space (LCG), plus a few IPv6 ones. */
function keys (count: number): string[] {
  const out: string[] = []
  let x = 12345
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out.push(i % 10 === 9
      ? `2001:db8::${(x >>> 16).toString(16)}:${(x & 0xffff).toString(16)}`
      : `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`)
  }
  return out
}

function route (strategy: Strategy, servers: readonly Upstream[], list: string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const key of list) out.set(key, strategy.pick(servers, { key, tried: [] })?.id as string)
  return out
}

function share (routes: Map<string, string>): Map<string, number> {
  const counts = new Map<string, number>()
  for (const id of routes.values()) counts.set(id, (counts.get(id) ?? 0) + 1)
  return counts
}

t.test('the key hash is a stable, well mixed uint32', async t => {
  const rows = [
    { key: '', expect: hashKey('') },
    { key: '10.0.0.1', expect: hashKey('10.0.0.1') }
  ]
  for (const row of rows) t.equal(hashKey(row.key), row.expect)
  t.not(hashKey('10.0.0.1'), hashKey('10.0.0.2'), 'neighbours differ')
  const seen = new Set(keys(3000).map(hashKey))
  t.ok(seen.size > 2990, `few collisions among 3000 keys (${3000 - seen.size})`)
  for (const key of keys(100)) t.ok(Number.isInteger(hashKey(key)) && hashKey(key) >= 0 && hashKey(key) <= 0xffffffff)
})

t.test('the same key always goes to the same server', async t => {
  const servers = range(1, 5)
  const ipHash = createIpHash()
  const list = keys(500)
  const first = route(ipHash, servers, list)
  t.same(route(ipHash, servers, list), first, 'repeated on the same instance')
  t.same(route(createIpHash(), servers, list), first, 'another instance agrees')
  t.ok(share(first).size === 5, 'every server gets keys')
})

t.test('identical ids give identical rings, whatever the array or its order', async t => {
  const list = keys(1000)
  const base = route(createIpHash(), range(1, 4), list)
  t.same(route(createIpHash(), range(1, 4), list), base, 'new Upstream objects, same ids')
  t.same(route(createIpHash(), range(1, 4).reverse(), list), base, 'reversed order')
})

t.test('even spread over 3 servers (±30%)', async t => {
  const counts = share(route(createIpHash(), range(1, 3), keys(3000)))
  t.equal(counts.size, 3)
  for (const [id, count] of counts) t.ok(count >= 700 && count <= 1300, `${id}: ${count}`)
})

t.test('weight scales a server\'s share', async t => {
  const servers = [server(1, 1), server(2, 3)]
  const counts = share(route(createIpHash(), servers, keys(4000)))
  const heavy = counts.get((servers[1] as Upstream).id) ?? 0
  t.ok(heavy >= 2600 && heavy <= 3400, `weight 3 of 4 gets ~3000 of 4000 (${heavy})`)
})

t.test('removing 1 of 5 servers moves only its own keys', async t => {
  const servers = range(1, 5)
  const removed = servers[2] as Upstream
  const list = keys(5000)
  const before = route(createIpHash(), servers, list)
  const ipHash = createIpHash()
  route(ipHash, servers, list)
  // same instance, new snapshot: the cached ring must not be reused
  const after = route(ipHash, servers.filter(s => s !== removed), list)
  let moved = 0
  let wrong = 0
  for (const key of list) {
    const was = before.get(key)
    const now = after.get(key)
    if (was === removed.id) {
      moved++
      if (now === removed.id) wrong++
    } else if (now !== was) {
      wrong++
    }
  }
  t.equal(wrong, 0, 'every key not on the removed server kept its server; none still goes to it')
  t.ok(moved > 700 && moved < 1300, `about 1/5 of the keys moved (${moved})`)
})

t.test('adding a server moves keys only to it', async t => {
  const servers = range(1, 4)
  const added = server(5)
  const list = keys(5000)
  const ipHash = createIpHash()
  const before = route(ipHash, servers, list)
  const after = route(ipHash, [...servers, added], list)
  let moved = 0
  let wrong = 0
  for (const key of list) {
    if (after.get(key) === before.get(key)) continue
    moved++
    if (after.get(key) !== added.id) wrong++
  }
  t.equal(wrong, 0, 'every moved key went to the new server')
  t.ok(moved > 700 && moved < 1300, `about 1/5 of the keys moved (${moved})`)
})

t.test('a retry goes to where the key would go without the tried server', async t => {
  const servers = range(1, 5)
  const ipHash = createIpHash()
  for (const key of keys(300)) {
    const first = ipHash.pick(servers, { key, tried: [] }) as Upstream
    const retry = ipHash.pick(servers, { key, tried: [first] }) as Upstream
    const without = ipHash.pick(servers.filter(s => s !== first), { key, tried: [] })
    if (retry === first || retry.id !== without?.id) {
      t.fail(`${key}: retry ${retry.id}, first ${first.id}, without ${without?.id}`)
      return
    }
  }
  t.pass('300 retries moved to the next server on the ring')
  t.equal(ipHash.pick(servers, { key: '10.0.0.1', tried: [...servers].reverse() }), undefined, 'all tried')
  const single = [server(9)]
  t.equal(ipHash.pick(single, { key: '10.0.0.1', tried: [] }), single[0])
  t.equal(ipHash.pick(single, { key: '10.0.0.1', tried: single }), undefined, 'the only server tried')
})

t.test('empty list', async t => {
  t.equal(createIpHash().pick([], { key: '10.0.0.1', tried: [] }), undefined)
})

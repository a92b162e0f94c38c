import t from 'tap'
import { request } from 'undici'
import { GATEWAY_PATHS, isGatewayPath } from '../../src/gateway-paths.js'
import { startBackends } from '../helpers/backends.js'
import { startGateway, upstreamsEnv } from '../helpers/gateway.js'

t.test('isGatewayPath: each owned path and what is below it, never a mere prefix', async t => {
  for (const owned of GATEWAY_PATHS) {
    for (const url of [owned, `${owned}/`, `${owned}/x/y`, `${owned}?q=1`, `${owned}#f`]) t.ok(isGatewayPath(url), url)
    for (const url of [`${owned}x`, `${owned}-old`, `/api${owned}`, owned.toUpperCase()]) t.notOk(isGatewayPath(url), url)
  }
  t.notOk(isGatewayPath('/'))
  t.notOk(isGatewayPath('*'))
})

t.test('every route of the OpenAPI document is under a gateway path, so the fast path never swallows one', async t => {
  const gw = await startGateway(t, {})
  const res = await request(`${gw.url}/docs/json`)
  const doc = await res.body.json() as { paths: Record<string, unknown> }
  const paths = Object.keys(doc.paths)
  t.ok(paths.length >= 5, `${paths.length} documented routes`)
  for (const path of paths) t.ok(isGatewayPath(path), path)
})

t.test('the gateway answers its own paths; look-alikes are proxied', async t => {
  const backends = await startBackends(t, 1)
  const gw = await startGateway(t, upstreamsEnv(backends, { RATE_LIMIT: 'off' }))
  for (const path of ['/healthz', '/readyz', '/metrics', '/docs/json', '/admin/servers']) {
    const res = await request(`${gw.url}${path}`)
    await res.body.dump()
    t.equal(res.statusCode, 200, path)
    t.equal(res.headers['x-served-by'], undefined, `${path} is not proxied`)
  }
  for (const path of ['/healthzz', '/administrator', '/docs-old', '/api/metrics']) {
    const res = await request(`${gw.url}${path}`)
    await res.body.dump()
    t.equal(res.headers['x-served-by'], 'b1', `${path} is proxied`)
  }
})

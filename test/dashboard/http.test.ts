import { createHash } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { startGateway } from '../helpers/gateway.js'
import { freePort } from '../helpers/redis.js'

const TOKEN = 'sluice-dashboard-token-0123456789'

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: string }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
}

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

/** The CSP as a map of directive → sources. */
function directives (csp: string): Map<string, string[]> {
  return new Map(csp.split(';').map(d => d.trim().split(/\s+/)).filter(d => d[0] !== '').map(([name, ...sources]) => [name as string, sources]))
}

t.test('GET /admin/dashboard: the page loads without the token, every admin call still needs it', async t => {
  const gw = await startGateway(t, { ADMIN_TOKEN: TOKEN, UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })

  const page = await get(`${gw.adminUrl}/admin/dashboard`)
  t.equal(page.status, 200, 'no token needed for the page')
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8$/)
  t.equal(page.headers['www-authenticate'], undefined, 'no challenge on the page')
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.match(page.body, /^<!doctype html>/i)
  t.match(page.body, /<title>Sluice dashboard<\/title>/)

  // with a wrong token too: the page ignores it (the calls it makes are what the guard checks)
  t.equal((await get(`${gw.adminUrl}/admin/dashboard`, { authorization: 'Bearer wrong' })).status, 200)
  t.equal((await request(`${gw.adminUrl}/admin/dashboard`, { method: 'HEAD' })).statusCode, 200, 'HEAD too')

  // the rest of /admin is still behind the guard
  for (const path of ['/admin/status', '/admin/servers', '/admin/servers/x']) {
    const refused = await get(`${gw.adminUrl}${path}`)
    t.equal(refused.status, 401, `${path} without the token`)
    t.equal(JSON.parse(refused.body).code, 'SLUICE_UNAUTHORIZED')
  }
  const added = await request(`${gw.adminUrl}/admin/servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'http://a.example' }) })
  t.equal(added.statusCode, 401, 'POST /admin/servers without the token')
  await added.body.dump()
  t.equal((await get(`${gw.adminUrl}/admin/status`, { authorization: `Bearer ${TOKEN}` })).status, 200, '/admin/status with the token')
})

t.test('the page is self-contained and its CSP allows exactly its own style and script', async t => {
  const gw = await startGateway(t, { ADMIN_TOKEN: TOKEN, UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  const { headers, body } = await get(`${gw.adminUrl}/admin/dashboard`)

  t.notMatch(body, /https?:\/\//i, 'no http(s) URL anywhere in the page')
  t.notMatch(body, /\/\/cdn/i, 'no CDN')
  t.notMatch(body, /<script[^>]*\ssrc=/i, 'no external script')
  t.notMatch(body, /<link[^>]*rel="?stylesheet/i, 'no external stylesheet')
  t.notMatch(body, /@import|url\(/i, 'no CSS import or url()')
  t.notMatch(body, /\.innerHTML|insertAdjacentHTML|document\.write|outerHTML/, 'no HTML built from strings')
  for (const [, href] of body.matchAll(/\shref="([^"]*)"/g)) t.equal(href, 'data:,', 'the only href is the empty data: favicon')

  const scripts = [...body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(m => m[1] as string)
  const styles = [...body.matchAll(/<style>([\s\S]*?)<\/style>/g)].map(m => m[1] as string)
  t.equal(scripts.length, 1, 'one inline script')
  t.equal(styles.length, 1, 'one inline style')
  t.notMatch(body, /\son[a-z]+="/i, 'no inline event handler attributes (the CSP would block them)')
  t.notMatch(body, /\sstyle="/i, 'no inline style attributes (the CSP would block them)')

  const csp = String(headers['content-security-policy'])
  t.notMatch(csp, /unsafe-inline|unsafe-eval|\*/, 'no unsafe-inline, unsafe-eval or wildcard')
  const d = directives(csp)
  t.same(d.get('default-src'), ["'none'"])
  t.same(d.get('script-src'), [sha256(scripts[0] as string)], 'script-src: the hash of the inline script')
  t.same(d.get('style-src'), [sha256(styles[0] as string)], 'style-src: the hash of the inline style')
  t.same(d.get('connect-src'), ["'self'"], 'calls to this origin only')
  t.same(d.get('img-src'), ['data:'])
  t.same(d.get('frame-ancestors'), ["'none'"])
  t.same(d.get('form-action'), ["'none'"])
  t.same(d.get('base-uri'), ["'none'"])

  // it calls the admin API relative to itself, so it works on ADMIN_PORT and under a path prefix
  t.match(scripts[0], /api\('GET', 'status'\)/)
  t.match(scripts[0], /'servers\/' \+ encodeURIComponent\(/)
  t.match(scripts[0], /sessionStorage/)
})

t.test('without ADMIN_TOKEN the page loads too; /docs/json documents it without security', async t => {
  const gw = await startGateway(t, { UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  t.equal((await get(`${gw.adminUrl}/admin/dashboard`)).status, 200)
  const doc = JSON.parse((await get(`${gw.adminUrl}/docs/json`)).body) as { paths: Record<string, Record<string, { security?: unknown, tags?: string[], responses: Record<string, { content?: Record<string, unknown> }> }>> }
  const op = doc.paths['/admin/dashboard']?.get
  t.ok(op, 'GET /admin/dashboard is documented')
  t.same(op?.tags, ['admin'])
  t.equal(op?.security, undefined, 'no bearer security on the page')
  t.ok(op?.responses['200']?.content?.['text/html'], 'answers text/html')
})

t.test('with ADMIN_PORT the page is served on the admin port only', async t => {
  const port = await freePort()
  const gw = await startGateway(t, { ADMIN_TOKEN: TOKEN, ADMIN_PORT: String(port), UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  t.not(gw.adminUrl, gw.url)
  const page = await get(`${gw.adminUrl}/admin/dashboard`)
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal((await get(`${gw.adminUrl}/admin/status`)).status, 401, 'the admin port still guards the API')
  t.equal((await get(`${gw.url}/admin/dashboard`)).status, 404, 'not on the public port')
})

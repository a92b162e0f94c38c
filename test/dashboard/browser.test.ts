import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startBackends, hitsOn } from '../helpers/backends.js'
import { startGateway, upstreamsEnv, type Gateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'sluice-dashboard-token-0123456789'
const WAIT = 15_000
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url))

interface ServerView { id: string, url: string, name: string, weight: number, enabled: boolean, state: string, totalRequests: number }

async function servers (gw: Gateway, token?: string): Promise<ServerView[]> {
  const res = await request(`${gw.adminUrl}/admin/servers`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  if (res.statusCode !== 200) throw new Error(`GET /admin/servers: ${res.statusCode} ${await res.body.text()}`)
  return ((await res.body.json()) as { servers: ServerView[] }).servers
}

/** `count` proxied GETs, one after the other, as client `client` (the rate limiter's key). */
async function traffic (gw: Gateway, count: number, client: string): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < count; i++) {
    const res = await request(`${gw.url}/?i=${i}`, { headers: { 'x-client': client } })
    await res.body.dump()
    statuses.push(res.statusCode)
  }
  return statuses
}

/** Text of one cell of a server's row in the page, by server id and column. */
async function cellText (page: Page, id: string, col: string): Promise<string> {
  return (await page.locator(`tr[data-id="${id}"] td[data-col="${col}"]`).innerText({ timeout: WAIT })).trim()
}

const count = (text: string): number => Number(text.split('\n')[0]?.replace(/,/g, ''))

/** A page that fails the test on a script error or a CSP violation, and records every URL it asks for. */
async function openPage (t: Test, browser: Browser): Promise<{ page: Page, requested: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } })
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(WAIT)
  page.setDefaultNavigationTimeout(WAIT)
  const requested: string[] = []
  page.on('request', r => { requested.push(r.url()) })
  page.on('pageerror', error => { t.fail(`script error in the page: ${error.message}`) })
  page.on('console', message => {
    if (/content security policy|refused to/i.test(message.text())) t.fail(`CSP violation: ${message.text()}`)
  })
  return { page, requested }
}

// on a developer's machine without chromium the test is skipped; under CI (which installs it) it must run
t.test('the dashboard in a real browser', { skip: existsSync(CHROMIUM) || process.env.CI === 'true' ? false : `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)` }, async t => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // launch() gives every run a fresh temporary user-data dir of its own
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: WAIT
  })
  t.teardown(() => browser.close())

  t.test('with ADMIN_TOKEN: asks for the token, then shows and changes the pool', async t => {
    const backends = await startBackends(t, 3)
    const [, b2, b3] = backends as [unknown, { url: string }, { url: string }]
    const gw = await startGateway(t, upstreamsEnv(backends.slice(0, 2), {
      ADMIN_TOKEN: TOKEN, RATE_LIMIT_MAX: '40', RATE_LIMIT_KEY: 'header:x-client'
    }))
    const { page, requested } = await openPage(t, browser)

    const response = await page.goto(`${gw.url}/admin/dashboard`)
    t.equal(response?.status(), 200)
    t.equal(await page.title(), 'Sluice dashboard')

    // the first call answers 401: the page asks for the token
    const tokenInput = page.getByLabel('Admin token')
    await tokenInput.waitFor({ state: 'visible' })
    t.equal(await page.locator('#server-rows tr').count(), 0, 'nothing shown before the token')
    await tokenInput.fill('not-the-token')
    await page.getByRole('button', { name: 'Connect' }).click()
    await page.locator('#auth-error', { hasText: 'That token was refused' }).waitFor()
    t.pass('a wrong token is refused and asked again')
    await tokenInput.fill(TOKEN)
    await page.getByRole('button', { name: 'Connect' }).click()
    await tokenInput.waitFor({ state: 'hidden' })

    // the 2 seeded servers
    const seeded = await servers(gw, TOKEN)
    t.equal(seeded.length, 2)
    for (const s of seeded) {
      await page.locator(`tr[data-id="${s.id}"] .badge`, { hasText: 'healthy' }).waitFor()
      t.equal(await cellText(page, s.id, 'server'), `${s.name}\n${s.url}`, `${s.name} is listed`)
    }
    t.equal(await page.locator('#server-rows tr').count(), 2)
    await page.locator('#conn-text', { hasText: 'Live' }).waitFor()
    t.equal(await page.evaluate('sessionStorage.getItem("sluice.adminToken")'), TOKEN, 'the token is kept in sessionStorage')

    // the API's refusals are shown as they come
    const url = page.getByLabel('URL', { exact: true })
    const addButton = page.getByRole('button', { name: 'Add server' })
    await url.fill('http://user:secret@127.0.0.1:9')
    await addButton.click()
    await page.locator('#add-error', { hasText: 'body/url must not contain credentials' }).waitFor()
    t.pass('400: the API\'s message')
    await url.fill(b2.url)
    await addButton.click()
    await page.locator('#add-error', { hasText: 'is already in the pool' }).waitFor()
    t.pass('409: the API\'s message')
    await url.fill(b3.url)
    await page.getByLabel('Weight', { exact: true }).fill('0')
    await addButton.click()
    await page.locator('#add-error', { hasText: 'body/weight must be >= 1' }).waitFor()
    t.pass('400 on the weight')
    t.equal((await servers(gw, TOKEN)).length, 2, 'nothing was added')

    // add the third backend
    await page.getByLabel('Weight', { exact: true }).fill('2')
    await page.getByLabel('Name', { exact: true }).fill('b3')
    await addButton.click()
    await page.locator('#notice', { hasText: 'Added b3' }).waitFor()
    t.equal(await url.inputValue(), '', 'the form is cleared')
    t.equal(await page.locator('#add-error').innerText(), '', 'and its error too')
    const third = (await servers(gw, TOKEN)).find(s => s.url === b3.url)
    t.match(third, { name: 'b3', weight: 2, enabled: true }, 'added through the API')
    const id = third?.id as string
    await page.locator(`tr[data-id="${id}"] .badge`, { hasText: 'healthy' }).waitFor()
    t.equal(await page.locator('#server-rows tr').count(), 3, 'the table shows it')
    t.equal(await cellText(page, id, 'weight'), '2\nSet', 'with its weight')

    // it takes traffic, and the page shows it
    for (let round = 0; round < 4; round++) {
      t.same(new Set(await traffic(gw, 8, 'alice')), new Set([200]))
      await page.waitForTimeout(400)
    }
    await waitFor(async () => count(await cellText(page, id, 'requests')) > 0, 'b3 requests in the page', WAIT, 100)
    await waitFor(async () => /^\d+ %$/.test(await cellText(page, id, 'share')), 'b3 share in the page', WAIT, 100)
    const shown = count(await cellText(page, id, 'requests'))
    const share = Number((await cellText(page, id, 'share')).replace(' %', ''))
    t.ok(share > 0, `b3 has a share of the traffic (${share} %)`)
    t.ok(shown > 0, `b3 answered requests (${shown} in the page)`)
    t.ok((hitsOn(backends).b3 ?? 0) > 0, 'b3 really answered')
    t.ok(((await servers(gw, TOKEN)).find(s => s.id === id)?.totalRequests ?? 0) > 0, 'and the API counts them')

    // some 429s for the chart, from another client
    const flood = await traffic(gw, 55, 'flood')
    t.ok(flood.includes(429), 'the limiter refused some')
    await page.locator('#r429', { hasText: /^[1-9]/ }).waitFor()
    t.pass('the page counts the 429s')

    // re-weight the second server: a refused weight shows the API's message, a good one applies
    // (a server seeded from UPSTREAMS is named after its host:port)
    const { id: b2id, name: b2name } = seeded.find(s => s.url === b2.url) as ServerView
    const newWeight = page.getByLabel(`New weight for ${b2name}`, { exact: true })
    const setWeight = page.getByRole('button', { name: `Set weight of ${b2name}`, exact: true })
    await newWeight.fill('1001')
    await setWeight.click()
    await page.locator('#notice', { hasText: `Could not set the weight of ${b2name}: body/weight must be <= 1000` }).waitFor()
    t.pass('the API\'s message')
    await newWeight.fill('5')
    await setWeight.click()
    await page.locator('#notice', { hasText: `Weight of ${b2name} is now 5` }).waitFor()
    t.equal((await servers(gw, TOKEN)).find(s => s.id === b2id)?.weight, 5, 're-weighted through the API')
    await waitFor(async () => (await cellText(page, b2id, 'weight')).startsWith('5'), 'the new weight in the page', WAIT, 100)

    // disable b3: it gets nothing new
    await page.getByRole('button', { name: 'Disable b3', exact: true }).click()
    await page.getByRole('button', { name: 'Enable b3', exact: true }).waitFor()
    t.equal((await servers(gw, TOKEN)).find(s => s.id === id)?.enabled, false, 'disabled through the API')
    await waitFor(async () => await cellText(page, id, 'enabled') === 'no', 'b3 shown disabled', WAIT, 100)
    const before = hitsOn(backends).b3
    await traffic(gw, 12, 'bob')
    t.equal(hitsOn(backends).b3, before, 'a disabled server gets no new requests')
    await page.waitForTimeout(1500)

    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true })
    t.ok(existsSync(`${ARTIFACTS}dashboard.png`), 'screenshot saved in test-artifacts/dashboard.png')

    // enable it again, then drain it (two clicks: drain, confirm)
    await page.getByRole('button', { name: 'Enable b3', exact: true }).click()
    await page.getByRole('button', { name: 'Disable b3', exact: true }).waitFor()
    t.equal((await servers(gw, TOKEN)).find(s => s.id === id)?.enabled, true, 'enabled again')
    await page.getByRole('button', { name: 'Drain b3', exact: true }).click()
    t.equal((await servers(gw, TOKEN)).length, 3, 'one click only arms the button')
    await page.getByRole('button', { name: 'Confirm drain of b3', exact: true }).click()
    await page.locator('#notice', { hasText: 'b3 is draining' }).waitFor()
    await page.locator(`tr[data-id="${id}"]`).waitFor({ state: 'detached' })
    t.equal(await page.locator('#server-rows tr').count(), 2, 'gone from the table once drained')
    t.notOk((await servers(gw, TOKEN)).some(s => s.id === id), 'and from the pool')

    // the page asked for nothing but itself and the admin API
    const origin = new URL(gw.url).origin
    const elsewhere = requested.filter(u => !u.startsWith(`${origin}/admin/`))
    t.same(elsewhere, [], 'no request outside /admin (no CDN, no favicon through the proxy)')
    t.ok(requested.some(u => u === `${origin}/admin/status`), 'it polls /admin/status')
    t.equal(backends.reduce((n, b) => n + (b.hits.get('/favicon.ico') ?? 0), 0), 0, 'no favicon request reached an upstream')
  })

  t.test('without ADMIN_TOKEN: loopback needs no token, none is asked', async t => {
    const backends = await startBackends(t, 2)
    const gw = await startGateway(t, upstreamsEnv(backends))
    const { page } = await openPage(t, browser)
    await page.goto(`${gw.url}/admin/dashboard`)
    await page.locator('#server-rows tr').nth(1).waitFor()
    t.equal(await page.locator('#server-rows tr').count(), 2, 'both servers listed')
    t.equal(await page.getByLabel('Admin token').isVisible(), false, 'no token form')
    await page.locator('#conn-text', { hasText: 'Live' }).waitFor()
    t.pass('live')
  })
})

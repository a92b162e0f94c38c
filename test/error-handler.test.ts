import t from 'tap'
import { request } from 'undici'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/index.js'

t.test('error bodies: unexpected errors hide their message, client errors keep theirs', async t => {
  const result = loadConfig({ LOG_LEVEL: 'silent' }, '/nonexistent')
  if (!result.ok) throw new Error(result.problems.join())
  const app = await buildApp(result.config)
  t.teardown(() => app.close())
  // routes added before the app is ready, as any later plugin of the gateway could
  app.get('/healthz/boom', async () => { throw new Error('database password is hunter2') })
  app.post('/healthz/json', async (request) => request.body)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  const boom = await request(`${url}/healthz/boom`)
  t.equal(boom.statusCode, 500)
  t.same(await boom.body.json(), { statusCode: 500, error: 'Internal Server Error', code: 'SLUICE_INTERNAL', message: 'An internal error occurred' })

  const bad = await request(`${url}/healthz/json`, { method: 'POST', body: '{"a":', headers: { 'content-type': 'application/json' } })
  t.equal(bad.statusCode, 400)
  const body = await bad.body.json() as Record<string, unknown>
  t.equal(body.error, 'Bad Request')
  t.equal(body.code, 'FST_ERR_CTP_INVALID_JSON_BODY')
  t.type(body.message, 'string')
})

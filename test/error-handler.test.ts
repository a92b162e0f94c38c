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
  t.equal(body.code, 'SLUICE_BAD_REQUEST', 'Fastify\'s own codes are answered under Sluice\'s')
  t.type(body.message, 'string')
})

t.test('Fastify\'s client errors are answered with Sluice\'s codes', async t => {
  const result = loadConfig({ LOG_LEVEL: 'silent' }, '/nonexistent')
  if (!result.ok) throw new Error(result.problems.join())
  const app = await buildApp(result.config)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  // past find-my-way's 100-character parameter limit: /admin/* answers it, not a bare FST_ERR_MAX_PARAM_LENGTH 414
  const long = await request(`${url}/admin/servers/${'x'.repeat(150)}`)
  t.equal(long.statusCode, 404)
  t.match(await long.body.json(), { statusCode: 404, error: 'Not Found', code: 'SLUICE_NOT_FOUND' })
  const noBody = await request(`${url}/admin/servers`, { method: 'POST', headers: { 'content-type': 'application/json' } })
  t.equal(noBody.statusCode, 400)
  t.match(await noBody.body.json(), { code: 'SLUICE_BAD_REQUEST' })
  const noType = await request(`${url}/admin/servers`, { method: 'POST', body: '{}' })
  t.equal(noType.statusCode, 415)
  t.match(await noType.body.json(), { code: 'SLUICE_UNSUPPORTED_MEDIA_TYPE' })
})

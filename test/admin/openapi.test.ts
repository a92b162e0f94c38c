import t from 'tap'
import { request } from 'undici'
import SwaggerParser from '@apidevtools/swagger-parser'
import { startGateway } from '../helpers/gateway.js'

interface Operation {
  tags?: string[]
  summary?: string
  description?: string
  security?: unknown[]
  parameters?: Array<{ in: string, name: string, required?: boolean }>
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> }
  responses: Record<string, { description: string, content?: Record<string, { schema: Record<string, unknown> }> }>
}

interface Document {
  openapi: string
  paths: Record<string, Record<string, Operation>>
  components?: { securitySchemes?: Record<string, unknown> }
}

const ADMIN_OPERATIONS: Array<[string, string, string[]]> = [
  ['/admin/servers', 'get', ['200', '401', '403']],
  ['/admin/servers', 'post', ['201', '400', '401', '403', '409', '413', '415', '503']],
  ['/admin/servers/{id}', 'get', ['200', '401', '403', '404']],
  ['/admin/servers/{id}', 'patch', ['200', '400', '401', '403', '404', '413', '415', '503']],
  ['/admin/servers/{id}', 'delete', ['202', '401', '403', '404', '503']]
]
const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']
const SERVER_KEYS = ['addedAt', 'enabled', 'failedRequests', 'id', 'inFlight', 'lastCheck', 'name', 'state', 'totalRequests', 'url', 'weight']

t.test('/docs/json is a valid OpenAPI 3 document of the gateway\'s own routes', async t => {
  const gw = await startGateway(t, { UPSTREAMS: 'http://127.0.0.1:9', HEALTH_CHECK_INTERVAL: '0' })
  const res = await request(`${gw.adminUrl}/docs/json`)
  t.equal(res.statusCode, 200)
  const doc = await res.body.json() as Document
  t.match(doc.openapi, /^3\./)
  // validate() dereferences in place: give it a copy
  await t.resolves(SwaggerParser.validate(structuredClone(doc) as never), 'valid OpenAPI')

  const paths = Object.keys(doc.paths)
  for (const path of ['/admin/servers', '/admin/servers/{id}', '/admin/status', '/healthz', '/readyz', '/metrics']) t.ok(paths.includes(path), `documents ${path}`)
  t.ok(doc.paths['/healthz']?.get, 'GET /healthz')
  t.ok(doc.paths['/readyz']?.get, 'GET /readyz')
  t.ok(doc.paths['/admin/status']?.get, 'GET /admin/status')
  t.ok(doc.paths['/metrics']?.get, 'GET /metrics')
  for (const path of paths) {
    t.notOk(path === '/' || path.includes('*'), `${path} is not a proxy catch-all`)
    t.ok(path.startsWith('/admin') || ['/healthz', '/readyz', '/metrics'].includes(path), `${path} is one of the gateway's own routes`)
  }

  t.same(doc.components?.securitySchemes?.bearer, { type: 'http', scheme: 'bearer' })
  for (const [path, method, statuses] of ADMIN_OPERATIONS) {
    const op = doc.paths[path]?.[method]
    if (op === undefined) {
      t.fail(`${method.toUpperCase()} ${path} is missing`)
      continue
    }
    const name = `${method.toUpperCase()} ${path}`
    t.same(op.tags, ['admin'], `${name}: tag`)
    t.same(op.security, [{ bearer: [] }], `${name}: bearer security`)
    t.ok(op.summary !== undefined && op.summary.length > 0, `${name}: summary`)
    t.ok(op.description !== undefined && op.description.length > 0, `${name}: description`)
    t.same(Object.keys(op.responses).sort(), statuses, `${name}: responses`)
    for (const status of statuses) {
      const schema = op.responses[status]?.content?.['application/json']?.schema as { properties: Record<string, unknown> }
      t.not(op.responses[status]?.description, 'Default Response', `${name} ${status}: described`)
      const keys = Object.keys(schema.properties).sort()
      if (status.startsWith('2')) {
        t.same(keys, path === '/admin/servers' && method === 'get' ? ['servers'] : SERVER_KEYS, `${name} ${status}: Server`)
      } else {
        t.same(keys, ERROR_KEYS, `${name} ${status}: error body`)
      }
    }
    if (path.endsWith('{id}')) t.match(op.parameters, [{ in: 'path', name: 'id', required: true }], `${name}: id parameter`)
  }

  const post = doc.paths['/admin/servers']?.post?.requestBody?.content['application/json']?.schema
  t.match(post, {
    type: 'object',
    required: ['url'],
    additionalProperties: false,
    properties: { url: { type: 'string' }, weight: { type: 'integer', minimum: 1, maximum: 1000 }, name: { type: 'string', minLength: 1, maxLength: 100 } }
  }, 'POST body: the schema the route validates with')
  t.same(Object.keys(post?.properties as object).sort(), ['name', 'url', 'weight'])
  const patch = doc.paths['/admin/servers/{id}']?.patch?.requestBody?.content['application/json']?.schema
  t.match(patch, {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: { weight: { type: 'integer', minimum: 1, maximum: 1000 }, enabled: { type: 'boolean' } }
  }, 'PATCH body')
  t.same(Object.keys(patch?.properties as object).sort(), ['enabled', 'weight'])
  const server = doc.paths['/admin/servers/{id}']?.get?.responses['200']?.content?.['application/json']?.schema as { properties: Record<string, Record<string, unknown>> }
  t.match(server.properties.state, { enum: ['unknown', 'healthy', 'unhealthy', 'draining'] })
  t.match(server.properties.lastCheck, { nullable: true })
})

t.test('the document agrees with what the routes do', async t => {
  const gw = await startGateway(t, { HEALTH_CHECK_INTERVAL: '0' })
  const doc = await (await request(`${gw.adminUrl}/docs/json`)).body.json() as Document
  const properties = doc.paths['/admin/servers']?.post?.requestBody?.content['application/json']?.schema.properties as Record<string, { maximum: number }>
  const maximum = properties.weight!.maximum
  const over = await request(`${gw.adminUrl}/admin/servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'http://a.example', weight: maximum + 1 }) })
  t.equal(over.statusCode, 400, 'the documented maximum is enforced')
  await over.body.dump()
  const at = await request(`${gw.adminUrl}/admin/servers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: 'http://a.example', weight: maximum }) })
  t.equal(at.statusCode, 201, 'and is allowed')
  const created = await at.body.json() as Record<string, unknown>
  t.same(Object.keys(created).sort(), SERVER_KEYS)
})

t.test('/docs serves the Swagger UI', async t => {
  const gw = await startGateway(t, {})
  const res = await request(`${gw.adminUrl}/docs`)
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  const html = await res.body.text()
  t.match(html, /swagger-ui/i)
  t.match(html, /<html/i)
})

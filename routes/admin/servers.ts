import { TypeBoxValidatorCompiler, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyError, FastifyRequest, FastifySchemaValidationError, FastifyServerOptions } from 'fastify'
import type { Config } from '../../src/config/index.js'
import { sendError } from '../../src/error-handler.js'
import {
  BadRequestError, PayloadTooLargeError, ServerExistsError, ServerNotFoundError, UnsupportedMediaTypeError
} from '../../src/errors.js'
import { normaliseOrigin } from '../../src/pool/origin.js'
import type { ServerSpec } from '../../src/pool/pool.js'
import {
  ADMIN_BODY_LIMIT, CreateServerBody, ServerIdParams, ServerListSchema, UpdateServerBody, serverResponse,
  errorResponses, guardErrors
} from '../../src/admin/schemas.js'

export interface ServersRoutesOptions {
  config: Config
}

type SchemaErrorDataVar = Parameters<NonNullable<FastifyServerOptions['schemaErrorFormatter']>>[1]

const security = [{ bearer: [] }]
const tags = ['admin']
const { 400: badRequest, 404: notFound, 409: conflict, 413: tooLarge, 415: unsupported, 503: unavailable } = errorResponses

/**
 * Runtime pool administration (SPEC §5). Reads come from the pool; every change goes through
 * `fastify.poolAdmin`, so it reaches the shared pool when there is one. Bodies are validated by
 * TypeBox's compiler (strict: no type coercion, unknown fields refused, unlike Fastify's Ajv
 * defaults), and every failure leaves as a SLUICE_* error body naming the failing field.
 */
const serversRoutes: FastifyPluginAsyncTypebox<ServersRoutesOptions> = async (fastify) => {
  fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
  fastify.setSchemaErrorFormatter(formatValidationErrors)
  fastify.setErrorHandler((error: FastifyError, request, reply) => { sendError(adminError(error, request), request, reply) })
  // JSON only: a text/plain body is a 415 here, not a string that fails the schema
  fastify.removeContentTypeParser('text/plain')

  const { pool } = fastify.balancer
  const location = (id: string): string => `${fastify.prefix}/servers/${encodeURIComponent(id)}`

  fastify.get('/servers', {
    schema: {
      tags,
      security,
      operationId: 'listServers',
      summary: 'List the servers in the pool',
      description: 'Every server in the pool, draining ones included, with its state and counters.',
      response: { 200: ServerListSchema, ...guardErrors }
    }
  }, async () => ({ servers: pool.list().map(s => s.toJSON()) }))

  fastify.post('/servers', {
    bodyLimit: ADMIN_BODY_LIMIT,
    schema: {
      tags,
      security,
      operationId: 'addServer',
      summary: 'Add a server to the pool',
      description: 'Adds an http(s) origin. It is health-checked at once and takes traffic once its first check passes ' +
        '(at once when active checks are off). URLs are normalised, so `http://H:80/` and `http://h` are the same server (409).',
      body: CreateServerBody,
      response: { 201: serverResponse('The server, added (state `unknown` until its first health check)'), 400: badRequest, ...guardErrors, 409: conflict, 413: tooLarge, 415: unsupported, 503: unavailable }
    }
  }, async (request, reply) => {
    const { url, weight, name } = request.body
    const origin = normaliseOrigin(url)
    if (!origin.ok) throw new BadRequestError(`body/url ${origin.message}`)
    const spec: ServerSpec = { url: origin.origin }
    if (weight !== undefined) spec.weight = weight
    if (name !== undefined) spec.name = name
    const { server, created } = await fastify.poolAdmin.add(spec)
    if (!created) throw new ServerExistsError(server.url, server.id)
    return reply.code(201).header('location', location(server.id)).send(server.toJSON())
  })

  fastify.get('/servers/:id', {
    schema: {
      tags,
      security,
      operationId: 'getServer',
      summary: 'Get one server',
      description: 'One server by id; a removed server is still found while it is `draining`, then 404.',
      params: ServerIdParams,
      response: { 200: serverResponse('The server'), ...guardErrors, 404: notFound }
    }
  }, async (request) => {
    const server = pool.get(request.params.id)
    if (server === undefined) throw new ServerNotFoundError(request.params.id)
    return server.toJSON()
  })

  fastify.patch('/servers/:id', {
    bodyLimit: ADMIN_BODY_LIMIT,
    schema: {
      tags,
      security,
      operationId: 'updateServer',
      summary: 'Change a server\'s weight or enable/disable it',
      description: 'At least one of `weight` and `enabled`. A disabled server stays in the pool (and is still health-checked) ' +
        'but gets no new requests; a new weight applies to the next pick.',
      params: ServerIdParams,
      body: UpdateServerBody,
      response: { 200: serverResponse('The server, changed'), 400: badRequest, ...guardErrors, 404: notFound, 413: tooLarge, 415: unsupported, 503: unavailable }
    },
    schemaErrorFormatter: (errors, dataVar) => formatValidationErrors(errors, dataVar, Object.keys(UpdateServerBody.properties))
  }, async (request) => {
    const server = await fastify.poolAdmin.update(request.params.id, request.body)
    if (server === undefined) throw new ServerNotFoundError(request.params.id)
    return server.toJSON()
  })

  fastify.delete('/servers/:id', {
    schema: {
      tags,
      security,
      operationId: 'removeServer',
      summary: 'Remove a server (drain)',
      description: 'The server stops getting new requests at once; its in-flight requests finish (for at most DRAIN_TIMEOUT), ' +
        'then it leaves the pool. Answers 202 with the server in state `draining`.',
      params: ServerIdParams,
      response: { 202: serverResponse('The server, now `draining`'), ...guardErrors, 404: notFound, 503: unavailable }
    }
  }, async (request, reply) => {
    const server = await fastify.poolAdmin.remove(request.params.id)
    if (server === undefined) throw new ServerNotFoundError(request.params.id)
    return reply.code(202).send(server.toJSON())
  })
}

const MAX_NAME = 64
const clip = (text: string): string => text.length > MAX_NAME ? `${text.slice(0, MAX_NAME)}…` : text

/**
 * Schema errors as one message naming each failing field in Fastify's style (`body/weight must be
 * <= 1000`), with the missing and unknown properties named too (TypeBox reports those on the parent).
 */
export function formatValidationErrors (errors: FastifySchemaValidationError[], dataVar: SchemaErrorDataVar, properties: string[] = []): Error {
  const messages = new Set<string>()
  for (const error of errors) {
    const at = `${dataVar}${error.instancePath}`
    const params = error.params as Record<string, unknown>
    if (error.keyword === 'required' && Array.isArray(params.requiredProperties)) {
      for (const name of params.requiredProperties) messages.add(`${at}/${clip(String(name))} is required`)
    } else if (error.keyword === 'additionalProperties' && Array.isArray(params.additionalProperties)) {
      for (const name of params.additionalProperties) messages.add(`${at}/${clip(String(name))} is not allowed (unknown property)`)
    } else if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) {
      // the same unknown property, reported again by the parent's additionalProperties error
    } else if (error.keyword === 'minProperties' && dataVar === 'body') {
      messages.add(`${at} must contain at least one of: ${properties.join(', ')}`)
    } else {
      messages.add(`${at} ${error.message ?? 'is invalid'}`)
    }
  }
  return new BadRequestError([...messages].join('; ') || `${dataVar} is invalid`)
}

/** Fastify's own request errors (body parsing, size, media type) in the SLUICE_* shape. */
export function adminError (error: FastifyError, request: FastifyRequest): FastifyError {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new BadRequestError('body is not valid JSON')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequestError('body must not be empty with content-type application/json')
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PayloadTooLargeError(ADMIN_BODY_LIMIT)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(JSON.stringify(clip(request.headers['content-type'] ?? '(none)')))
  }
  // any other request error Fastify raises before the handler (e.g. a malformed parameter)
  if (error.code?.startsWith('FST_') === true && error.statusCode === 400) return new BadRequestError(error.message)
  return error
}

export default serversRoutes

import { Type, type Static } from 'typebox'

// The admin API's schemas (SPEC §5). The same objects validate requests (TypeBox's compiler, see
// routes/admin/servers.ts), serialise responses and feed the OpenAPI document at /docs/json.

/** Largest admin request body, in bytes: a server spec is a few hundred bytes at most. */
export const ADMIN_BODY_LIMIT = 16 * 1024

const MAX_WEIGHT = 1000

export const Weight = Type.Integer({
  minimum: 1,
  maximum: MAX_WEIGHT,
  description: `Share of traffic under weighted strategies, 1..${MAX_WEIGHT}`,
  examples: [1]
})

export const CheckResultSchema = Type.Object({
  at: Type.String({ format: 'date-time', description: 'when the check finished (ISO 8601)' }),
  ok: Type.Boolean({ description: 'whether the check passed (2xx/3xx)' }),
  status: Type.Union([Type.Integer(), Type.Null()], { description: 'HTTP status of the check, null when no response came' }),
  latencyMs: Type.Number({ description: 'duration of the check in milliseconds' })
}, { additionalProperties: false })

const serverProperties = {
  id: Type.String({ description: 'stable id derived from the normalised URL', examples: ['3f2a9c0d1b7e'] }),
  url: Type.String({ description: 'normalised origin (scheme and host lower-cased, default port dropped)', examples: ['http://10.0.0.5:3000'] }),
  name: Type.String({ description: 'display name (defaults to host:port)' }),
  weight: Weight,
  enabled: Type.Boolean({ description: 'false: kept in the pool (and health-checked) but never picked' }),
  state: Type.Enum(['unknown', 'healthy', 'unhealthy', 'draining'], {
    description: 'unknown until the first health check; draining after DELETE until its in-flight requests end'
  }),
  inFlight: Type.Integer({ minimum: 0, description: 'requests in flight on this server now' }),
  totalRequests: Type.Integer({ minimum: 0, description: 'requests sent to this server' }),
  failedRequests: Type.Integer({ minimum: 0, description: 'requests that failed on this server' }),
  lastCheck: Type.Union([CheckResultSchema, Type.Null()], { description: 'the latest active health check, null before the first' }),
  addedAt: Type.String({ format: 'date-time', description: 'when the server joined the pool (ISO 8601)' })
}

/** SPEC §5 `Server`, as `Upstream.toJSON()` gives it; `description` becomes the response's in OpenAPI. */
export const serverResponse = (description: string) => Type.Object(serverProperties, { additionalProperties: false, title: 'Server', description })

export const ServerSchema = serverResponse('A server of the pool')

export const ServerListSchema = Type.Object({
  servers: Type.Array(ServerSchema, { description: 'every server, draining ones included' })
}, { additionalProperties: false, description: 'The pool' })

export const ServerIdParams = Type.Object({
  id: Type.String({ description: 'the server id (see Server.id)' })
}, { additionalProperties: false })

export const CreateServerBody = Type.Object({
  url: Type.String({
    minLength: 1,
    maxLength: 2048,
    description: 'http:// or https:// origin: no path (a lone trailing "/" is allowed), query, fragment or credentials',
    examples: ['http://10.0.0.5:3000']
  }),
  weight: Type.Optional(Weight),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'display name, 1..100 characters (default host:port)' }))
}, { additionalProperties: false })

export const UpdateServerBody = Type.Object({
  weight: Type.Optional(Weight),
  enabled: Type.Optional(Type.Boolean({ description: 'false stops new requests to it; it stays in the pool' }))
}, { additionalProperties: false, minProperties: 1, description: 'at least one of weight, enabled' })

/** Every error body: `{ statusCode, error, code, message }` (docs/errors.md). */
const errorBody = (description: string) => Type.Object({
  statusCode: Type.Integer({ description: 'the HTTP status, repeated' }),
  error: Type.String({ description: 'the status\'s reason phrase' }),
  code: Type.String({ description: 'a stable SLUICE_* code (docs/errors.md)', examples: ['SLUICE_BAD_REQUEST'] }),
  message: Type.String({ description: 'what went wrong; for 400, names the failing field' })
}, { additionalProperties: false, description })

export const ErrorSchema = errorBody('An error')

export type CreateServer = Static<typeof CreateServerBody>
export type UpdateServer = Static<typeof UpdateServerBody>

/** Error responses every admin route can give (the guard runs before every one). */
export const guardErrors = {
  401: errorBody('SLUICE_UNAUTHORIZED: ADMIN_TOKEN is set and the bearer token is missing or wrong'),
  403: errorBody('SLUICE_FORBIDDEN: no ADMIN_TOKEN is set and the caller is not loopback')
}

export const errorResponses = {
  400: errorBody('SLUICE_BAD_REQUEST: the body, a parameter or the URL is invalid; the message names the field'),
  404: errorBody('SLUICE_SERVER_NOT_FOUND: no server with this id is in the pool'),
  409: errorBody('SLUICE_SERVER_EXISTS: the (normalised) URL is already in the pool'),
  413: errorBody('SLUICE_PAYLOAD_TOO_LARGE: the body is larger than 16 KiB'),
  415: errorBody('SLUICE_UNSUPPORTED_MEDIA_TYPE: the body is not application/json'),
  503: errorBody('SLUICE_POOL_UNAVAILABLE: the shared pool (Redis) cannot be changed now')
}

import createError from '@fastify/error'

// Every error Sluice answers with or stops on. Codes are stable and documented in docs/errors.md
// (a test fails when one is missing there). Transport errors are kept as `cause`.

export const NoUpstreamError = createError(
  'SLUICE_NO_UPSTREAM', 'No upstream server is available', 503)

export const UpstreamUnreachableError = createError(
  'SLUICE_UPSTREAM_UNREACHABLE', 'The upstream server could not be reached (%s)', 502)

export const UpstreamTimeoutError = createError(
  'SLUICE_UPSTREAM_TIMEOUT', 'The upstream server sent no response headers within %d ms', 504)

export const RateLimitedError = createError(
  'SLUICE_RATE_LIMITED', 'Rate limit exceeded: retry in %d s', 429)

export const LimiterUnavailableError = createError(
  'SLUICE_LIMITER_UNAVAILABLE', 'The rate limiter is unavailable (Redis unreachable) and RATE_LIMIT_ON_REDIS_ERROR is deny', 503)

export const AdminUnauthorizedError = createError(
  'SLUICE_UNAUTHORIZED', 'Admin calls need Authorization: Bearer <ADMIN_TOKEN>', 401)

export const AdminForbiddenError = createError(
  'SLUICE_FORBIDDEN', 'No ADMIN_TOKEN is configured: admin calls are accepted from loopback only', 403)

export const RouteNotFoundError = createError(
  'SLUICE_NOT_FOUND', 'Route %s %s not found', 404)

export const ServerNotFoundError = createError(
  'SLUICE_SERVER_NOT_FOUND', 'No server with id "%s" is in the pool', 404)

export const ServerExistsError = createError(
  'SLUICE_SERVER_EXISTS', 'The server %s is already in the pool (id %s)', 409)

export const PoolUnavailableError = createError(
  'SLUICE_POOL_UNAVAILABLE', 'The shared pool cannot be changed while Redis is unreachable; retry when it is back', 503)

export const InvalidUpstreamError = createError(
  'SLUICE_INVALID_UPSTREAM', 'Invalid upstream URL "%s": %s', 400)

export const BadRequestError = createError(
  'SLUICE_BAD_REQUEST', '%s', 400)

export const PayloadTooLargeError = createError(
  'SLUICE_PAYLOAD_TOO_LARGE', 'The request body is larger than %d bytes', 413)

export const UnsupportedMediaTypeError = createError(
  'SLUICE_UNSUPPORTED_MEDIA_TYPE', 'Unsupported content type %s: send application/json', 415)

export const RequestTimeoutError = createError(
  'SLUICE_REQUEST_TIMEOUT', 'The request was not received in time (HEADERS_TIMEOUT or REQUEST_TIMEOUT)', 408)

export const HeadersTooLargeError = createError(
  'SLUICE_HEADERS_TOO_LARGE', 'The request line and headers are larger than MAX_HEADER_SIZE', 431)

export const ConfigError = createError(
  'SLUICE_CONFIG_INVALID', 'Invalid configuration:\n%s', 500)

/** All codes, for the documentation check. */
export const ERROR_CODES = [
  NoUpstreamError, UpstreamUnreachableError, UpstreamTimeoutError, RateLimitedError, LimiterUnavailableError,
  AdminUnauthorizedError, AdminForbiddenError, RouteNotFoundError, ServerNotFoundError, ServerExistsError, PoolUnavailableError,
  InvalidUpstreamError, BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError, RequestTimeoutError,
  HeadersTooLargeError, ConfigError
].map(E => new E().code)

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

export const InvalidUpstreamError = createError(
  'SLUICE_INVALID_UPSTREAM', 'Invalid upstream URL "%s": %s', 400)

export const ConfigError = createError(
  'SLUICE_CONFIG_INVALID', 'Invalid configuration:\n%s', 500)

/** All codes, for the documentation check. */
export const ERROR_CODES = [
  NoUpstreamError, UpstreamUnreachableError, UpstreamTimeoutError, RateLimitedError, LimiterUnavailableError,
  InvalidUpstreamError, ConfigError
].map(E => new E().code)

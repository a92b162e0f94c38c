import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'

/**
 * The stable code a client error from Fastify or a plugin (FST_ERR_BAD_URL, FST_ERR_CTP_..., or none)
 * is answered with: by status, so the codes a client sees are all Sluice's and all in docs/errors.md.
 */
const CLIENT_ERROR_CODES: Readonly<Record<number, string>> = {
  404: 'SLUICE_NOT_FOUND',
  408: 'SLUICE_REQUEST_TIMEOUT',
  413: 'SLUICE_PAYLOAD_TOO_LARGE',
  415: 'SLUICE_UNSUPPORTED_MEDIA_TYPE',
  431: 'SLUICE_HEADERS_TOO_LARGE'
}

function publicCode (error: FastifyError, statusCode: number): string {
  if (error.code?.startsWith('SLUICE_') === true) return error.code
  if (statusCode >= 500) return 'SLUICE_INTERNAL'
  return CLIENT_ERROR_CODES[statusCode] ?? 'SLUICE_BAD_REQUEST'
}

/**
 * Every error leaves as `{ statusCode, error, code, message }`. Sluice's own errors are expected
 * outcomes (an upstream down, a client over budget) and are logged without a stack; anything else
 * is a bug, logged in full, and its message is not shown to the client.
 */
export function sendError (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const statusCode = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  const expected = statusCode < 500 || error.code?.startsWith('SLUICE_') === true
  if (!expected) request.log.error({ err: error }, 'unhandled error')
  reply.code(statusCode).send({
    statusCode,
    error: STATUS_CODES[statusCode] ?? 'Error',
    code: publicCode(error, statusCode),
    message: expected ? error.message : 'An internal error occurred'
  })
}

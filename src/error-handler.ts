import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'

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
    code: error.code ?? (statusCode === 500 ? 'SLUICE_INTERNAL' : 'SLUICE_ERROR'),
    message: expected ? error.message : 'An internal error occurred'
  })
}

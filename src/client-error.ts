import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { BadRequestError, HeadersTooLargeError, RequestTimeoutError } from './errors.js'

/** Why Node's HTTP parser gave up on a client before any route saw it (a label of sluice_client_errors_total). */
export type ClientErrorReason = 'timeout' | 'headers_too_large' | 'malformed'

function classify (err: NodeJS.ErrnoException): { reason: ClientErrorReason, error: Error & { statusCode: number, code: string } } {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { reason: 'timeout', error: new RequestTimeoutError() }
  if (err.code === 'HPE_HEADER_OVERFLOW') return { reason: 'headers_too_large', error: new HeadersTooLargeError() }
  return { reason: 'malformed', error: new BadRequestError(`Malformed HTTP request (${err.code ?? 'parse error'})`) }
}

/**
 * Fastify's `clientErrorHandler`: a request Node could not parse, whose head was too large, or
 * that was too slow (HEADERS_TIMEOUT / REQUEST_TIMEOUT) is answered with the SLUICE error body
 * and its connection is closed, since the parser cannot resynchronise with the stream.
 */
export function clientErrorHandler (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset or an already closed socket has nobody left to answer
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const { reason, error } = classify(err)
  if (this.hasDecorator('telemetry')) this.telemetry.clientError(reason)
  this.log.debug({ err, reason }, 'client error')
  // a response already under way (REQUEST_TIMEOUT cutting a slow upload the upstream answered
  // early) cannot be followed by a second status line: the socket is only closed
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent: boolean } | null })._httpMessage
  if (socket.writable && inProgress?.headersSent !== true) {
    const body = JSON.stringify({ statusCode: error.statusCode, error: STATUS_CODES[error.statusCode], code: error.code, message: error.message })
    socket.write(`HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode] as string}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

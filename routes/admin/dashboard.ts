import { createHash } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import { DASHBOARD_SCRIPT, DASHBOARD_STYLE, dashboardHtml } from './dashboard-page.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on the dashboard page only: the admin guard lets it through (the page asks for the token itself). */
    adminPage?: boolean
  }
}

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

const PAGE = dashboardHtml(DASHBOARD_STYLE, DASHBOARD_SCRIPT)

/**
 * Nothing but this page's own style and script (by hash, not 'unsafe-inline'), calls to this
 * origin, and the empty data: favicon (so the browser does not fetch /favicon.ico, which would be
 * proxied to an upstream). No framing, no form posts, no <base>.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(DASHBOARD_SCRIPT)}`,
  `style-src ${sha256(DASHBOARD_STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

/**
 * `GET /admin/dashboard` (SPEC §5): a live HTML view of `GET /admin/status` with the pool actions
 * of the admin API. The page itself is served without the admin token (`config.adminPage`); every
 * call it makes goes through the guard like any other client's, with the token it asks for.
 */
const dashboardRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/dashboard', {
    config: { adminPage: true },
    schema: {
      tags: ['admin'],
      operationId: 'getDashboard',
      summary: 'Live HTML dashboard',
      description: 'A self-contained page that polls `GET /admin/status` every second and adds, disables, re-weights and drains ' +
        'servers through this API. The page loads without the token; it asks for it and sends it as a bearer token on every call.',
      response: { 200: { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } } }
    }
  }, async (_request, reply) => reply
    .header('content-security-policy', DASHBOARD_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(PAGE))
}

export default dashboardRoutes

import { createHash } from 'node:crypto'

export type OriginProblem = 'invalid' | 'scheme' | 'credentials' | 'path' | 'query' | 'fragment'

export type OriginResult =
  | { ok: true, origin: string }
  | { ok: false, problem: OriginProblem, message: string }

const MESSAGES: Record<OriginProblem, string> = {
  invalid: 'is not a URL',
  scheme: 'must use http:// or https://',
  credentials: 'must not contain credentials',
  path: 'must be an origin without a path (a lone trailing "/" is allowed)',
  query: 'must not contain a query string',
  fragment: 'must not contain a fragment'
}

/**
 * Normalises an upstream URL to its origin (scheme and host lower-cased, default port dropped),
 * so that `http://H:80/` and `http://h` name the same server.
 */
export function normaliseOrigin (input: string): OriginResult {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return fail('invalid')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail('scheme')
  if (url.username !== '' || url.password !== '') return fail('credentials')
  if (url.pathname !== '/' && url.pathname !== '') return fail('path')
  // WHATWG URL drops a lone '?' or '#', so look at the raw input too
  if (url.search !== '' || input.includes('?')) return fail('query')
  if (url.hash !== '' || input.includes('#')) return fail('fragment')
  if (url.hostname === '') return fail('invalid')
  return { ok: true, origin: url.origin }
}

function fail (problem: OriginProblem): OriginResult {
  return { ok: false, problem, message: MESSAGES[problem] }
}

/** A stable id from the normalised origin: every instance and every restart agree on it. */
export function serverId (origin: string): string {
  return createHash('sha256').update(origin).digest('hex').slice(0, 12)
}

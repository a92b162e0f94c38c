import { parseArgs } from 'node:util'

// Command-line flags of `npm run loadtest` (plain functions: no I/O).

export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
export type Method = typeof METHODS[number]

export const DEFAULT_CONNECTIONS = 10
export const DEFAULT_DURATION = 10

export interface LoadtestOptions {
  /** Where every request goes: --url, with its path replaced by --path when given. */
  target: URL
  connections: number
  /** Seconds. */
  duration: number
  method: Method
  /** A file name, `-` for stdout, or undefined for no JSON. */
  json: string | undefined
}

export type Parsed =
  | { kind: 'run', options: LoadtestOptions }
  | { kind: 'help' }
  | { kind: 'error', message: string }

export const USAGE = [
  'usage: npm run loadtest -- --url http://127.0.0.1:8080 [-c 10] [-d 10] [--path /] [--method GET] [--json out.json|-]',
  '  --url URL              http:// or https:// target (required); traffic goes nowhere else',
  `  -c, --connections N    concurrent connections, 1..1000 (default ${DEFAULT_CONNECTIONS})`,
  `  -d, --duration S       seconds to run, 1..3600 (default ${DEFAULT_DURATION})`,
  '  --path /p?q            request this path (and query) instead of the one in --url',
  `  --method M             one of ${METHODS.join(', ')} (default GET)`,
  '  --json FILE            also write the result as JSON to FILE, or to stdout with - (then nothing else there)',
  '  -h, --help             this text'
].join('\n')

const FLAGS = '--url, -c/--connections, -d/--duration, --path, --method, --json, -h/--help'

const OPTIONS = {
  url: { type: 'string' },
  connections: { type: 'string', short: 'c' },
  duration: { type: 'string', short: 'd' },
  path: { type: 'string' },
  method: { type: 'string' },
  json: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

type Name = keyof typeof OPTIONS

/** What each value flag accepts, as said in error messages. */
const ACCEPTS: Record<Exclude<Name, 'help'>, string> = {
  url: 'an http:// or https:// URL without credentials, e.g. http://127.0.0.1:8080',
  connections: 'an integer 1..1000',
  duration: 'a whole number of seconds 1..3600',
  path: 'a path starting with a single /, e.g. /api?x=1',
  method: `one of ${METHODS.join(', ')}`,
  json: 'a file name, or - for stdout'
}

/**
 * Parses `npm run loadtest` flags. The first problem found is returned as one line naming the flag
 * as typed and what it accepts, prefixed `loadtest: `.
 */
export function parseLoadtestArgs (argv: string[]): Parsed {
  // strict: false so that every problem is reported in our own words (from the tokens)
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true })
  const raw: Partial<Record<Name, { value: string, flag: string }>> = {}
  let help = false
  for (const token of tokens) {
    if (token.kind === 'positional') return fail(`unexpected argument ${JSON.stringify(token.value)}: accepted flags are ${FLAGS}`)
    if (token.kind === 'option-terminator') continue
    if (!isName(token.name)) return fail(`unknown flag ${token.rawName}: accepted flags are ${FLAGS}`)
    if (token.name === 'help') {
      if (token.value !== undefined) return fail(`${token.rawName} takes no value`)
      help = true
      continue
    }
    const value = token.value
    // `--url -c 5`: parseArgs (not strict) took the next flag as the value
    if (value === undefined || (!token.inlineValue && /^--?[a-zA-Z]/.test(value))) {
      return fail(`${token.rawName} needs a value: expected ${ACCEPTS[token.name]}`)
    }
    raw[token.name] = { value, flag: token.rawName }
  }
  if (help) return { kind: 'help' }

  const invalid = (name: Exclude<Name, 'help'>): Parsed => {
    const given = raw[name]!
    return fail(`${given.flag} ${JSON.stringify(given.value)} is invalid: expected ${ACCEPTS[name]}`)
  }

  if (raw.url === undefined) return fail(`--url is required: expected ${ACCEPTS.url}`)
  const base = httpUrl(raw.url.value)
  if (base === undefined) return invalid('url')
  let target = base
  if (raw.path !== undefined) {
    const path = raw.path.value
    if (!path.startsWith('/') || path.startsWith('//') || /[\s#]/.test(path)) return invalid('path')
    target = new URL(path, base.origin)
    if (target.origin !== base.origin) return invalid('path')
  }
  const connections = raw.connections === undefined ? DEFAULT_CONNECTIONS : integer(raw.connections.value, 1, 1000)
  if (connections === undefined) return invalid('connections')
  const duration = raw.duration === undefined ? DEFAULT_DURATION : integer(raw.duration.value, 1, 3600)
  if (duration === undefined) return invalid('duration')
  const method = raw.method === undefined ? 'GET' : METHODS.find(m => m === raw.method!.value.toUpperCase())
  if (method === undefined) return invalid('method')
  const json = raw.json?.value
  if (json === '') return invalid('json')
  return { kind: 'run', options: { target, connections, duration, method, json } }
}

function fail (message: string): Parsed {
  return { kind: 'error', message: `loadtest: ${message}` }
}

function isName (name: string): name is Name {
  return Object.hasOwn(OPTIONS, name)
}

function integer (text: string, min: number, max: number): number | undefined {
  if (!/^\d+$/.test(text)) return undefined
  const n = Number(text)
  return n >= min && n <= max ? n : undefined
}

function httpUrl (text: string): URL | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined
  if (url.hostname === '' || url.username !== '' || url.password !== '') return undefined
  url.hash = ''
  return url
}

import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { normaliseOrigin } from '../pool/origin.js'
import { FileRateLimit, FileUpstreams, VARIABLES, type Config, type ConfigKey, type RateLimitRule } from './schema.js'
import type { UpstreamSeed } from './parsers.js'

export type Env = Readonly<Record<string, string | undefined>>

export type LoadResult =
  | { ok: true, config: Config }
  | { ok: false, problems: string[] }

const KEYS = Object.keys(VARIABLES) as ConfigKey[]

/**
 * Reads the configuration: real environment > `.env` (in `cwd`) > CONFIG_FILE (JSON, camelCase keys)
 * > defaults. Every refused value is reported, one line each, naming the variable, the value and
 * what is accepted; nothing is thrown for a user error.
 */
export function loadConfig (processEnv: Env, cwd = process.cwd()): LoadResult {
  const problems: string[] = []
  const env = mergeEnv(readDotEnv(cwd, problems), processEnv)
  const file = readConfigFile(env.CONFIG_FILE, cwd, problems)

  const values: Record<string, unknown> = {}
  for (const key of KEYS) {
    const { env: name, default: def, accepts, schema } = VARIABLES[key]
    const fromEnv = env[name]
    const source = fromEnv !== undefined && fromEnv.trim() !== '' ? 'env' : key in file.scalars ? 'file' : 'default'
    const raw = source === 'env' ? fromEnv as string : source === 'file' ? file.scalars[key] as string : def
    const result = schema.safeParse(raw)
    if (result.success) {
      values[key] = result.data
      continue
    }
    const where = source === 'file' ? `CONFIG_FILE ${key}` : name
    const detail = result.error.issues.map(i => i.code === 'custom' ? i.params?.reason as string | undefined : undefined).filter(Boolean).join('; ')
    problems.push(`${where}=${JSON.stringify(raw)} is invalid${detail ? ` (${detail})` : ''}: expected ${accepts}`)
  }
  // UPSTREAMS from the environment wins over the file's named list, as every variable does
  if (env.UPSTREAMS === undefined || env.UPSTREAMS.trim() === '') {
    if (file.upstreams !== undefined) values.upstreams = file.upstreams
  }
  values.rateLimitRules = file.rateLimitRules
  const { workers, redisUrl, redisClusterNodes } = values as { workers?: number, redisUrl?: string, redisClusterNodes?: unknown[] }
  if (workers !== undefined && workers > 1 && 'redisUrl' in values && 'redisClusterNodes' in values && redisUrl === undefined && (redisClusterNodes?.length ?? 0) === 0) {
    problems.push(`WORKERS=${workers} needs REDIS_URL or REDIS_CLUSTER_NODES: without Redis each worker would keep its own rate-limit budget and pool; expected 1, or set Redis`)
  }
  const { headersTimeout, requestTimeout } = values as { headersTimeout?: number, requestTimeout?: number }
  if (requestTimeout !== undefined && headersTimeout !== undefined && requestTimeout !== 0 && requestTimeout < headersTimeout) {
    problems.push(`REQUEST_TIMEOUT=${requestTimeout}ms is shorter than HEADERS_TIMEOUT=${headersTimeout}ms: expected 0 (off) or at least HEADERS_TIMEOUT`)
  }
  if (problems.length > 0) return { ok: false, problems }
  return { ok: true, config: Object.freeze(values) as unknown as Config }
}

/** `.env` under the real environment; an unset, empty or blank real value does not hide the `.env` one. */
function mergeEnv (dotEnv: Record<string, string>, processEnv: Env): Record<string, string> {
  const env = { ...dotEnv }
  for (const [name, value] of Object.entries(processEnv)) {
    if (value !== undefined && value.trim() !== '') env[name] = value
  }
  return env
}

function readDotEnv (cwd: string, problems: string[]): Record<string, string> {
  let text: string
  try {
    text = readFileSync(resolve(cwd, '.env'), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`.env could not be read: ${(err as Error).message}`)
    return {}
  }
  return parseEnv(text) as Record<string, string>
}

interface FileSettings {
  scalars: Partial<Record<ConfigKey, string>>
  upstreams: UpstreamSeed[] | undefined
  rateLimitRules: RateLimitRule[]
}

function readConfigFile (path: string | undefined, cwd: string, problems: string[]): FileSettings {
  const settings: FileSettings = { scalars: {}, upstreams: undefined, rateLimitRules: [] }
  if (path === undefined || path.trim() === '') return settings
  let data: unknown
  try {
    data = JSON.parse(readFileSync(resolve(cwd, path), 'utf8'))
  } catch (err) {
    problems.push(`CONFIG_FILE=${JSON.stringify(path)} could not be read: ${(err as Error).message}; expected a JSON file`)
    return settings
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    problems.push(`CONFIG_FILE=${JSON.stringify(path)} is invalid: expected a JSON object of settings`)
    return settings
  }
  for (const [key, value] of Object.entries(data)) {
    if (key === 'upstreams' && typeof value !== 'string') {
      settings.upstreams = readFileUpstreams(value, problems)
    } else if (key === 'rateLimit' && typeof value === 'object' && value !== null) {
      // an object holds per-route rules; a scalar is RATE_LIMIT (on/off) like any other key
      settings.rateLimitRules = readFileRateLimit(value, problems)
    } else if (!Object.hasOwn(VARIABLES, key)) { // not `in`: "toString" or "__proto__" are no settings
      problems.push(`CONFIG_FILE key "${key}" is unknown: expected one of ${[...KEYS].join(', ')}`)
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      settings.scalars[key as ConfigKey] = String(value)
    } else {
      problems.push(`CONFIG_FILE ${key}=${JSON.stringify(value)} is invalid: expected a string, number or boolean`)
    }
  }
  return settings
}

function readFileRateLimit (value: object, problems: string[]): RateLimitRule[] {
  const result = FileRateLimit.safeParse(value)
  if (result.success) return result.data.rules
  const issue = result.error.issues[0]
  problems.push(`CONFIG_FILE rateLimit${issue?.path.map(p => `[${JSON.stringify(p)}]`).join('') ?? ''} is invalid (${issue?.message ?? ''}): expected { "rules": [{ "path": "/api/x", "method"?: "GET", "max": 1.., "window": "1m" }] }`)
  return []
}

function readFileUpstreams (value: unknown, problems: string[]): UpstreamSeed[] | undefined {
  const result = FileUpstreams.safeParse(value)
  if (!result.success) {
    const issue = result.error.issues[0]
    problems.push(`CONFIG_FILE upstreams${issue?.path.map(p => `[${JSON.stringify(p)}]`).join('') ?? ''} is invalid (${issue?.message ?? ''}): expected [{ "url": "http://host:port", "weight"?: 1..1000, "name"?: string }]`)
    return undefined
  }
  const seeds: UpstreamSeed[] = []
  for (const entry of result.data) {
    const origin = normaliseOrigin(entry.url)
    if (!origin.ok) {
      problems.push(`CONFIG_FILE upstreams url=${JSON.stringify(entry.url)} is invalid: ${origin.message}`)
      continue
    }
    seeds.push({ url: origin.origin, weight: entry.weight ?? 1, ...(entry.name !== undefined && { name: entry.name }) })
  }
  return seeds
}

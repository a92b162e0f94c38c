export { loadConfig, type Env, type LoadResult } from './load.js'
export { VARIABLES, LOG_LEVELS, type Config, type ConfigKey, type Variable, type RateLimitRule } from './schema.js'
export type { UpstreamSeed, TrustProxy } from './parsers.js'

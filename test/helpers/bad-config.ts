/**
 * One bad value per configuration variable, shared by the loader's unit tests and the start-up
 * test of the real entry. HOST takes any non-empty name and an empty value counts as unset, so it
 * has none from the environment (an empty host in CONFIG_FILE is refused in the loader's tests).
 */
export const BAD: Readonly<Record<string, string>> = {
  ADMIN_TOKEN: 'short',
  ADMIN_PORT: '0',
  REDIS_URL: 'http://cache:6379',
  REDIS_CLUSTER_NODES: 'cache-1',
  KEY_PREFIX: 'has space',
  REDIS_TIMEOUT: 'fast',
  RATE_LIMIT: 'sometimes',
  RATE_LIMIT_MAX: '0',
  RATE_LIMIT_WINDOW: '500ms',
  RATE_LIMIT_ALGORITHM: 'token-bucket',
  RATE_LIMIT_KEY: 'cookie:session',
  RATE_LIMIT_ALLOW: '10.0.0.300',
  RATE_LIMIT_HEADERS: 'draft-03',
  RATE_LIMIT_ON_REDIS_ERROR: 'retry',
  PORT: '70000',
  UPSTREAMS: 'ftp://files.example',
  BALANCER: 'random',
  TRUST_PROXY: '10.0.0.0/33',
  HEALTH_CHECK_PATH: 'health',
  HEALTH_CHECK_INTERVAL: 'often',
  HEALTH_CHECK_TIMEOUT: '0',
  HEALTHY_THRESHOLD: '0',
  UNHEALTHY_THRESHOLD: 'three',
  PASSIVE_FAILURE_THRESHOLD: '-1',
  PASSIVE_EJECTION_TIME: '30 s',
  UPSTREAM_CONNECT_TIMEOUT: '2 s',
  UPSTREAM_TIMEOUT: 'never',
  RETRIES: '2.5',
  PRESERVE_HOST: 'maybe',
  DRAIN_TIMEOUT: '1d',
  LOG_LEVEL: 'verbose',
  SHUTDOWN_TIMEOUT: 'soon'
}

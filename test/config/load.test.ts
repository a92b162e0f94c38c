import t from 'tap'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { loadConfig, VARIABLES, type Config, type ConfigKey, type Env } from '../../src/config/index.js'
import { BAD } from '../helpers/bad-config.js'

/** The part of a tap test the helpers below use. */
interface Test { fail: (message: string) => unknown }

const DEFAULTS: Config = {
  port: 8080,
  host: '0.0.0.0',
  upstreams: [],
  balancer: 'round-robin',
  trustProxy: false,
  redisUrl: undefined,
  redisClusterNodes: [],
  keyPrefix: 'sluice:',
  redisTimeout: 100,
  rateLimit: true,
  rateLimitMax: 100,
  rateLimitWindow: 60_000,
  rateLimitAlgorithm: 'sliding-window',
  rateLimitKey: { kind: 'ip' },
  rateLimitAllow: [],
  rateLimitHeaders: 'legacy',
  rateLimitOnRedisError: 'local',
  rateLimitRules: [],
  healthCheckPath: '/health',
  healthCheckInterval: 5000,
  healthCheckTimeout: 2000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  passiveFailureThreshold: 3,
  passiveEjectionTime: 30_000,
  upstreamConnectTimeout: 2000,
  upstreamTimeout: 30_000,
  retries: 2,
  preserveHost: false,
  drainTimeout: 30_000,
  adminToken: undefined,
  adminPort: undefined,
  headersTimeout: 10_000,
  requestTimeout: 300_000,
  keepAliveTimeout: 65_000,
  maxRequestsPerSocket: 1000,
  maxHeaderSize: 16_384,
  logLevel: 'info',
  workers: 1,
  shutdownTimeout: 10_000
}

const KEYS = Object.keys(VARIABLES) as ConfigKey[]
const keyOf = (name: string): ConfigKey => {
  const key = KEYS.find(k => VARIABLES[k].env === name)
  if (key === undefined) throw new Error(`no variable ${name}`)
  return key
}

/** The config of a load that must succeed; fails the test with the problems otherwise. */
function ok (t: Test, env: Env, cwd: string): Config {
  const result = loadConfig(env, cwd)
  if (!result.ok) {
    t.fail(`expected a valid config, got: ${result.problems.join(' | ')}`)
    throw new Error('invalid config')
  }
  return result.config
}

/** The problem lines of a load that must fail. */
function problems (t: Test, env: Env, cwd: string): string[] {
  const result = loadConfig(env, cwd)
  if (result.ok) {
    t.fail(`expected problems, got a valid config for ${JSON.stringify(env)}`)
    return []
  }
  return result.problems
}

t.test('defaults: every key has the SPEC default when nothing is set', async t => {
  const cwd = t.testdir()
  t.strictSame(ok(t, {}, cwd), DEFAULTS, 'no environment, no .env, no CONFIG_FILE')
  t.strictSame(Object.keys(DEFAULTS).sort(), [...KEYS, 'rateLimitRules'].sort(), 'this table covers every variable (and the file-only rules)')
  t.strictSame(ok(t, { UNRELATED: 'x', PATH: '/usr/bin' }, cwd), DEFAULTS, 'unrelated variables are ignored')
})

t.test('an empty or blank environment value counts as unset', async t => {
  const cwd = t.testdir()
  for (const key of KEYS) {
    const name = VARIABLES[key].env
    for (const blank of ['', '   ']) {
      const config = ok(t, { [name]: blank }, cwd)
      t.strictSame(config[key], DEFAULTS[key], `${name}=${JSON.stringify(blank)} → default`)
    }
  }
  t.strictSame(ok(t, { PORT: undefined }, cwd), DEFAULTS, 'an undefined value is unset too')
})

t.test('the config object is frozen', async t => {
  const config = ok(t, { PORT: '9000' }, t.testdir())
  t.ok(Object.isFrozen(config))
  t.throws(() => { (config as { port: number }).port = 1 }, TypeError, 'assignment throws in strict mode')
  t.equal(config.port, 9000)
})

t.test('durations', async t => {
  const cwd = t.testdir()
  const accepted: Array<[string, number]> = [
    ['1500', 1500],
    ['500ms', 500],
    ['5s', 5000],
    ['1m', 60_000],
    ['2h', 7_200_000],
    ['0', 0],
    ['0s', 0],
    [' 5s ', 5000],
    ['007s', 7000],
    ['2147483647', 2_147_483_647],
    ['596h', 2_145_600_000]
  ]
  for (const [raw, ms] of accepted) {
    t.equal(ok(t, { DRAIN_TIMEOUT: raw }, cwd).drainTimeout, ms, `DRAIN_TIMEOUT=${JSON.stringify(raw)} → ${ms} ms`)
  }
  const refused = ['5 parsecs', '-1s', '1.5s', 'abc', '5S', '5 s', '1d', 's', '5sec', '0x10', '1e3',
    // beyond what setTimeout can wait: it would fire after 1 ms
    '2147483648', '597h', '99999999999999999999h']
  for (const raw of refused) {
    const lines = problems(t, { DRAIN_TIMEOUT: raw }, cwd)
    t.equal(lines.length, 1, `DRAIN_TIMEOUT=${JSON.stringify(raw)} refused with one line`)
    t.match(lines[0], `DRAIN_TIMEOUT=${JSON.stringify(raw)} is invalid`)
    t.match(lines[0], `expected ${VARIABLES.drainTimeout.accepts}`)
  }
  t.match(problems(t, { SHUTDOWN_TIMEOUT: '597h' }, cwd)[0], /too large/, 'the reason is given')

  // every duration variable takes the same forms; 0 only where it means something
  const durations: Array<[string, boolean]> = [
    ['HEALTH_CHECK_INTERVAL', true],
    ['HEALTH_CHECK_TIMEOUT', false],
    ['PASSIVE_EJECTION_TIME', true],
    ['UPSTREAM_CONNECT_TIMEOUT', false],
    ['UPSTREAM_TIMEOUT', false],
    ['DRAIN_TIMEOUT', true],
    ['SHUTDOWN_TIMEOUT', true]
  ]
  for (const [name, zero] of durations) {
    const key = keyOf(name)
    t.equal(ok(t, { [name]: '1m' }, cwd)[key], 60_000, `${name}=1m`)
    t.equal(ok(t, { [name]: '250' }, cwd)[key], 250, `${name}=250`)
    t.equal(ok(t, { [name]: '1ms' }, cwd)[key], 1, `${name}=1ms`)
    const result = loadConfig({ [name]: '0' }, cwd)
    t.equal(result.ok, zero, `${name}=0 ${zero ? 'accepted' : 'refused'}`)
    if (!result.ok) t.match(result.problems, [new RegExp(`^${name}="0" is invalid.*at least 1ms`)])
  }
})

t.test('integers: whole decimal numbers only, within range', async t => {
  const cwd = t.testdir()
  const rows: Array<[string, string, number | null]> = [
    ['PORT', '0', 0],
    ['PORT', '65535', 65_535],
    ['PORT', ' 9000 ', 9000],
    ['PORT', '65536', null],
    ['PORT', '-1', null],
    ['PORT', '0x1F90', null],
    ['PORT', '8e3', null],
    ['PORT', '8080.0', null],
    ['PORT', '80.5', null],
    ['PORT', 'Infinity', null],
    ['RETRIES', '0', 0],
    ['RETRIES', '10', 10],
    ['RETRIES', '11', null],
    ['HEALTHY_THRESHOLD', '1', 1],
    ['HEALTHY_THRESHOLD', '0', null],
    ['UNHEALTHY_THRESHOLD', '100', 100],
    ['UNHEALTHY_THRESHOLD', '101', null],
    ['PASSIVE_FAILURE_THRESHOLD', '0', 0],
    ['PASSIVE_FAILURE_THRESHOLD', '1000', 1000],
    ['PASSIVE_FAILURE_THRESHOLD', '1001', null]
  ]
  for (const [name, raw, expected] of rows) {
    const result = loadConfig({ [name]: raw }, cwd)
    if (expected === null) {
      t.notOk(result.ok, `${name}=${JSON.stringify(raw)} refused`)
      if (!result.ok) {
        t.equal(result.problems.length, 1)
        t.match(result.problems[0], `${name}=${JSON.stringify(raw)} is invalid`)
        t.match(result.problems[0], `expected ${VARIABLES[keyOf(name)].accepts}`)
      }
    } else {
      t.equal(result.ok && result.config[keyOf(name)], expected, `${name}=${JSON.stringify(raw)} → ${expected}`)
    }
  }
})

t.test('every variable: a bad value is one line naming it, its value and what is accepted', async t => {
  const cwd = t.testdir()
  const names = KEYS.map(k => VARIABLES[k].env).filter(name => name !== 'HOST')
  t.strictSame(Object.keys(BAD).sort(), names.sort(), 'every variable (but HOST) has a row')
  for (const [name, value] of Object.entries(BAD)) {
    const lines = problems(t, { [name]: value }, cwd)
    t.equal(lines.length, 1, `${name}: exactly one line`)
    const line = lines[0] ?? ''
    t.ok(line.startsWith(`${name}=${JSON.stringify(value)} is invalid`), `${name}: starts with the name and value: ${line}`)
    t.ok(line.includes(`expected ${VARIABLES[keyOf(name)].accepts}`), `${name}: says what is accepted`)
    t.notMatch(line, /\n/, `${name}: a single line`)
  }
})

t.test('several bad variables: one line each, good ones do not add lines', async t => {
  const lines = problems(t, { ...BAD, HOST: '127.0.0.1', LOG_LEVEL_X: 'whatever' }, t.testdir())
  t.equal(lines.length, Object.keys(BAD).length)
  for (const [name, value] of Object.entries(BAD)) {
    t.equal(lines.filter(l => l.startsWith(`${name}=${JSON.stringify(value)} is invalid`)).length, 1, `${name} once`)
  }
  const two = problems(t, { PORT: 'x', BALANCER: 'y', RETRIES: '3' }, t.testdir())
  t.equal(two.length, 2)
  t.match(two, [/^PORT="x"/, /^BALANCER="y"/])
})

t.test('enumerations and strings', async t => {
  const cwd = t.testdir()
  for (const balancer of ['round-robin', 'weighted-round-robin', 'least-connections', 'ip-hash', 'p2c', 'ewma']) {
    t.equal(ok(t, { BALANCER: balancer }, cwd).balancer, balancer)
  }
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
    t.equal(ok(t, { LOG_LEVEL: level }, cwd).logLevel, level)
  }
  t.notOk(loadConfig({ BALANCER: 'Round-Robin' }, cwd).ok, 'names are exact')
  for (const path of ['/', '/health', '/status/live', '/health?full=1']) {
    t.equal(ok(t, { HEALTH_CHECK_PATH: path }, cwd).healthCheckPath, path)
  }
  for (const path of ['health', '/he alth', '/health#x', 'http://h/health']) {
    t.notOk(loadConfig({ HEALTH_CHECK_PATH: path }, cwd).ok, `HEALTH_CHECK_PATH=${JSON.stringify(path)} refused`)
  }
  for (const host of ['127.0.0.1', '::', 'localhost', 'gateway.internal']) {
    t.equal(ok(t, { HOST: host }, cwd).host, host)
  }
})

t.test('UPSTREAMS', async t => {
  const cwd = t.testdir()
  const accepted: Array<[string, Array<{ url: string, weight: number }>]> = [
    ['http://A:80/', [{ url: 'http://a', weight: 1 }]],
    ['HTTPS://B.example:443', [{ url: 'https://b.example', weight: 1 }]],
    ['http://a:3000=3', [{ url: 'http://a:3000', weight: 3 }]],
    ['http://a:3000=1000', [{ url: 'http://a:3000', weight: 1000 }]],
    ['http://a:3000/=2', [{ url: 'http://a:3000', weight: 2 }]],
    ['http://[::1]:3000=5', [{ url: 'http://[::1]:3000', weight: 5 }]],
    [' http://a:3000 , ,http://b:3001=2 ,', [{ url: 'http://a:3000', weight: 1 }, { url: 'http://b:3001', weight: 2 }]],
    [',', []],
    [', ,', []]
  ]
  for (const [raw, expected] of accepted) {
    t.strictSame(ok(t, { UPSTREAMS: raw }, cwd).upstreams, expected, `UPSTREAMS=${JSON.stringify(raw)}`)
  }
  // [value, text the line must name]
  const refused: Array<[string, string]> = [
    ['http://a=0', 'weight of "http://a" must be an integer 1..1000'],
    ['http://a=1001', 'weight of "http://a" must be an integer 1..1000'],
    ['http://a=x', 'weight of "http://a" must be an integer 1..1000'],
    ['http://a=', 'weight of "http://a" must be an integer 1..1000'],
    ['http://a=1.5', 'weight of "http://a" must be an integer 1..1000'],
    ['http://ok:1,http://a=-2', 'weight of "http://a" must be an integer 1..1000'],
    ['ftp://files.example', '"ftp://files.example" must use http:// or https://'],
    ['http://a/api', '"http://a/api" must be an origin without a path'],
    ['http://a/api=2', '"http://a/api=2" must be an origin without a path'],
    ['http://a/?q=1', '"http://a/?q=1" must not contain a query string'],
    ['http://a?q', '"http://a?q" must not contain a query string'],
    ['http://a#top', '"http://a#top" must not contain a fragment'],
    ['http://user:pw@a', '"http://user:pw@a" must not contain credentials'],
    ['http://ok:1, not-a-url', '"not-a-url" is not a URL']
  ]
  for (const [raw, named] of refused) {
    const lines = problems(t, { UPSTREAMS: raw }, cwd)
    t.equal(lines.length, 1, `UPSTREAMS=${JSON.stringify(raw)}: one line`)
    const line = lines[0] ?? ''
    t.ok(line.startsWith(`UPSTREAMS=${JSON.stringify(raw)} is invalid`), line)
    t.ok(line.includes(JSON.stringify(named).slice(1, -1)) || line.includes(named), `names the entry: ${named}`)
    t.ok(line.includes(`expected ${VARIABLES.upstreams.accepts}`), 'says what is accepted')
  }
})

t.test('TRUST_PROXY', async t => {
  const cwd = t.testdir()
  const accepted: Array<[string, boolean | number | string[]]> = [
    ['true', true],
    ['false', false],
    ['2', 2],
    ['0', 0],
    ['100', 100],
    ['10.0.0.0/8,::1', ['10.0.0.0/8', '::1']],
    [' 127.0.0.1 , fd00::/8 ', ['127.0.0.1', 'fd00::/8']],
    ['192.168.1.1', ['192.168.1.1']],
    ['10.0.0.0/32', ['10.0.0.0/32']],
    ['::/0', ['::/0']]
  ]
  for (const [raw, expected] of accepted) {
    t.strictSame(ok(t, { TRUST_PROXY: raw }, cwd).trustProxy, expected, `TRUST_PROXY=${JSON.stringify(raw)}`)
  }
  const refused: Array<[string, string | null]> = [
    ['10.0.0.0/33', '"10.0.0.0/33" is not an IP address or CIDR'],
    ['not-an-ip', '"not-an-ip" is not an IP address or CIDR'],
    ['10.0.0.1,foo', '"foo" is not an IP address or CIDR'],
    ['::1/129', '"::1/129" is not an IP address or CIDR'],
    ['10.0.0.0/', '"10.0.0.0/" is not an IP address or CIDR'],
    ['TRUE', '"TRUE" is not an IP address or CIDR'],
    ['1.5', '"1.5" is not an IP address or CIDR'],
    ['101', 'out of range 0..100']
  ]
  for (const [raw, reason] of refused) {
    const lines = problems(t, { TRUST_PROXY: raw }, cwd)
    t.equal(lines.length, 1, `TRUST_PROXY=${JSON.stringify(raw)} refused`)
    t.ok(lines[0]?.startsWith(`TRUST_PROXY=${JSON.stringify(raw)} is invalid`))
    if (reason !== null) t.ok(lines[0]?.includes(reason), `reason: ${reason}`)
    t.ok(lines[0]?.includes(`expected ${VARIABLES.trustProxy.accepts}`))
  }
})

t.test('PRESERVE_HOST', async t => {
  const cwd = t.testdir()
  const rows: Array<[string, boolean]> = [['true', true], ['false', false], ['1', true], ['0', false], ['yes', true], ['no', false]]
  for (const [raw, expected] of rows) {
    t.equal(ok(t, { PRESERVE_HOST: raw }, cwd).preserveHost, expected, `PRESERVE_HOST=${raw}`)
  }
  const lines = problems(t, { PRESERVE_HOST: 'maybe' }, cwd)
  t.strictSame(lines, [`PRESERVE_HOST="maybe" is invalid: expected ${VARIABLES.preserveHost.accepts}`])
})

t.test('precedence: real environment > .env in cwd > CONFIG_FILE > default', async t => {
  const file = JSON.stringify({
    port: 1001,
    retries: 5,
    preserveHost: true,
    logLevel: 'warn',
    healthCheckInterval: 1000,
    drainTimeout: '3s',
    trustProxy: 2
  })
  const dotEnv = 'PORT=1002\nRETRIES=6\n# a comment\nDRAIN_TIMEOUT="4s"\n'
  const dir = t.testdir({
    none: {},
    file: { 'sluice.json': file },
    dot: { '.env': dotEnv },
    both: { '.env': dotEnv, 'sluice.json': file }
  })
  const rows: Array<{ name: string, dir: string, env: Env, expect: Partial<Config> }> = [
    { name: 'nothing', dir: 'none', env: {}, expect: {} },
    {
      name: 'CONFIG_FILE only',
      dir: 'file',
      env: { CONFIG_FILE: 'sluice.json' },
      expect: { port: 1001, retries: 5, preserveHost: true, logLevel: 'warn', healthCheckInterval: 1000, drainTimeout: 3000, trustProxy: 2 }
    },
    { name: '.env only', dir: 'dot', env: {}, expect: { port: 1002, retries: 6, drainTimeout: 4000 } },
    {
      name: '.env over CONFIG_FILE',
      dir: 'both',
      env: { CONFIG_FILE: 'sluice.json' },
      expect: { port: 1002, retries: 6, preserveHost: true, logLevel: 'warn', healthCheckInterval: 1000, drainTimeout: 4000, trustProxy: 2 }
    },
    {
      name: 'environment over .env and CONFIG_FILE',
      dir: 'both',
      env: { CONFIG_FILE: 'sluice.json', PORT: '1003', LOG_LEVEL: 'error', PRESERVE_HOST: 'false' },
      expect: { port: 1003, retries: 6, preserveHost: false, logLevel: 'error', healthCheckInterval: 1000, drainTimeout: 4000, trustProxy: 2 }
    },
    { name: 'environment over .env', dir: 'dot', env: { RETRIES: '0' }, expect: { port: 1002, retries: 0, drainTimeout: 4000 } },
    { name: 'environment over CONFIG_FILE', dir: 'file', env: { CONFIG_FILE: 'sluice.json', TRUST_PROXY: 'false', PORT: '1003' }, expect: { port: 1003, retries: 5, preserveHost: true, logLevel: 'warn', healthCheckInterval: 1000, drainTimeout: 3000 } },
    { name: 'an empty environment value does not hide .env', dir: 'dot', env: { PORT: '', RETRIES: '  ' }, expect: { port: 1002, retries: 6, drainTimeout: 4000 } },
    { name: 'an undefined environment value does not hide .env', dir: 'dot', env: { PORT: undefined }, expect: { port: 1002, retries: 6, drainTimeout: 4000 } },
    { name: 'an empty environment value does not hide CONFIG_FILE', dir: 'file', env: { CONFIG_FILE: 'sluice.json', PORT: '' }, expect: { port: 1001, retries: 5, preserveHost: true, logLevel: 'warn', healthCheckInterval: 1000, drainTimeout: 3000, trustProxy: 2 } }
  ]
  for (const row of rows) {
    t.strictSame(ok(t, row.env, join(dir, row.dir)), { ...DEFAULTS, ...row.expect }, row.name)
  }
})

t.test('CONFIG_FILE location', async t => {
  const dir = t.testdir({
    app: {
      conf: { 'sluice.json': JSON.stringify({ port: 2001 }) },
      'other.json': JSON.stringify({ port: 2002 }),
      '.env': 'CONFIG_FILE=conf/sluice.json\n'
    },
    plain: { conf: { 'sluice.json': JSON.stringify({ port: 2003 }) } }
  })
  const app = join(dir, 'app')
  const plain = join(dir, 'plain')
  t.equal(ok(t, { CONFIG_FILE: 'conf/sluice.json' }, plain).port, 2003, 'relative to cwd')
  t.equal(ok(t, { CONFIG_FILE: join(plain, 'conf', 'sluice.json') }, t.testdirName).port, 2003, 'absolute path')
  t.equal(ok(t, {}, app).port, 2001, '.env can set CONFIG_FILE')
  t.equal(ok(t, { CONFIG_FILE: 'other.json' }, app).port, 2002, 'the environment\'s CONFIG_FILE wins over .env\'s')
  t.equal(ok(t, { CONFIG_FILE: '' }, app).port, 2001, 'an empty CONFIG_FILE does not hide .env\'s')
  t.match(problems(t, { CONFIG_FILE: 'conf/sluice.json' }, dir), [/^CONFIG_FILE="conf\/sluice\.json" could not be read/],
    'resolved against cwd, not the process directory')
})

t.test('CONFIG_FILE problems are lines, never a throw', async t => {
  const dir = t.testdir({
    'bad.json': '{ port: 1 }',
    'empty.json': '',
    'array.json': '[1, 2]',
    'string.json': '"PORT=1"',
    'null.json': 'null',
    'number.json': '42'
  })
  const rows: Array<[string, RegExp]> = [
    ['missing.json', /^CONFIG_FILE="missing\.json" could not be read: .*ENOENT.*; expected a JSON file$/],
    ['bad.json', /^CONFIG_FILE="bad\.json" could not be read: .*JSON.*; expected a JSON file$/],
    ['empty.json', /^CONFIG_FILE="empty\.json" could not be read: .*; expected a JSON file$/],
    ['.', /^CONFIG_FILE="\." could not be read: .*EISDIR.*; expected a JSON file$/],
    ['array.json', /^CONFIG_FILE="array\.json" is invalid: expected a JSON object of settings$/],
    ['string.json', /^CONFIG_FILE="string\.json" is invalid: expected a JSON object of settings$/],
    ['null.json', /^CONFIG_FILE="null\.json" is invalid: expected a JSON object of settings$/],
    ['number.json', /^CONFIG_FILE="number\.json" is invalid: expected a JSON object of settings$/]
  ]
  for (const [path, line] of rows) {
    let result: ReturnType<typeof loadConfig> | undefined
    t.doesNotThrow(() => { result = loadConfig({ CONFIG_FILE: path }, dir) }, `${path}: no throw`)
    t.equal(result?.ok, false, `${path}: refused`)
    if (result !== undefined && !result.ok) {
      t.equal(result.problems.length, 1, `${path}: one line`)
      t.match(result.problems[0], line, path)
    }
  }
  const both = problems(t, { CONFIG_FILE: 'missing.json', PORT: 'x' }, dir)
  t.equal(both.length, 2, 'a file problem and a variable problem are both reported')
})

t.test('CONFIG_FILE settings: keys and values', async t => {
  // [file content, expected lines (each a pattern) or a partial config when accepted]
  const rows: Array<{ name: string, file: unknown, lines?: RegExp[], expect?: Partial<Config> }> = [
    { name: 'empty object', file: {}, expect: {} },
    { name: 'numbers, booleans and strings', file: { port: 7000, preserveHost: true, retries: '4', healthCheckTimeout: '1s', balancer: 'p2c' }, expect: { port: 7000, preserveHost: true, retries: 4, healthCheckTimeout: 1000, balancer: 'p2c' } },
    { name: 'boolean false and number 0', file: { trustProxy: false, healthCheckInterval: 0, retries: 0 }, expect: { trustProxy: false, healthCheckInterval: 0, retries: 0 } },
    { name: 'upstreams as a string', file: { upstreams: 'http://A:80=2' }, expect: { upstreams: [{ url: 'http://a', weight: 2 }] } },
    { name: 'unknown key', file: { port: 1, prot: 2 }, lines: [/^CONFIG_FILE key "prot" is unknown: expected one of port, host, .*shutdownTimeout$/] },
    { name: 'an environment name is not a key', file: { PORT: 1 }, lines: [/^CONFIG_FILE key "PORT" is unknown/] },
    { name: 'an Object.prototype name is not a key', file: { toString: 1, constructor: 'x' }, lines: [/^CONFIG_FILE key "toString" is unknown/, /^CONFIG_FILE key "constructor" is unknown/] },
    { name: 'nested object for a scalar key', file: { port: { value: 1 } }, lines: [/^CONFIG_FILE port=\{"value":1\} is invalid: expected a string, number or boolean$/] },
    { name: 'array for a scalar key', file: { trustProxy: ['10.0.0.1'] }, lines: [/^CONFIG_FILE trustProxy=\["10\.0\.0\.1"\] is invalid: expected a string, number or boolean$/] },
    { name: 'null for a scalar key', file: { logLevel: null }, lines: [/^CONFIG_FILE logLevel=null is invalid: expected a string, number or boolean$/] },
    { name: 'bad scalar value', file: { port: 'abc' }, lines: [/^CONFIG_FILE port="abc" is invalid: expected an integer 0\.\.65535$/] },
    { name: 'a fraction for an integer', file: { retries: 1.5 }, lines: [/^CONFIG_FILE retries="1\.5" is invalid: expected an integer 0\.\.10$/] },
    { name: 'a boolean for an integer', file: { port: true }, lines: [/^CONFIG_FILE port="true" is invalid/] },
    { name: 'an empty host', file: { host: '' }, lines: [/^CONFIG_FILE host="" is invalid: expected an address or host name/] },
    { name: 'a fraction for a duration', file: { drainTimeout: 1.5 }, lines: [/^CONFIG_FILE drainTimeout="1\.5" is invalid: expected a duration/] },
    { name: 'a bad boolean', file: { preserveHost: 'maybe' }, lines: [/^CONFIG_FILE preserveHost="maybe" is invalid: expected true or false$/] },
    { name: 'several problems', file: { port: -1, balancer: 'x', nope: 1 }, lines: [/^CONFIG_FILE key "nope" is unknown/, /^CONFIG_FILE port="-1" is invalid/, /^CONFIG_FILE balancer="x" is invalid/] },
    // upstreams: a list of { url, weight?, name? }
    { name: 'upstreams: wrong type', file: { upstreams: 5 }, lines: [/^CONFIG_FILE upstreams is invalid \(.+\): expected \[\{ "url"/] },
    { name: 'upstreams: null', file: { upstreams: null }, lines: [/^CONFIG_FILE upstreams is invalid/] },
    { name: 'upstreams: an object', file: { upstreams: { url: 'http://a' } }, lines: [/^CONFIG_FILE upstreams is invalid/] },
    { name: 'upstreams: an entry of the wrong type', file: { upstreams: ['http://a'] }, lines: [/^CONFIG_FILE upstreams\[0\] is invalid/] },
    { name: 'upstreams: url not a string', file: { upstreams: [{ url: 5 }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["url"\] is invalid/] },
    { name: 'upstreams: url missing', file: { upstreams: [{ weight: 2 }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["url"\] is invalid/] },
    { name: 'upstreams: weight 0', file: { upstreams: [{ url: 'http://a', weight: 0 }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["weight"\] is invalid/] },
    { name: 'upstreams: weight 1001', file: { upstreams: [{ url: 'http://a' }, { url: 'http://b', weight: 1001 }] }, lines: [/^CONFIG_FILE upstreams\[1\]\["weight"\] is invalid/] },
    { name: 'upstreams: weight a string', file: { upstreams: [{ url: 'http://a', weight: '2' }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["weight"\] is invalid/] },
    { name: 'upstreams: fractional weight', file: { upstreams: [{ url: 'http://a', weight: 1.5 }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["weight"\] is invalid/] },
    { name: 'upstreams: empty name', file: { upstreams: [{ url: 'http://a', name: '' }] }, lines: [/^CONFIG_FILE upstreams\[0\]\["name"\] is invalid/] },
    { name: 'upstreams: unknown field', file: { upstreams: [{ url: 'http://a', wieght: 2 }] }, lines: [/^CONFIG_FILE upstreams\[0\] is invalid \(.*wieght.*\)/] },
    { name: 'upstreams: bad scheme', file: { upstreams: [{ url: 'ftp://a' }] }, lines: [/^CONFIG_FILE upstreams url="ftp:\/\/a" is invalid: must use http:\/\/ or https:\/\/$/] },
    { name: 'upstreams: path', file: { upstreams: [{ url: 'http://a/api' }] }, lines: [/^CONFIG_FILE upstreams url="http:\/\/a\/api" is invalid: must be an origin without a path/] },
    { name: 'upstreams: not a URL', file: { upstreams: [{ url: 'b1' }] }, lines: [/^CONFIG_FILE upstreams url="b1" is invalid: is not a URL$/] },
    { name: 'upstreams: two bad urls, two lines', file: { upstreams: [{ url: 'http://a?x' }, { url: 'http://ok' }, { url: 'http://u:p@b' }] }, lines: [/url="http:\/\/a\?x" is invalid: must not contain a query string/, /url="http:\/\/u:p@b" is invalid: must not contain credentials/] }
  ]
  const dir = t.testdir(Object.fromEntries(rows.map((row, i) => [`${i}.json`, JSON.stringify(row.file)])))
  rows.forEach((row, i) => {
    let result: ReturnType<typeof loadConfig> | undefined
    t.doesNotThrow(() => { result = loadConfig({ CONFIG_FILE: `${i}.json` }, dir) }, `${row.name}: no throw`)
    if (row.expect !== undefined) {
      t.strictSame(result?.ok ? result.config : result, { ...DEFAULTS, ...row.expect }, row.name)
    } else if (result !== undefined && !result.ok) {
      t.equal(result.problems.length, row.lines?.length, `${row.name}: ${result.problems.join(' | ')}`)
      for (const line of row.lines ?? []) {
        t.equal(result.problems.filter(p => line.test(p)).length, 1, `${row.name}: ${line}`)
      }
    } else {
      t.fail(`${row.name}: expected problems`)
    }
  })
})

t.test('CONFIG_FILE upstreams: used, normalised, named, unless UPSTREAMS is set', async t => {
  const file = JSON.stringify({
    upstreams: [
      { url: 'http://B1:80/', weight: 2, name: 'b1' },
      { url: 'https://b2.example:8443' },
      { url: 'http://[::1]:3000', name: 'local' }
    ]
  })
  const dir = t.testdir({
    plain: { 'sluice.json': file },
    dot: { 'sluice.json': file, '.env': 'UPSTREAMS=http://from-dotenv:1=4\n' }
  })
  const fromFile = [
    { url: 'http://b1', weight: 2, name: 'b1' },
    { url: 'https://b2.example:8443', weight: 1 },
    { url: 'http://[::1]:3000', weight: 1, name: 'local' }
  ]
  const plain = join(dir, 'plain')
  t.strictSame(ok(t, { CONFIG_FILE: 'sluice.json' }, plain).upstreams, fromFile, 'the file\'s list, normalised, names kept')
  t.strictSame(ok(t, { CONFIG_FILE: 'sluice.json', UPSTREAMS: '' }, plain).upstreams, fromFile, 'an empty UPSTREAMS is unset')
  t.strictSame(ok(t, { CONFIG_FILE: 'sluice.json', UPSTREAMS: 'http://C:3000=3' }, plain).upstreams,
    [{ url: 'http://c:3000', weight: 3 }], 'UPSTREAMS from the environment wins')
  t.strictSame(ok(t, { CONFIG_FILE: 'sluice.json', UPSTREAMS: ',' }, plain).upstreams, [], 'even when it lists nothing')
  t.strictSame(ok(t, { CONFIG_FILE: 'sluice.json' }, join(dir, 'dot')).upstreams,
    [{ url: 'http://from-dotenv:1', weight: 4 }], 'UPSTREAMS from .env wins over the file too')
})

t.test('.env: parsed, and problems reported', async t => {
  const dir = t.testdir({
    unreadable: { '.env': {} },
    bad: { '.env': 'PORT=banana\n' },
    quoted: { '.env': '# settings\nexport HOST="127.0.0.1"\nLOG_LEVEL=\'debug\' # inline comment\nPORT=\n' }
  })
  const lines = problems(t, {}, join(dir, 'unreadable'))
  t.equal(lines.length, 1)
  t.match(lines[0], /^\.env could not be read: .*EISDIR/, 'a .env that is not a file is reported')
  t.strictSame(problems(t, {}, join(dir, 'bad')), [`PORT="banana" is invalid: expected ${VARIABLES.port.accepts}`],
    'a bad .env value is reported under its variable name')
  const quoted = ok(t, {}, join(dir, 'quoted'))
  t.equal(quoted.host, '127.0.0.1')
  t.equal(quoted.logLevel, 'debug')
  t.equal(quoted.port, 8080, 'an empty .env value is unset')
})

t.test('CONFIG_FILE rateLimit: rules are read (object) while a scalar is RATE_LIMIT; bad rules are problem lines', async t => {
  const cwd = t.testdir({
    'rules.json': JSON.stringify({ rateLimit: { rules: [{ path: '/api/search', method: 'get', max: 10, window: '1m' }, { path: '/api', max: 50, window: 30_000 }] } }),
    'off.json': JSON.stringify({ rateLimit: false }),
    'bad-window.json': JSON.stringify({ rateLimit: { rules: [{ path: '/a', max: 1, window: '500ms' }] } }),
    'bad-path.json': JSON.stringify({ rateLimit: { rules: [{ path: 'api', max: 1, window: '1m' }] } }),
    'bad-field.json': JSON.stringify({ rateLimit: { rules: [{ path: '/a', max: 1, window: '1m', burst: 2 }] } })
  })
  t.strictSame(ok(t, { CONFIG_FILE: 'rules.json' }, cwd).rateLimitRules, [
    { path: '/api/search', method: 'GET', max: 10, window: 60_000 },
    { path: '/api', max: 50, window: 30_000 }
  ])
  t.equal(ok(t, { CONFIG_FILE: 'off.json' }, cwd).rateLimit, false)
  t.equal(ok(t, { CONFIG_FILE: 'off.json', RATE_LIMIT: 'on' }, cwd).rateLimit, true, 'the environment wins')
  for (const file of ['bad-window.json', 'bad-path.json', 'bad-field.json']) {
    const lines = problems(t, { CONFIG_FILE: file }, cwd)
    t.equal(lines.length, 1, file)
    t.match(lines[0], /^CONFIG_FILE rateLimit\["rules"\]\[0\].* is invalid \(.+\): expected \{ "rules"/, file)
  }
})

t.test('REQUEST_TIMEOUT shorter than HEADERS_TIMEOUT is refused, naming both; 0 turns it off', async t => {
  const refused = loadConfig({ HEADERS_TIMEOUT: '20s', REQUEST_TIMEOUT: '10s' }, '/nonexistent')
  t.same(refused, { ok: false, problems: ['REQUEST_TIMEOUT=10000ms is shorter than HEADERS_TIMEOUT=20000ms: expected 0 (off) or at least HEADERS_TIMEOUT'] })
  const off = loadConfig({ HEADERS_TIMEOUT: '20s', REQUEST_TIMEOUT: '0' }, '/nonexistent')
  t.equal(off.ok && off.config.requestTimeout, 0)
})

t.test('WORKERS: an integer or auto; more than 1 needs Redis, said in one line', async t => {
  const refused = loadConfig({ WORKERS: '4' }, '/nonexistent')
  t.same(refused, { ok: false, problems: ['WORKERS=4 needs REDIS_URL or REDIS_CLUSTER_NODES: without Redis each worker would keep its own rate-limit budget and pool; expected 1, or set Redis'] })
  const withRedis = loadConfig({ WORKERS: '4', REDIS_URL: 'redis://127.0.0.1:6390' }, '/nonexistent')
  t.equal(withRedis.ok && withRedis.config.workers, 4)
  const auto = loadConfig({ WORKERS: 'auto', REDIS_CLUSTER_NODES: '127.0.0.1:7000' }, '/nonexistent')
  t.equal(auto.ok && auto.config.workers, Math.min(64, availableParallelism()))
  const badRedis = loadConfig({ WORKERS: '2', REDIS_URL: 'http://x' }, '/nonexistent')
  t.equal(badRedis.ok ? 0 : badRedis.problems.length, 1, 'a bad REDIS_URL is reported once, not also as missing')
})

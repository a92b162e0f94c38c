import t from 'tap'
import { parseLoadtestArgs, USAGE, type Parsed } from '../../tools/loadtest/args.js'

const URL_ACCEPTS = 'an http:// or https:// URL without credentials, e.g. http://127.0.0.1:8080'
const FLAGS = '--url, -c/--connections, -d/--duration, --path, --method, --json, -h/--help'

function options (parsed: Parsed): Record<string, unknown> {
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${JSON.stringify(parsed)}`)
  return { ...parsed.options, target: parsed.options.target.href }
}

t.test('good flags', async t => {
  t.same(options(parseLoadtestArgs(['--url', 'http://127.0.0.1:8080', '-c', '50', '-d', '10'])),
    { target: 'http://127.0.0.1:8080/', connections: 50, duration: 10, method: 'GET', json: undefined })
  t.same(options(parseLoadtestArgs(['--url', 'https://example.test'])),
    { target: 'https://example.test/', connections: 10, duration: 10, method: 'GET', json: undefined }, 'defaults')
  t.same(options(parseLoadtestArgs([
    '--url=http://127.0.0.1:8080/ignored?q=1#frag', '-c1000', '--duration', '3600', '--path', '/api/x?y=1', '--method', 'post', '--json', '-'
  ])), { target: 'http://127.0.0.1:8080/api/x?y=1', connections: 1000, duration: 3600, method: 'POST', json: '-' })
  t.same(options(parseLoadtestArgs(['--url', 'http://h:81/keep?me=1#frag', '--connections', '1', '-d', '1', '--json', 'out.json'])),
    { target: 'http://h:81/keep?me=1', connections: 1, duration: 1, method: 'GET', json: 'out.json' }, 'the URL path without --path')
  t.same(options(parseLoadtestArgs(['--url', 'http://h', '-c', '007', '--'])), { target: 'http://h/', connections: 7, duration: 10, method: 'GET', json: undefined })
  t.same(parseLoadtestArgs(['-h']), { kind: 'help' })
  t.same(parseLoadtestArgs(['--url', 'ftp://x', '--help']), { kind: 'help' }, 'help before value checks')
  t.match(USAGE, /^usage: npm run loadtest -- --url /)
})

t.test('bad flags: one line naming the flag as typed and what it accepts', async t => {
  const cases: Array<[string[], string]> = [
    [[], `--url is required: expected ${URL_ACCEPTS}`],
    [['-c', '5'], `--url is required: expected ${URL_ACCEPTS}`],
    [['--url', 'ftp://x'], `--url "ftp://x" is invalid: expected ${URL_ACCEPTS}`],
    [['--url', 'localhost:8080'], `--url "localhost:8080" is invalid: expected ${URL_ACCEPTS}`],
    [['--url', 'not a url'], `--url "not a url" is invalid: expected ${URL_ACCEPTS}`],
    [['--url', 'http://user:pw@h'], `--url "http://user:pw@h" is invalid: expected ${URL_ACCEPTS}`],
    [['--url', 'http://h', '-c', '0'], '-c "0" is invalid: expected an integer 1..1000'],
    [['--url', 'http://h', '--connections', '1001'], '--connections "1001" is invalid: expected an integer 1..1000'],
    [['--url', 'http://h', '-c', '1.5'], '-c "1.5" is invalid: expected an integer 1..1000'],
    [['--url', 'http://h', '-c', '-5'], '-c "-5" is invalid: expected an integer 1..1000'],
    [['--url', 'http://h', '-c', 'ten'], '-c "ten" is invalid: expected an integer 1..1000'],
    [['--url', 'http://h', '-d', '0'], '-d "0" is invalid: expected a whole number of seconds 1..3600'],
    [['--url', 'http://h', '--duration', '3601'], '--duration "3601" is invalid: expected a whole number of seconds 1..3600'],
    [['--url', 'http://h', '-d', '10s'], '-d "10s" is invalid: expected a whole number of seconds 1..3600'],
    [['--url', 'http://h', '--path', 'api'], '--path "api" is invalid: expected a path starting with a single /, e.g. /api?x=1'],
    [['--url', 'http://h', '--path', '//elsewhere.test/'], '--path "//elsewhere.test/" is invalid: expected a path starting with a single /, e.g. /api?x=1'],
    [['--url', 'http://h', '--path', '/a b'], '--path "/a b" is invalid: expected a path starting with a single /, e.g. /api?x=1'],
    [['--url', 'http://h', '--path', '/\\elsewhere.test/'], '--path "/\\\\elsewhere.test/" is invalid: expected a path starting with a single /, e.g. /api?x=1'],
    [['--url', 'http://h', '--method', 'TRACE'], '--method "TRACE" is invalid: expected one of GET, POST, PUT, PATCH, DELETE, OPTIONS'],
    [['--url', 'http://h', '--json='], '--json "" is invalid: expected a file name, or - for stdout'],
    [['--url', 'http://h', '--json'], '--json needs a value: expected a file name, or - for stdout'],
    [['--url', '-c', '5'], `--url needs a value: expected ${URL_ACCEPTS}`],
    [['--url', '--json', 'x'], `--url needs a value: expected ${URL_ACCEPTS}`],
    [['--url', 'http://h', '--rate', '5'], `unknown flag --rate: accepted flags are ${FLAGS}`],
    [['-x', '--url', 'http://h'], `unknown flag -x: accepted flags are ${FLAGS}`],
    [['--url', 'http://h', 'extra'], `unexpected argument "extra": accepted flags are ${FLAGS}`],
    [['--help=yes'], '--help takes no value']
  ]
  for (const [argv, message] of cases) {
    t.same(parseLoadtestArgs(argv), { kind: 'error', message: `loadtest: ${message}` }, argv.join(' '))
  }
})

import { writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import autocannon from 'autocannon'
import { parseLoadtestArgs, USAGE, type LoadtestOptions } from './loadtest/args.js'
import { servedByFrom, Tally, toResult, type LoadtestResult } from './loadtest/aggregate.js'
import { formatReport, progressLine } from './loadtest/chart.js'
import { forgetRequestsOfClosedConnections } from './autocannon-latency.js'

// npm run loadtest -- --url http://127.0.0.1:8080 [-c 10] [-d 10] [--path /] [--method GET] [--json out.json|-]
//
// Load against one URL with autocannon; counts every response by status and by `x-served-by`,
// then prints throughput, latency percentiles, status codes, the 429 share and the per-upstream
// share as a bar chart (or JSON). Exit 0 when the run completed, 1 on a usage error or when the
// target answered nothing.

const CONNECT_TIMEOUT_MS = 5000

const parsed = parseLoadtestArgs(process.argv.slice(2))
if (parsed.kind === 'help') {
  process.stdout.write(`${USAGE}\n`)
} else if (parsed.kind === 'error') {
  process.stderr.write(`${parsed.message}\n`)
  process.exitCode = 1
} else {
  process.exitCode = await main(parsed.options)
}

async function main (options: LoadtestOptions): Promise<number> {
  const { target } = options
  const unreachable = await tryConnect(target)
  if (unreachable !== undefined) return failure(`cannot reach ${target.origin}: ${unreachable}`)

  const progress = process.stderr.isTTY && options.json !== '-'
  const tally = new Tally()
  let interrupted = false
  let instance: autocannon.Instance | undefined
  const stop = (): void => {
    if (interrupted) process.exit(130)
    interrupted = true
    instance?.stop()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  let run: autocannon.Result
  try {
    run = await new Promise<autocannon.Result>((resolve, reject) => {
      instance = autocannon({
        url: target.href,
        connections: options.connections,
        duration: options.duration,
        method: options.method,
        setupClient: client => {
          forgetRequestsOfClosedConnections(client)
          // one request at a time per connection: the headers seen last belong to the next response
          let servedBy: string | undefined
          client.on('headers', (info: unknown) => { servedBy = servedByFrom(info) })
          client.on('response', (status: number, _bytes: number, ms: number) => {
            tally.record(status, servedBy, ms)
            servedBy = undefined
          })
        }
      }, (err, result) => { if (err === null || err === undefined) resolve(result); else reject(err) })
      if (progress) {
        const started = Date.now()
        instance.on('tick', () => {
          const seconds = Math.round((Date.now() - started) / 1000)
          process.stderr.write(`\r${progressLine(seconds, options.duration, tally.total)}\x1b[K`)
        })
      }
    })
  } catch (err) {
    return failure(`the run failed: ${(err as Error).message}`)
  } finally {
    if (progress) process.stderr.write('\r\x1b[K')
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }

  const result = toResult(tally, {
    url: target.href,
    connections: options.connections,
    elapsedSeconds: run.duration,
    errors: run.errors,
    timeouts: run.timeouts
  })
  if (result.requests.total === 0) {
    return failure(`no response from ${target.href} in ${result.durationSeconds} s (${result.errors} errors, ${result.timeouts} timeouts)`)
  }
  if (options.json === '-') {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } else {
    process.stdout.write(formatReport(result, options.method, process.stdout.isTTY ? process.stdout.columns : undefined))
    if (interrupted) process.stdout.write(`(interrupted after ${result.durationSeconds} s)\n`)
    if (options.json !== undefined && !writeJson(options.json, result)) return 1
  }
  return interrupted ? 130 : 0
}

/** One TCP connection to the target before the run: undefined if it connects, else why not. */
async function tryConnect (url: URL): Promise<string | undefined> {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80)
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return await new Promise(resolve => {
    const socket = connect({ host, port })
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => {
      socket.destroy()
      resolve(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`)
    })
    socket.once('connect', () => { socket.destroy(); resolve(undefined) })
    socket.once('error', err => resolve(err.message))
  })
}

function writeJson (file: string, result: LoadtestResult): boolean {
  try {
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
    return true
  } catch (err) {
    failure(`cannot write --json ${JSON.stringify(file)}: ${(err as Error).message}`)
    return false
  }
}

function failure (message: string): number {
  process.stderr.write(`loadtest: ${message}\n`)
  return 1
}

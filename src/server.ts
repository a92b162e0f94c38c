import cluster from 'node:cluster'
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { superviseWorkers } from './cluster.js'
import { loadConfig } from './config/index.js'
import { buildApp } from './app.js'
import { logDestination } from './log-destination.js'

// The thin entry: configuration, listen, signals. Everything else is in buildApp.
const result = loadConfig(process.env)
if (!result.ok) {
  for (const problem of result.problems) process.stderr.write(`sluice: ${problem}\n`)
  process.exit(1)
}
const { config } = result
if (config.workers > 1 && cluster.isPrimary) {
  const { stopped } = superviseWorkers(config, pino({ level: config.logLevel }))
  process.exit(await stopped)
}
// a worker whose primary is gone (killed) stops gracefully instead of serving on alone
if (cluster.isWorker) process.once('disconnect', () => { process.kill(process.pid, 'SIGTERM') })
// logs (the access log above all) leave in one write(2) per 10 ms or 64 KiB, not one per line,
// and never block the event loop on a slow pipe reader
const logOutput = logDestination(1)
process.once('exit', () => {
  try {
    logOutput.flushSync()
  } catch {
    // nothing left to write, or stdout is gone
  }
})
const app = await buildApp(config, { logger: { level: config.logLevel, stream: logOutput } })

closeWithGrace({ delay: config.shutdownTimeout, logger: app.log }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'fatal error, shutting down')
  else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
  app.shuttingDown = true
  await app.close()
  await logOutput.end(1000)
})

if (config.adminToken === undefined) {
  app.log.warn('ADMIN_TOKEN is not set: the admin API accepts calls from loopback only')
}
for (const [server, port] of [[app, config.port], [app.adminApp, config.adminPort]] as const) {
  if (server === null || port === undefined) continue
  try {
    await server.listen({ port, host: config.host })
  } catch (err) {
    process.stderr.write(`sluice: cannot listen on ${config.host}:${port}: ${(err as Error).message}\n`)
    process.exit(1)
  }
}

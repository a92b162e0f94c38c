import closeWithGrace from 'close-with-grace'
import { loadConfig } from './config/index.js'
import { buildApp } from './app.js'

// The thin entry: configuration, listen, signals. Everything else is in buildApp.
const result = loadConfig(process.env)
if (!result.ok) {
  for (const problem of result.problems) process.stderr.write(`sluice: ${problem}\n`)
  process.exit(1)
}
const { config } = result
const app = await buildApp(config)

closeWithGrace({ delay: config.shutdownTimeout, logger: app.log }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'fatal error, shutting down')
  else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
  app.shuttingDown = true
  await app.close()
})

try {
  await app.listen({ port: config.port, host: config.host })
} catch (err) {
  process.stderr.write(`sluice: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}\n`)
  process.exit(1)
}

import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config/index.js'
import { createBackend, type Backend } from './backend/app.js'

// npm run demo: three demo upstreams and a gateway on :8080 in front of them, in-memory state,
// pretty logs. Any variable of the README's table still applies (PORT, BALANCER, ...).

async function listen (backend: Backend, port: number): Promise<number> {
  const { server } = backend
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
  }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EADDRINUSE') throw err
    // the usual port is taken: any free one will do for a demo
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  })
  return (server.address() as AddressInfo).port
}

const backends = [1, 2, 3].map(i => createBackend({ name: `b${i}` }))
const ports = await Promise.all(backends.map(async (backend, i) => listen(backend, 3001 + i)))
const upstreams = ports.map(port => `http://127.0.0.1:${port}`).join(',')

const result = loadConfig({ UPSTREAMS: upstreams, ...process.env })
if (!result.ok) {
  for (const problem of result.problems) process.stderr.write(`sluice: ${problem}\n`)
  process.exit(1)
}
const { config } = result
const app = await buildApp(config, {
  logger: {
    level: config.logLevel,
    transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss', ignore: 'pid,hostname' } }
  }
})

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    app.shuttingDown = true
    app.close()
      .then(() => Promise.all(backends.map(async b => { b.server.closeAllConnections(); await new Promise(resolve => b.server.close(resolve)) })))
      .then(() => process.exit(0), () => process.exit(1))
  })
}

await app.listen({ port: config.port, host: config.host })
app.log.info(`demo: upstreams b1..b3 on ${upstreams}; try: curl localhost:${config.port}/`)

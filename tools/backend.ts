import { parseArgs } from 'node:util'
import { createBackend } from './backend/app.js'

// npm run backend -- --port 3001 --name b1 [--delay 200] [--fail-rate 0.1] [--fail-status 503] [--unhealthy]
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '3001' },
    host: { type: 'string', default: '127.0.0.1' },
    name: { type: 'string' },
    delay: { type: 'string', default: '0' },
    'fail-rate': { type: 'string', default: '0' },
    'fail-status': { type: 'string', default: '503' },
    unhealthy: { type: 'boolean', default: false }
  }
})

const port = Number(values.port)
const failRate = Number(values['fail-rate'])
if (!Number.isInteger(port) || port < 0 || port > 65535) usage('--port must be an integer 0..65535')
if (!(failRate >= 0 && failRate <= 1)) usage('--fail-rate must be a number 0..1')

const backend = createBackend({
  name: values.name ?? `backend-${port}`,
  delayMs: Number(values.delay) || 0,
  failRate,
  failStatus: Number(values['fail-status']) || 503,
  healthy: !values.unhealthy
})
backend.server.listen(port, values.host, () => {
  const address = backend.server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port
  process.stdout.write(`backend ${backend.behaviour.name} listening on http://${values.host}:${bound}\n`)
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { backend.server.close(() => process.exit(0)); backend.server.closeAllConnections() })
}

function usage (message: string): never {
  process.stderr.write(`backend: ${message}\n`)
  process.exit(1)
}

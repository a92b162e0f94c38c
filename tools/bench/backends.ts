import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

// The bench's upstreams: N minimal HTTP servers in this one process (so their CPU is separate from
// the gateway's and the load generator's), each on a free port of 127.0.0.1, answering every
// request 200 "ok" with `x-served-by`. Prints one JSON line `{"ports":[...]}` once all listen.
// Usage: node dist/tools/bench/backends.js [count]
const count = Number(process.argv[2] ?? '3')
if (!Number.isInteger(count) || count < 1 || count > 16) {
  process.stderr.write('bench backends: count must be an integer 1..16\n')
  process.exit(1)
}

const servers: Server[] = []
for (let i = 1; i <= count; i++) {
  const name = `b${i}`
  const headers = { 'content-type': 'text/plain', 'content-length': '2', 'x-served-by': name }
  // Every path (the /health of active checks included) answers the same "ok".
  const server = createServer((_req, res) => {
    res.writeHead(200, headers)
    res.end('ok')
  })
  // Keep idle upstream connections open between rounds, like a tuned backend would.
  server.keepAliveTimeout = 65_000
  servers.push(server)
}

const ports = await Promise.all(servers.map(async server => await new Promise<number>((resolve, reject) => {
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
})))
process.stdout.write(JSON.stringify({ ports }) + '\n')

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const server of servers) {
      server.close()
      server.closeAllConnections()
    }
    process.exit(0)
  })
}

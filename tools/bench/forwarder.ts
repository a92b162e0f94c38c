import { createServer, type IncomingHttpHeaders } from 'node:http'
import { Pool } from 'undici'

// The Node floor of the bench: the least a Node proxy can do per request. http.createServer plus
// one undici keep-alive Pool per upstream, round robin, the response streamed back; no framework,
// no limiter, no hop-by-hop header handling, no retries. Not a product: a yardstick for Sluice.
// Usage: PORT=8090 UPSTREAMS=http://127.0.0.1:9001,... node dist/tools/bench/forwarder.js
const port = Number(process.env.PORT ?? '8090')
const upstreams = (process.env.UPSTREAMS ?? '').split(',').filter(Boolean)
if (upstreams.length === 0 || !Number.isInteger(port)) {
  process.stderr.write('forwarder: set PORT and UPSTREAMS (comma-separated origins)\n')
  process.exit(1)
}
const pools = upstreams.map(origin => new Pool(origin, { connections: 128, pipelining: 1 }))
let next = 0

const server = createServer((req, res) => {
  const pool = pools[next] as Pool
  next = (next + 1) % pools.length
  const headers: IncomingHttpHeaders = { ...req.headers }
  delete headers.connection
  delete headers['keep-alive']
  pool.request({ path: req.url ?? '/', method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
    .then(upstream => {
      const out: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(upstream.headers)) {
        if (value !== undefined && name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') out[name] = value
      }
      res.writeHead(upstream.statusCode, out)
      upstream.body.pipe(res)
    }, () => {
      res.writeHead(502).end()
    })
})
server.keepAliveTimeout = 65_000
server.listen(port, process.env.HOST ?? '127.0.0.1')
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { server.close(); server.closeAllConnections(); process.exit(0) })
}

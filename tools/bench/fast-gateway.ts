import gateway from 'fast-gateway'

// A peer for the bench (a dev dependency): fast-gateway 5 (restana + fast-proxy-lite with a
// keep-alive http.Agent), round robin by choosing the target per request, as in
// ../shared/bench/BASELINE.md. fast-gateway has no balancer of its own.
// Usage: PORT=8090 UPSTREAMS=http://127.0.0.1:9001,... node dist/tools/bench/fast-gateway.js
const port = Number(process.env.PORT ?? '8090')
const upstreams = (process.env.UPSTREAMS ?? '').split(',').filter(Boolean)
if (upstreams.length === 0 || !Number.isInteger(port)) {
  process.stderr.write('fast-gateway: set PORT and UPSTREAMS (comma-separated origins)\n')
  process.exit(1)
}
type ProxyFn = (req: unknown, res: unknown, url: string, opts: { base?: string }) => unknown

let next = 0
const server = gateway({
  enableServicesEndpoint: false,
  routes: [{
    prefix: '',
    target: upstreams[0] as string,
    proxyHandler: (req: unknown, res: unknown, url: string, proxy: ProxyFn, proxyOpts: { base?: string }) => {
      proxyOpts.base = upstreams[next] as string
      next = (next + 1) % upstreams.length
      return proxy(req, res, url, proxyOpts)
    }
  }]
})
await server.start(port, process.env.HOST ?? '127.0.0.1')
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { server.close().finally(() => process.exit(0)) })
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import { WebSocketServer } from 'ws'

/** How a demo upstream behaves; mutable at run time so experiments and tests can flip it. */
export interface BackendBehaviour {
  /** Name in the JSON body and the `x-served-by` header. */
  name: string
  /** Whether GET /health passes. */
  healthy: boolean
  /** Delay before every answer, in ms. */
  delayMs: number
  /** Share of requests (0..1) answered with `failStatus`. */
  failRate: number
  failStatus: number
}

export interface Backend {
  server: Server
  behaviour: BackendBehaviour
  /** Requests answered, by path (health checks included), for tests that count traffic. */
  hits: Map<string, number>
}

/**
 * A demo upstream: answers JSON naming itself, echoes bodies on /echo and WebSocket messages,
 * and can be told to be slow or failing, by its behaviour or per request:
 * `?delay=ms`, `?status=code`, `?size=bytes` (a body of that many bytes).
 */
export function createBackend (options: Partial<BackendBehaviour> & { name: string }): Backend {
  const behaviour: BackendBehaviour = { healthy: true, delayMs: 0, failRate: 0, failStatus: 503, ...options }
  const hits = new Map<string, number>()
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://backend')
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1)
    res.setHeader('x-served-by', behaviour.name)
    const delay = Number(url.searchParams.get('delay') ?? behaviour.delayMs)
    if (delay > 0) {
      const timer = setTimeout(() => answer(req, res, url, behaviour), delay)
      res.on('close', () => clearTimeout(timer))
    } else {
      answer(req, res, url, behaviour)
    }
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (socket, req) => {
    socket.send(JSON.stringify({ server: behaviour.name, path: req.url }))
    socket.on('message', (data, binary) => socket.send(data, { binary }))
  })
  return { server, behaviour, hits }
}

function answer (req: IncomingMessage, res: ServerResponse, url: URL, behaviour: BackendBehaviour): void {
  if (url.pathname === '/health') {
    res.statusCode = behaviour.healthy ? 200 : 503
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ status: behaviour.healthy ? 'ok' : 'failing', server: behaviour.name }))
    return
  }
  if (url.pathname === '/echo') {
    res.setHeader('content-type', req.headers['content-type'] ?? 'application/octet-stream')
    pipeline(req, res, () => {})
    return
  }
  const forced = url.searchParams.get('status')
  const failing = behaviour.failRate > 0 && Math.random() < behaviour.failRate
  res.statusCode = forced !== null ? Number(forced) : failing ? behaviour.failStatus : 200
  const size = Number(url.searchParams.get('size') ?? 0)
  if (size > 0) {
    res.setHeader('content-type', 'application/octet-stream')
    res.end(Buffer.alloc(size, 'x'))
    return
  }
  req.resume()
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ server: behaviour.name, method: req.method, path: url.pathname, query: url.search, headers: req.headers }))
}

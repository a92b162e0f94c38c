import { createServer, type AddressInfo } from 'node:net'

/** A TCP port of 127.0.0.1 that was free a moment ago (never one of `avoid`). */
export async function freePort (avoid: number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo
        server.close(() => resolve(port))
      })
    })
    if (!avoid.includes(port)) return port
  }
}

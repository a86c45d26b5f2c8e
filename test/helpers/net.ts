/**
 * Network helpers shared by the tests and the benchmarks.
 */
import { createServer, type AddressInfo } from 'node:net'

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for programs that cannot listen on port 0
 * and report back (redis-server, the CLI). Another process can take it in between; callers that
 * start a server on it retry or fail clearly.
 */
export const freePort = async (): Promise<number> => await new Promise((resolve, reject) => {
  const server = createServer()
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resolve(port))
  })
})

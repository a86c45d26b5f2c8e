/**
 * Helpers for the multi-instance signaling tests: a throwaway `redis-server` on a free loopback
 * port, signaling instances sharing it (in this process, or as CLI child processes that a test
 * can SIGKILL), and a TCP balancer in front of them so that clients of a dead instance reconnect
 * to a live one. Everything is torn down by the helper that started it, when the test finishes.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, connect as connectTcp, type AddressInfo, type Server, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'
import { ENV_NAMES } from '../../signaling/cli-args.js'
import { createSignalingServer, type SignalingServer, type SignalingServerOptions } from '../../signaling/index.js'
import { waitFor, withTimeout } from './wait.js'
import { freePort } from './net.js'

export const REDIS_MISSING = "install Debian's redis-server: apt-get install -y redis-server"

const CLI = fileURLToPath(new URL('../../dist/signaling/cli.js', import.meta.url))

/** Throws (never skips) when redis-server is not installed. */
export const requireRedisServer = (): void => {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) throw new Error(REDIS_MISSING)
}

const exited = (child: ChildProcess): Promise<void> => new Promise((resolve) => {
  if (child.exitCode !== null || child.signalCode !== null) resolve()
  else child.once('exit', () => resolve())
})

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Stops the server (SIGKILL: no goodbye to its clients) and resolves once it has exited. */
  stop: () => Promise<void>
  /** Starts it again on the same port, empty. */
  start: () => Promise<void>
}

/** Starts `redis-server` on a free loopback port, without persistence; stopped when the test ends. */
export const startRedis = async (): Promise<RedisServer> => {
  requireRedisServer()
  const port = await freePort()
  let child: ChildProcess | null = null

  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    child = proc
    let output = ''
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    await waitFor(() => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${output}`)
      return output.includes('Ready to accept connections')
    }, { timeout: 15_000, what: `redis-server on port ${port} to be ready` })
  }

  const stop = async (): Promise<void> => {
    const proc = child
    child = null
    if (proc === null) return
    proc.kill('SIGKILL')
    await withTimeout(exited(proc), 10_000, 'redis-server to exit')
  }

  onTestFinished(stop)
  await start()
  return { port, url: `redis://127.0.0.1:${port}`, stop, start }
}

/** Waits until the server's Redis link is up (publishes and counts flow). */
export const waitForLink = async (server: SignalingServer, timeout = 15_000): Promise<void> => {
  await waitFor(() => server.stats().redis?.state === 'up', { timeout, what: `the Redis link of ${server.url} to be up` })
}

/** `n` in-process instances on one Redis, each with its link up; closed when the test ends. */
export const startInstances = async (n: number, redisUrl: string, options: SignalingServerOptions = {}): Promise<SignalingServer[]> => {
  const servers: SignalingServer[] = []
  for (let i = 0; i < n; i++) {
    const server = await createSignalingServer({ port: 0, host: '127.0.0.1', redisUrl, ...options })
    onTestFinished(async () => await server.close())
    servers.push(server)
  }
  await Promise.all(servers.map(async (server) => await waitForLink(server)))
  return servers
}

export interface CliInstance {
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  stderr: () => string
  /** SIGKILL by default; resolves once the process has exited. */
  kill: (signal?: NodeJS.Signals) => Promise<void>
}

/** The CLI (`dist/signaling/cli.js`) in a child process, on a free port, sharing `redisUrl`. */
export const startCliInstance = async (redisUrl: string, args: string[] = []): Promise<CliInstance> => {
  const env = { ...process.env }
  for (const name of [...ENV_NAMES, 'npm_command']) delete env[name]
  const child = spawn(process.execPath, [CLI, '--port', '0', '--redis-url', redisUrl, '--log-level', 'warn', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    await withTimeout(exited(child), 10_000, 'the signaling CLI to exit')
  }
  onTestFinished(async () => await kill())
  const line = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`the CLI exited with ${child.exitCode}: ${stderr}`)
    return /^signaling server listening on (ws:\/\/\S+)\n/.exec(stdout)
  }, { timeout: 15_000, what: 'the CLI to print its URL' })
  const url = line[1] as string
  const port = Number(new URL(url).port)
  await waitFor(async () => await isRedisUp(port), { timeout: 15_000, interval: 50, what: `the Redis link of ${url} to be up` })
  return { url, port, child, stderr: () => stderr, kill }
}

/** GET /healthz of the instance on `port`. */
export const healthOf = async (port: number): Promise<{ status: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`)
  return await res.json() as { status: string }
}

/** True when the instance on `port` reports its Redis link up on /metrics. */
export const isRedisUp = async (port: number): Promise<boolean> => {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  return (await res.text()).split('\n').includes('signaling_redis_up 1')
}

export interface Balancer {
  /** `ws://127.0.0.1:PORT`: give this to clients. */
  readonly url: string
  /** The backend port new connections go to; when it refuses, the next live one in `backends` is used. */
  target: number
  /** Backend ports tried in order after `target` refuses. */
  backends: number[]
  /** Backend port of each accepted connection, in order. */
  readonly routed: number[]
}

/**
 * A TCP load balancer on a free loopback port: each connection goes to `target`, or to the first
 * backend that accepts when `target` is dead. Closing a backend connection closes the client's.
 */
export const startBalancer = async (backends: number[]): Promise<Balancer> => {
  const sockets = new Set<Socket>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const dial = async (ports: number[]): Promise<{ socket: Socket, port: number } | null> => {
    for (const port of ports) {
      const socket = await new Promise<Socket | null>((resolve) => {
        const attempt = connectTcp({ host: '127.0.0.1', port })
        attempt.once('connect', () => resolve(attempt))
        attempt.once('error', () => resolve(null))
      })
      if (socket !== null) return { socket, port }
    }
    return null
  }
  const balancer: Balancer = { url: '', target: backends[0] ?? 0, backends, routed: [] }
  const server: Server = createServer((client) => {
    track(client)
    client.pause()
    dial([balancer.target, ...balancer.backends.filter((port) => port !== balancer.target)]).then((upstream) => {
      if (upstream === null || client.destroyed) {
        client.destroy()
        upstream?.socket.destroy()
        return
      }
      track(upstream.socket)
      balancer.routed.push(upstream.port)
      client.pipe(upstream.socket)
      upstream.socket.pipe(client)
      client.once('close', () => upstream.socket.destroy())
      upstream.socket.once('close', () => client.destroy())
      client.resume()
    }, () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return Object.assign(balancer, { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}` })
}

/**
 * Helpers for the signaling server tests: a server on a free port and raw WebSocket clients, each
 * torn down when the test that made it finishes. Clients keep an inbox so a test can wait for the
 * next message that matches, in order, without sleeping.
 */

import { request } from 'node:http'
import { onTestFinished } from 'vitest'
import { WebSocket, type ClientOptions } from 'ws'
import { createSignalingServer, type SignalingServer, type SignalingServerOptions } from '../../signaling/index.js'
import type { ServerMessage } from '../../signaling/protocol.js'
import { withTimeout } from './wait.js'

export const startServer = async (options: SignalingServerOptions = {}): Promise<SignalingServer> => {
  const server = await createSignalingServer({ port: 0, host: '127.0.0.1', ...options })
  onTestFinished(async () => await server.close())
  return server
}

export interface Closed {
  code: number
  reason: string
}

export interface TestClient {
  readonly ws: WebSocket
  /** Sends `message` as JSON text. */
  send: (message: unknown) => void
  /** Sends a frame as is: text unless `binary`. */
  sendRaw: (data: string | Buffer, binary?: boolean) => void
  /** Resolves with (and removes from the inbox) the first message that matches, waiting if needed. */
  next: (match?: (message: ServerMessage) => boolean, ms?: number) => Promise<ServerMessage>
  /** Messages received and not yet taken by `next`. */
  readonly inbox: ServerMessage[]
  /** Pings and waits for the pong: everything sent before has been handled by the server. */
  roundTrip: () => Promise<void>
  subscribe: (...topics: string[]) => Promise<void>
  publish: (topic: string, data: unknown) => void
  /** Resolves when the socket is closed, with the code and reason the client saw. */
  readonly closed: Promise<Closed>
  close: () => Promise<Closed>
}

/**
 * How a test client connects: `localAddress` binds its socket to a loopback address of its own
 * (all of 127.0.0.0/8 is loopback, so each test client can be a different client address), and
 * `headers` adds request headers (`Origin`, `X-Forwarded-For`).
 */
export interface ConnectOptions {
  timeout?: number
  localAddress?: string
  headers?: Record<string, string>
}

const clientOptions = ({ localAddress, headers }: ConnectOptions): ClientOptions => ({
  ...(localAddress === undefined ? {} : { localAddress }),
  ...(headers === undefined ? {} : { headers })
})

/** What `connect` rejects with when the server answers the upgrade with an HTTP status. */
export class RefusedUpgrade extends Error {
  constructor (readonly status: number) {
    super(`the upgrade was refused with HTTP ${status}`)
    this.name = 'RefusedUpgrade'
  }
}

export const connect = async (url: string, options: ConnectOptions = {}): Promise<TestClient> => {
  const ms = options.timeout ?? 5_000
  const ws = new WebSocket(url, clientOptions(options))
  onTestFinished(() => ws.terminate())
  const inbox: ServerMessage[] = []
  const waiters = new Set<() => void>()
  ws.on('message', (data) => {
    inbox.push(JSON.parse(String(data)) as ServerMessage)
    for (const wake of waiters) wake()
  })
  ws.on('error', () => {})
  const closed = new Promise<Closed>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_req, res) => {
      reject(new RefusedUpgrade(res.statusCode ?? 0))
      res.resume()
      ws.terminate()
    })
    ws.once('close', (code) => reject(new Error(`closed with ${code} before opening`)))
  }), ms, `connection to ${url}`)

  const next = async (match: (message: ServerMessage) => boolean = () => true, timeout = 5_000): Promise<ServerMessage> => {
    let wake: (() => void) | undefined
    const found = new Promise<ServerMessage>((resolve) => {
      wake = () => {
        const index = inbox.findIndex(match)
        if (index === -1) return
        waiters.delete(wake as () => void)
        resolve(inbox.splice(index, 1)[0] as ServerMessage)
      }
      waiters.add(wake)
      wake()
    })
    return await withTimeout(found, timeout, 'a matching message').finally(() => waiters.delete(wake as () => void))
  }

  const client: TestClient = {
    ws,
    inbox,
    closed,
    next,
    send: (message) => ws.send(JSON.stringify(message)),
    sendRaw: (data, binary = false) => ws.send(data, { binary }),
    roundTrip: async () => {
      ws.send(JSON.stringify({ type: 'ping' }))
      await next((m) => m.type === 'pong')
    },
    subscribe: async (...topics) => {
      client.send({ type: 'subscribe', topics })
      await client.roundTrip()
    },
    publish: (topic, data) => client.send({ type: 'publish', topic, data }),
    close: async () => {
      ws.close()
      return await withTimeout(closed, 5_000, 'the client to close')
    }
  }
  return client
}

/** Connects, or resolves with the HTTP status the upgrade was refused with. */
export const attempt = async (url: string, options: ConnectOptions = {}): Promise<TestClient | number> => {
  try {
    return await connect(url, options)
  } catch (err) {
    if (err instanceof RefusedUpgrade) return err.status
    throw err
  }
}

/** Connects `n` clients. */
export const connectMany = async (url: string, n: number, options: ConnectOptions = {}): Promise<TestClient[]> =>
  await Promise.all(Array.from({ length: n }, async () => await connect(url, options)))

/** Attempts a WebSocket upgrade that the server should refuse; resolves with the HTTP status. */
export const refusedStatus = async (url: string, options: ConnectOptions = {}): Promise<number> => {
  const ws = new WebSocket(url, clientOptions(options))
  onTestFinished(() => ws.terminate())
  ws.on('error', () => {})
  return await withTimeout(new Promise<number>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
    })
    ws.once('open', () => reject(new Error('the upgrade was accepted')))
  }), 5_000, `a refused upgrade at ${url}`)
}

export interface HttpResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A raw HTTP request: the path is sent exactly as given (fetch would normalize `..`). */
export const httpGet = async (server: SignalingServer, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<HttpResult> =>
  await httpRequest(server.port, path, method, headers)

export const httpRequest = async (port: number, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<HttpResult> =>
  await withTimeout(new Promise<HttpResult>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  }), 5_000, `HTTP ${method} ${path}`)

/**
 * Attempts a WebSocket upgrade that the server should accept and close at once (a refused token);
 * resolves with the close code and reason, and what was received before it.
 */
export const refusedClose = async (url: string, options: ConnectOptions = {}): Promise<Closed & { received: string[] }> => {
  const ws = new WebSocket(url, clientOptions(options))
  onTestFinished(() => ws.terminate())
  ws.on('error', () => {})
  const received: string[] = []
  ws.on('message', (data) => received.push(String(data)))
  return await withTimeout(new Promise<Closed & { received: string[] }>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`the upgrade was refused with HTTP ${res.statusCode ?? 0}`)))
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), received }))
  }), 5_000, `a closed connection at ${url}`)
}

type Publish = Extract<ServerMessage, { type: 'publish' }>

/** Matches a publish of `topic` whose data is `{ mark }`. */
export const marked = (topic: string, mark: string) => (message: ServerMessage): boolean =>
  message.type === 'publish' && message.topic === topic && (message.data as { mark?: unknown } | null)?.mark === mark

/** Publishes a fresh mark from `client` and resolves with the `clients` count of its echo. */
export const echoCount = async (client: TestClient, topic: string): Promise<number> => {
  const mark = Math.random().toString(36).slice(2)
  client.publish(topic, { mark })
  return (await client.next(marked(topic, mark), 10_000) as Publish).clients
}

/**
 * Subscribes and waits for the echo of a publish. With several instances, an instance holds its
 * first publish of a topic until its Redis subscription is in place: after the echo, publishes
 * from every instance reach `client`.
 */
export const join = async (client: TestClient, topic: string): Promise<number> => {
  client.send({ type: 'subscribe', topics: [topic] })
  return await echoCount(client, topic)
}

/**
 * Every client publishes `{ mark: label-i }` and waits for every client's mark; resolves with what
 * each received, in client order. With several instances, afterwards each knows every member.
 */
export const everyoneHears = async (clients: TestClient[], topic: string, label: string): Promise<Publish[][]> => {
  clients.forEach((client, i) => client.publish(topic, { mark: `${label}-${i}` }))
  return await Promise.all(clients.map(async (client) =>
    await Promise.all(clients.map(async (_, i) => await client.next(marked(topic, `${label}-${i}`), 10_000) as Publish))))
}

/** A topic name no other test uses. */
export const uniqueTopic = (prefix = 'topic'): string => `${prefix}-${Math.random().toString(36).slice(2, 10)}`

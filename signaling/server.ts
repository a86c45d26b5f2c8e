/**
 * `createSignalingServer`: the HTTP server, the WebSocket upgrade with its admission checks
 * (shutdown, connection limit, access token), the heartbeat, stats and a graceful close.
 * Per-connection behaviour lives in connection.ts, topics in relay.ts (one process) or
 * redis-relay.ts (several instances sharing a Redis).
 */

import { STATUS_CODES, createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve as resolvePath } from 'node:path'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type ServerOptions } from 'ws'
import { tokenFromUrl, verifyToken, type Grant } from './auth.js'
import { Connection, type ConnectionContext } from './connection.js'
import { createHttpHandler } from './http.js'
import { createMetricsRegistry } from './metrics.js'
import { resolveOptions, type SignalingServerOptions } from './options.js'
import { MAX_DATA_DEPTH } from './protocol.js'
import { createRedisRelay } from './redis-relay.js'
import { createLocalRelay, type TopicRelay } from './relay.js'
import { createCounters, type SignalingStats } from './stats.js'

export interface SignalingServer {
  /** WebSocket URL to give y-webrtc, e.g. `ws://127.0.0.1:4444`. */
  readonly url: string
  /** The port listened on (the real one when `port: 0` was asked). */
  readonly port: number
  /**
   * Stops accepting, closes every connection with 1001 and resolves once all sockets are gone
   * (clients that ignore the close are cut after `closeTimeout`). Idempotent.
   */
  close: () => Promise<void>
  /** A snapshot of levels and counters. */
  stats: () => SignalingStats
}

const ignore = (): void => {}

/** Answers an upgrade request with a plain HTTP error and closes the socket. */
const refuseUpgrade = (socket: Duplex, status: number, message: string): void => {
  if (socket.destroyed) return
  const body = `${message}\n`
  socket.once('finish', () => socket.destroy())
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

const formatUrl = (host: string, port: number): string =>
  `ws://${host.includes(':') ? `[${host}]` : host}:${port}`

export const createSignalingServer = async (options: SignalingServerOptions = {}): Promise<SignalingServer> => {
  const opts = resolveOptions(options)
  const { logger } = opts
  const counters = createCounters()
  const redis = opts.redis === null
    ? null
    : createRedisRelay({ ...opts.redis, maxPayload: opts.maxPayload, maxDataDepth: MAX_DATA_DEPTH, logger })
  const relay: TopicRelay = redis ?? createLocalRelay()
  // Every upgraded socket until it is gone, counted or not: the one per-connection registry.
  const connections = new Set<Connection>()
  /** Connections released (no longer counting) whose socket is still closing. */
  let releasing = 0
  let pendingUpgrades = 0
  let allClosed: (() => void) | null = null
  let nextId = 1
  let closing = false
  let closed: Promise<void> | null = null

  const context: ConnectionContext = {
    relay,
    counters,
    logger,
    limits: {
      parse: { maxTopics: opts.maxTopicsPerConnection, maxTopicLength: opts.maxTopicLength, maxDataDepth: MAX_DATA_DEPTH },
      rate: { rate: opts.messagesPerSecond, burst: opts.messageBurst },
      maxTopicsPerConnection: opts.maxTopicsPerConnection,
      maxBufferedBytes: opts.maxBufferedBytes
    },
    onRelease: (connection) => {
      releasing++
      logger.debug({ conn: connection.id }, 'connection released')
    },
    onClose: (connection) => {
      releasing--
      connections.delete(connection)
      if (connections.size === 0) allClosed?.()
    }
  }

  const levels = (): { connections: number, topics: number, subscriptions: number } => ({
    connections: connections.size - releasing,
    topics: relay.topicCount,
    subscriptions: relay.subscriptionCount
  })
  const registry = createMetricsRegistry(counters, levels, redis === null ? null : () => redis.stats())

  const wss = new WebSocketServer<typeof Connection>({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: opts.maxPayload,
    WebSocket: Connection,
    // Connection answers pings itself, within its rate limit.
    autoPong: false,
    // Not in @types/ws yet: how long ws waits for the peer's close frame before cutting the socket.
    closeTimeout: opts.closeTimeout
  } as ServerOptions<typeof Connection>)

  const http = createServer(createHttpHandler({
    health: () => ({
      status: closing ? 'closing' : 'ok',
      connections: connections.size - releasing,
      topics: relay.topicCount,
      ...(redis === null ? {} : { redis: redis.state })
    }),
    registry,
    staticDir: opts.staticDir === null ? null : resolvePath(opts.staticDir),
    logger
  }))

  const accept = (connection: Connection, req: IncomingMessage, grant: Grant | null): void => {
    connection.attach(nextId++, context, grant)
    connections.add(connection)
    logger.debug({ conn: connection.id, ip: req.socket.remoteAddress }, 'connection opened')
  }

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', ignore)
    if (closing) {
      refuseUpgrade(socket, 503, 'server shutting down')
      return
    }
    if (connections.size + pendingUpgrades >= opts.maxConnections) {
      counters.rejections.connection_limit++
      refuseUpgrade(socket, 503, 'too many connections')
      return
    }
    let grant: Grant | null = null
    pendingUpgrades++
    try {
      if (opts.authKey !== null) {
        const token = tokenFromUrl(req.url)
        grant = token === null ? null : await verifyToken(token, opts.authKey)
        if (grant === null) {
          counters.rejections.unauthorized++
          refuseUpgrade(socket, 401, 'a valid token is required')
          return
        }
      }
      if (closing) {
        refuseUpgrade(socket, 503, 'server shutting down')
        return
      }
      if (socket.destroyed) return
      wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('error', ignore)
        accept(ws, req, grant)
      })
    } finally {
      pendingUpgrades--
    }
  }

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrade(req, socket, head).catch((err: unknown) => {
      logger.error({ err }, 'upgrade failed')
      socket.destroy()
    })
  })

  const heartbeat = setInterval(() => {
    for (const connection of connections) connection.heartbeat()
  }, opts.heartbeatInterval)
  heartbeat.unref()

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(opts.port, opts.host, () => {
      http.off('error', reject)
      resolve()
    })
  }).catch(async (err: unknown) => {
    clearInterval(heartbeat)
    await relay.close()
    throw err
  })
  http.on('error', (err) => logger.error({ err }, 'http server error'))

  const port = (http.address() as AddressInfo).port
  const url = formatUrl(opts.host, port)
  logger.info({ url }, 'signaling server listening')

  const shutdown = async (): Promise<void> => {
    closing = true
    clearInterval(heartbeat)
    const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()))
    http.closeIdleConnections()
    await new Promise<void>((resolve) => {
      allClosed = resolve
      if (connections.size === 0) resolve()
      for (const connection of connections) connection.shutdown()
    })
    http.closeAllConnections()
    await httpClosed
    wss.close()
    // After every connection let go of its topics, so the relay can tell the others it has none.
    await relay.close()
    registry.clear()
    logger.info({ url }, 'signaling server closed')
  }

  return {
    url,
    port,
    close: async () => {
      closed ??= shutdown()
      await closed
    },
    stats: () => ({
      ...levels(),
      messagesIn: counters.messagesIn,
      messagesOut: counters.messagesOut,
      rejections: { ...counters.rejections },
      ...(redis === null ? {} : { redis: redis.stats() })
    })
  }
}

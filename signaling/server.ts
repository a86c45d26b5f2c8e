/**
 * `createSignalingServer`: the HTTP server, the WebSocket upgrade with its admission checks, the
 * heartbeat, stats and a graceful close. Per-connection behaviour lives in connection.ts, topics in
 * relay.ts (one process) or redis-relay.ts (several instances sharing a Redis).
 *
 * Admission runs cheapest first, and every refusal before the token costs a short HTTP answer and
 * nothing more: shutting down (503), the client address's rate or count (429), the server's count
 * (503), the page's origin (403). A missing or bad token is answered differently: the upgrade is
 * accepted and closed at once with 4401, the one refusal a browser's WebSocket can read.
 */

import { STATUS_CODES, createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve as resolvePath } from 'node:path'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type ServerOptions } from 'ws'
import { AddressTable, RefusalLog, type AddressEntry } from './address-limits.js'
import { createAccessCheck, tokenFromUrl, type Grant } from './auth.js'
import { addressGroup, clientAddress, forwardedChain, parseAddress } from './client-address.js'
import { Connection, type ConnectionContext } from './connection.js'
import { createDevTokens } from './dev-tokens.js'
import { createHttpHandler, createMetricsHandler } from './http.js'
import { roomTokenVerifier } from './lock-service.js'
import { createLocks } from './lock-setup.js'
import { createMetricsRegistry } from './metrics.js'
import { MAX_IDLE_ADDRESSES, MAX_LOGGED_ADDRESSES, REFUSAL_LOG_INTERVAL, resolveOptions, type SignalingServerOptions } from './options.js'
import { isOriginAllowed } from './origins.js'
import { CloseCode, MAX_DATA_DEPTH } from './protocol.js'
import { createRedisRelay } from './redis-relay.js'
import { createLocalRelay, type TopicRelay } from './relay.js'
import { createSenderHandles } from './sender-handle.js'
import { createCounters, type RejectionReason, type SignalingStats } from './stats.js'
import { issueTurnCredentials } from './turn.js'

export interface SignalingServer {
  /** WebSocket URL to give y-webrtc, e.g. `ws://127.0.0.1:4444`. */
  readonly url: string
  /** The port listened on (the real one when `port: 0` was asked). */
  readonly port: number
  /** `http://HOST:PORT/metrics` when `metricsPort` is set, else null (metrics are on `url`'s port). */
  readonly metricsUrl: string | null
  /**
   * Stops accepting, closes every connection with 1001 and resolves once all sockets are gone
   * (clients that ignore the close are cut after `closeTimeout`). Idempotent.
   */
  close: () => Promise<void>
  /** A snapshot of levels and counters. */
  stats: () => SignalingStats
}

/** How often addresses whose limits have refilled are forgotten, and held-back refusals logged. */
const SWEEP_INTERVAL = 10_000

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

/**
 * Reading `remoteAddress` makes Node keep `{ address, family, port }` on the socket for its whole
 * life (88 B, about 3 % of what an idle connection holds). The server reads it once, at the
 * upgrade; Node reads the handle again if anything asks later.
 */
const forgetPeerName = (socket: Duplex): void => {
  (socket as Duplex & { _peername?: unknown })._peername = undefined
}

const formatHost = (host: string): string => host.includes(':') ? `[${host}]` : host

const isLoopback = (host: string): boolean => {
  const address = parseAddress(host)
  return host === 'localhost' || address === '::1' || (address?.startsWith('127.') ?? false)
}

const listen = async (server: Server, port: number, host: string): Promise<number> => {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return (server.address() as AddressInfo).port
}

export const createSignalingServer = async (options: SignalingServerOptions = {}): Promise<SignalingServer> => {
  const opts = resolveOptions(options)
  const { logger } = opts
  const devTokens = opts.devTokens ? await createDevTokens({ logger, exposed: !isLoopback(opts.host), limits: { maxRoomLength: opts.maxTopicLength } }) : null
  const issuers = [...(opts.issuerKey === null ? [] : [opts.issuerKey]), ...(devTokens === null ? [] : [devTokens.publicKey])]
  const checkAccess = createAccessCheck({ secret: opts.authKey, issuers })
  const counters = createCounters()
  // It may refuse the lockKey: before anything else holds a resource. A server that knows the
  // rooms' issuers checks lock requests against their room tokens too.
  const verifyRoomToken = opts.locks.verifyRoomToken ?? (issuers.length === 0 ? null : roomTokenVerifier(issuers))
  const locks = await createLocks({ ...opts.locks, verifyRoomToken }, opts.redis, counters, logger)
  const redis = opts.redis === null
    ? null
    : createRedisRelay({ ...opts.redis, maxPayload: opts.maxPayload, maxDataDepth: MAX_DATA_DEPTH, logger })
  const relay: TopicRelay = redis ?? createLocalRelay()
  const addresses = new AddressTable(opts.addressLimits, MAX_IDLE_ADDRESSES)
  const senderHandle = createSenderHandles(opts.senderKey ?? undefined)
  const refusals = new RefusalLog(logger, REFUSAL_LOG_INTERVAL, MAX_LOGGED_ADDRESSES)
  // Every upgraded socket until it is gone, counted or not: the one per-connection registry.
  const connections = new Set<Connection>()
  /** Connections that count: attached and not released. */
  let live = 0
  let pendingUpgrades = 0
  let allClosed: (() => void) | null = null
  let warnedAboutProxyHeaders = false
  let nextId = 1
  let closing = false
  let closed: Promise<void> | null = null

  const context: ConnectionContext = {
    relay,
    locks,
    counters,
    logger,
    addresses,
    refusals,
    limits: {
      parse: { maxTopics: opts.maxTopicsPerConnection, maxTopicLength: opts.maxTopicLength, maxDataDepth: MAX_DATA_DEPTH },
      rate: { rate: opts.messagesPerSecond, burst: opts.messageBurst },
      maxTopicsPerConnection: opts.maxTopicsPerConnection,
      maxBufferedBytes: opts.maxBufferedBytes
    },
    onRelease: (connection, clean) => {
      live--
      locks.released(connection, clean)
      logger.debug({ conn: connection.id }, 'connection released')
    },
    onClose: (connection) => {
      connections.delete(connection)
      if (connection.address !== null) addresses.release(connection.address)
      if (connections.size === 0) allClosed?.()
    }
  }

  const levels = (): { connections: number, topics: number, subscriptions: number, addresses: number } => ({
    connections: live,
    topics: relay.topicCount,
    subscriptions: relay.subscriptionCount,
    addresses: addresses.size
  })
  const registry = createMetricsRegistry(counters, levels, redis === null ? null : () => redis.stats(), () => locks.stats())
  const metrics = { registry, tokenDigest: opts.metrics.tokenDigest }

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
    health: () => ({ status: closing ? 'closing' : 'ok' }),
    metrics: opts.metrics.port === null ? metrics : null,
    staticDir: opts.staticDir === null ? null : resolvePath(opts.staticDir),
    devTokens,
    logger
  }))
  const metricsHttp = opts.metrics.port === null ? null : createServer(createMetricsHandler(metrics, logger))

  /** The address limits count under: the peer's, or behind trusted proxies the one they forwarded. */
  const addressOf = (req: IncomingMessage, peer: string): string => {
    const address = parseAddress(peer) ?? peer
    if (opts.trustProxy !== null) {
      return addressGroup(clientAddress(address, forwardedChain(req.headers[opts.proxyHeader], opts.proxyHeader), opts.trustProxy))
    }
    if (!warnedAboutProxyHeaders && (req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined)) {
      warnedAboutProxyHeaders = true
      logger.warn({ address }, 'an upgrade came with a forwarding header but trustProxy is off: every client behind that proxy counts as one address')
    }
    return addressGroup(address)
  }

  const refuse = (socket: Duplex, status: number, message: string, reason: RejectionReason, address: string): void => {
    counters.rejections[reason]++
    refusals.note(address, reason, performance.now())
    refuseUpgrade(socket, status, message)
  }

  const accept = (connection: Connection, entry: AddressEntry, grant: Grant | null): void => {
    connection.attach(nextId++, context, entry, grant)
    live++
    if (opts.turn !== null) {
      const stopTurn = issueTurnCredentials(opts.turn, (frame) => connection.deliver(frame), grant?.expiresAt)
      connection.once('close', stopTurn)
    }
    logger.debug({ conn: connection.id, address: entry.key }, 'connection opened')
  }

  /** The token's grant; null when there is no valid token (`undefined` when none is needed). */
  const grantOf = async (req: IncomingMessage): Promise<Grant | null | undefined> => {
    if (checkAccess === null) return undefined
    const token = tokenFromUrl(req.url)
    return token === null ? null : await checkAccess(token)
  }

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', ignore)
    if (closing) {
      refuseUpgrade(socket, 503, 'server shutting down')
      return
    }
    const peer = (socket as Duplex & { remoteAddress?: string }).remoteAddress
    if (peer === undefined) {
      // The client has already gone.
      socket.destroy()
      return
    }
    const address = addressOf(req, peer)
    forgetPeerName(socket)
    const entry = addresses.admit(address, performance.now())
    if (typeof entry === 'string') {
      refuse(socket, 429, 'too many connections from this address', entry, address)
      return
    }
    if (entry.handle === '') entry.handle = senderHandle(address)
    let handedOver = false
    try {
      if (connections.size + pendingUpgrades >= opts.maxConnections) {
        refuse(socket, 503, 'too many connections', 'connection_limit', address)
        return
      }
      if (!isOriginAllowed(opts.allowedOrigins, req.headers.origin)) {
        refuse(socket, 403, 'origin not allowed', 'forbidden_origin', address)
        return
      }
      pendingUpgrades++
      let grant: Grant | null | undefined
      try {
        grant = await grantOf(req)
      } finally {
        pendingUpgrades--
      }
      if (closing) {
        refuseUpgrade(socket, 503, 'server shutting down')
        return
      }
      if (socket.destroyed) return
      wss.handleUpgrade(req, socket, head, (connection) => {
        handedOver = true
        socket.off('error', ignore)
        connections.add(connection)
        if (grant !== null) {
          accept(connection, entry, grant ?? null)
          return
        }
        counters.rejections.unauthorized++
        refusals.note(address, 'unauthorized', performance.now())
        connection.refuse(context, entry, CloseCode.Unauthorized, 'unauthorized')
      })
    } finally {
      // Refused, or ws turned the handshake down: the address gets its slot back.
      if (!handedOver) addresses.release(entry)
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
  const sweep = setInterval(() => {
    const now = performance.now()
    addresses.sweep(now)
    refusals.sweep(now)
  }, SWEEP_INTERVAL)
  sweep.unref()

  let port: number
  let metricsPort: number | null = null
  try {
    port = await listen(http, opts.port, opts.host)
    if (metricsHttp !== null) metricsPort = await listen(metricsHttp, opts.metrics.port ?? 0, opts.metrics.host)
  } catch (err) {
    clearInterval(heartbeat)
    clearInterval(sweep)
    if (http.listening) await new Promise((resolve) => http.close(resolve))
    await Promise.all([relay.close(), locks.close()])
    throw err
  }
  http.on('error', (err) => logger.error({ err }, 'http server error'))
  metricsHttp?.on('error', (err) => logger.error({ err }, 'metrics server error'))

  const url = `ws://${formatHost(opts.host)}:${port}`
  const metricsUrl = metricsPort === null ? null : `http://${formatHost(opts.metrics.host)}:${metricsPort}/metrics`
  logger.info({ url, ...(metricsUrl === null ? {} : { metricsUrl }) }, 'signaling server listening')
  if (!isLoopback(opts.host)) {
    if (opts.allowedOrigins === null) logger.warn({ url }, 'allowedOrigins is not set: web pages of any site can use this server')
    if (metricsPort === null && opts.metrics.tokenDigest === null) logger.warn({ url }, '/metrics is public: set metricsToken or metricsPort')
  }

  const shutdown = async (): Promise<void> => {
    closing = true
    clearInterval(heartbeat)
    clearInterval(sweep)
    const httpClosed = new Promise<void>((resolve) => http.close(() => resolve()))
    http.closeIdleConnections()
    await new Promise<void>((resolve) => {
      allClosed = resolve
      if (connections.size === 0) resolve()
      for (const connection of connections) connection.shutdown()
    })
    http.closeAllConnections()
    await httpClosed
    if (metricsHttp !== null) {
      const metricsClosed = new Promise<void>((resolve) => metricsHttp.close(() => resolve()))
      metricsHttp.closeAllConnections()
      await metricsClosed
    }
    wss.close()
    // After every connection let go of its topics, so the relay can tell the others it has none.
    await Promise.all([relay.close(), locks.close()])
    registry.clear()
    logger.info({ url }, 'signaling server closed')
  }

  return {
    url,
    port,
    metricsUrl,
    close: async () => {
      closed ??= shutdown()
      await closed
    },
    stats: () => ({
      ...levels(),
      messagesIn: counters.messagesIn,
      messagesOut: counters.messagesOut,
      rejections: { ...counters.rejections },
      ...(redis === null ? {} : { redis: redis.stats() }),
      locks: locks.stats()
    })
  }
}

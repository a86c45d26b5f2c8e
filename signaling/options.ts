/**
 * Options of `createSignalingServer`, their defaults and their validation, in one place so the
 * README table, the CLI flags and the server read the same numbers.
 */

import { createHash } from 'node:crypto'
import type { JWK } from 'jose'
import { issuerProblem, type IssuerKey } from '../src/trust/room-token.js'
import type { AddressLimits } from './address-limits.js'
import { MIN_SECRET_BYTES, secretKey } from './auth.js'
import { toProxyTrust, type ProxyHeader, type ProxyTrust } from './client-address.js'
import { SignalingError } from './errors.js'
import { toLockKey } from './lock-key.js'
import type { VerifyRoomToken } from './lock-service.js'
import { silentLogger, type Logger } from './logger.js'
import { resolveTurnOptions, type TurnOptions, type TurnSettings } from './turn.js'
import { normalizeOrigin } from './origins.js'

/**
 * Every option may be left out or be `undefined` (which counts as left out), so that
 * `{ authSecret: process.env.AUTH_SECRET }` compiles under `exactOptionalPropertyTypes`.
 */
export interface SignalingServerOptions {
  /** TCP port; 0 picks a free one. Default 4444. */
  port?: number | undefined
  /** Interface to listen on. Default `'127.0.0.1'` (loopback only: put a TLS proxy in front, or pass `'0.0.0.0'`). */
  host?: string | undefined
  /** Largest frame (message) in bytes; a larger one closes the connection with 1009. Default 65536. */
  maxPayload?: number | undefined
  /** Open connections at most; further upgrades get HTTP 503. Default 10000. */
  maxConnections?: number | undefined
  /** Topics one connection may be subscribed to at once. Default 100. */
  maxTopicsPerConnection?: number | undefined
  /** Longest topic name in UTF-16 code units. Default 256. */
  maxTopicLength?: number | undefined
  /** Sustained messages per second per connection (token bucket refill). Default 100. */
  messagesPerSecond?: number | undefined
  /** Messages per connection accepted back to back (token bucket size). Default 1000. */
  messageBurst?: number | undefined
  /**
   * Connections one client address (an IPv4 address, or an IPv6 /64) may hold at once; further
   * upgrades get HTTP 429. Raise it when many users share an address (a campus, a carrier NAT).
   * Default 20.
   */
  maxConnectionsPerAddress?: number | undefined
  /** New connections per second one address may open, after a burst of `maxConnectionsPerAddress`; over it, HTTP 429. Default 5. */
  connectionsPerSecondPerAddress?: number | undefined
  /** Sustained messages per second of one address over all its connections together. Default 200. */
  messagesPerSecondPerAddress?: number | undefined
  /** Messages one address may send back to back over all its connections together. Default 2000. */
  messageBurstPerAddress?: number | undefined
  /**
   * Which peers are proxies whose forwarding header says who the client is: a hop count (1: the
   * peer is the one proxy in front of us) or the proxies' addresses and CIDR ranges
   * (`['10.0.0.0/8']`). Default `false`: the client is the TCP peer and forwarding headers are
   * ignored, since a client could write them to pick its own address.
   */
  trustProxy?: false | number | string[] | undefined
  /** The header the trusted proxies write: `'x-forwarded-for'` (nginx, HAProxy, most balancers) or `'forwarded'` (RFC 7239). Default `'x-forwarded-for'`. */
  proxyHeader?: ProxyHeader | undefined
  /**
   * Origins of the web pages allowed to connect (`['https://app.example.com']`); an upgrade from a
   * page of another origin gets HTTP 403. The first thing to set for a browser app. Default none:
   * any origin.
   */
  allowedOrigins?: string[] | undefined
  /** When set, `/metrics` needs `Authorization: Bearer <metricsToken>` (at least 16 bytes). Default none. */
  metricsToken?: string | undefined
  /** When set, `/metrics` is served on this port (0: a free one) and not on the signaling port. Default none. */
  metricsPort?: number | undefined
  /** Interface of `metricsPort`. Default `'127.0.0.1'`. */
  metricsHost?: string | undefined
  /** Unsent bytes a receiver may have queued before it is dropped. Default 4194304 (4 MiB). */
  maxBufferedBytes?: number | undefined
  /** Milliseconds between heartbeat pings; a connection that misses one is dropped. Default 30000. */
  heartbeatInterval?: number | undefined
  /** Milliseconds to wait for a client's close handshake before cutting the socket. Default 5000. */
  closeTimeout?: number | undefined
  /** HS256 secret (at least 32 bytes). When set, every connection needs a `?token=`. Default none. */
  authSecret?: string | Uint8Array | undefined
  /**
   * The public key of an app's room-token issuer (the `auth.issuer` its peers use): an Ed25519 or
   * P-256 public JWK, or `{ jwksUrl }`. When set, every connection needs a `?token=`, and a valid
   * room token of this issuer counts (unexpired; its `room` claim is the topic pattern it opens),
   * next to a valid `authSecret` token. Default none.
   */
  issuerKey?: IssuerKey | undefined
  /**
   * Development only, never in production: generate an issuer key pair at start, accept its room
   * tokens, and hand them to whoever asks on `POST /dev/token` (the first in a room is its host),
   * with the public key on `GET /dev/issuer` (dev-tokens.ts). Default false.
   */
  devTokens?: boolean | undefined
  /** Directory served over HTTP on the same port (for a demo page). Default none. */
  staticDir?: string | undefined
  /**
   * `redis://[[user]:password@]host[:port][/db]` (or `rediss://`): relay topics between every
   * instance started with the same Redis and prefix. Default none (one self-contained process).
   */
  redisUrl?: string | undefined
  /** Prefix of the Redis channels and keys; instances with different prefixes never meet. Default `'p2p-signaling:'`. */
  redisPrefix?: string | undefined
  /**
   * Milliseconds an instance's subscribers keep counting on the other instances after its last
   * heartbeat (sent every third of this): how long a crashed instance can inflate counts. Default 6000.
   */
  redisTtl?: number | undefined
  /**
   * Key of the sender handles that tag relayed publishes (sender-handle.ts), at least 32 bytes.
   * Instances sharing a Redis need the same one, or one client address has another handle on each.
   * Default: random per instance.
   */
  senderSecret?: string | Uint8Array | undefined
  /** pino-compatible logger. Default silent. */
  logger?: Logger | undefined
  /** Hand every (authorised) client TURN credentials for coturn's `static-auth-secret` (turn.ts). Default none. */
  turn?: TurnOptions | undefined
  /**
   * The Ed25519 private JWK (or its JSON text) that signs lock grants; every instance of a cluster
   * needs the same one (`generateLockKey()` makes one). Default: generated at start, or with
   * `redisUrl` the one the first instance stored in Redis.
   */
  lockKey?: JWK | string | undefined
  /**
   * ms during which the arbiter grants no lock after it starts (with `redisUrl`: after it finds
   * Redis without lock state), so that leases granted before a restart have run out (PROTOCOL.md,
   * "Restarts"). 0 turns the wait off, at the price of two holders after a restart. Default 300000,
   * the longest lease.
   */
  lockGrace?: number | undefined
  /**
   * Checks the room token of a lock request and returns its claims, or null:
   * `roomTokenVerifier(issuerPublicJwk)` checks the issuer's signature as the peers do. When set,
   * every lock request needs a token that is valid, for its room, bound to the requesting peer's
   * key, and whose `write` grants the key. Default: the room tokens of `issuerKey` (and of the dev
   * tokens) when the server has either; else none: open rooms, where any subscriber may lock any
   * key and only the holder ends a lock.
   */
  verifyRoomToken?: VerifyRoomToken | undefined
}

export interface LockSettings {
  key: JWK | null
  grace: number
  verifyRoomToken: VerifyRoomToken | null
}

export interface RedisSettings {
  url: string
  prefix: string
  ttl: number
}

export interface MetricsSettings {
  /** SHA-256 of the bearer token, or null for none. */
  tokenDigest: Buffer | null
  /** A port of its own, or null to serve `/metrics` on the signaling port. */
  port: number | null
  host: string
}

export interface ResolvedOptions {
  port: number
  host: string
  maxPayload: number
  maxConnections: number
  maxTopicsPerConnection: number
  maxTopicLength: number
  messagesPerSecond: number
  messageBurst: number
  maxBufferedBytes: number
  heartbeatInterval: number
  closeTimeout: number
  addressLimits: AddressLimits
  trustProxy: ProxyTrust | null
  proxyHeader: ProxyHeader
  allowedOrigins: ReadonlySet<string> | null
  metrics: MetricsSettings
  authKey: Uint8Array | null
  /** The key of the sender handles, or null for a random one. */
  senderKey: Uint8Array | null
  issuerKey: IssuerKey | null
  devTokens: boolean
  staticDir: string | null
  redis: RedisSettings | null
  logger: Logger
  turn: TurnSettings | null
  locks: LockSettings
}

export const DEFAULT_OPTIONS = Object.freeze({
  port: 4444,
  host: '127.0.0.1',
  maxPayload: 64 * 1024,
  maxConnections: 10_000,
  maxTopicsPerConnection: 100,
  maxTopicLength: 256,
  // A y-webrtc peer joining a full 20-peer mesh sends, per remote peer, an offer or an answer (both
  // in a glare) and up to ~15 ICE candidates: 19 * 2 * 16 + 1 = 609 messages in a few seconds.
  // A burst of 1000 holds that with room to spare; 100/s refills it within ten seconds.
  messagesPerSecond: 100,
  messageBurst: 1000,
  // One person rarely holds more than a few connections to one server (one per tab); 20 leaves
  // room for a household or a small office behind one address, and is nothing an attacker can use.
  maxConnectionsPerAddress: 20,
  connectionsPerSecondPerAddress: 5,
  // Two connections' worth of the per-connection limit: two tabs joining full rooms at once.
  messagesPerSecondPerAddress: 200,
  messageBurstPerAddress: 2000,
  maxBufferedBytes: 4 * 1024 * 1024,
  heartbeatInterval: 30_000,
  closeTimeout: 5_000,
  redisPrefix: 'p2p-signaling:',
  // Below a y-webrtc client's 10 s join timeout, so that a joiner held back by the subscribers of
  // a crashed instance sees them leave before it gives up waiting.
  redisTtl: 6_000,
  proxyHeader: 'x-forwarded-for',
  metricsHost: '127.0.0.1',
  // The longest lease (MAX_LOCK_TTL): every lease granted before a restart has run out after it.
  lockGrace: 300_000
})

/** Error frames sent to one address: enough to name a few refused topics, never an amplifier. */
export const ERROR_FRAME_LIMIT = Object.freeze({ rate: 1, burst: 10 })

/** Addresses remembered without a connection (their buckets still refilling); the oldest go first. */
export const MAX_IDLE_ADDRESSES = 50_000

/** Refusals of one address are logged at most once per this many ms. */
export const REFUSAL_LOG_INTERVAL = 60_000

/** Addresses the refusal log remembers at once. */
export const MAX_LOGGED_ADDRESSES = 10_000

/** Shortest `metricsToken`, in UTF-8 bytes: 128 bits, as from `openssl rand -hex 16`. */
export const MIN_METRICS_TOKEN_BYTES = 16

type NumericOption = Exclude<keyof typeof DEFAULT_OPTIONS, 'host' | 'redisPrefix' | 'proxyHeader' | 'metricsHost'>

const readNumber = (options: SignalingServerOptions, name: NumericOption, min: number, integer = true): number => {
  const value = options[name] ?? DEFAULT_OPTIONS[name]
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new SignalingError('INVALID_OPTION', `${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got ${String(value)}`)
  }
  return value
}

const readRate = (options: SignalingServerOptions, name: NumericOption): number => {
  const rate = readNumber(options, name, 0, false)
  if (rate === 0) throw new SignalingError('INVALID_OPTION', `${name} must be > 0`)
  return rate
}

const readAddressLimits = (options: SignalingServerOptions): AddressLimits => {
  const maxConnections = readNumber(options, 'maxConnectionsPerAddress', 1)
  return {
    maxConnections,
    upgrades: { rate: readRate(options, 'connectionsPerSecondPerAddress'), burst: maxConnections },
    messages: { rate: readRate(options, 'messagesPerSecondPerAddress'), burst: readNumber(options, 'messageBurstPerAddress', 1) },
    errors: ERROR_FRAME_LIMIT
  }
}

const readTrustProxy = (options: SignalingServerOptions): ProxyTrust | null => {
  const trust = options.trustProxy ?? false
  const valid = trust === false || (typeof trust === 'number' && Number.isInteger(trust) && trust >= 0) ||
    (Array.isArray(trust) && trust.every((entry) => typeof entry === 'string'))
  if (!valid) throw new SignalingError('INVALID_OPTION', 'trustProxy must be false, a hop count or an array of addresses and CIDR ranges')
  try {
    return toProxyTrust(trust)
  } catch (err) {
    throw new SignalingError('INVALID_OPTION', `trustProxy: ${(err as Error).message}`)
  }
}

const readProxyHeader = (options: SignalingServerOptions): ProxyHeader => {
  const header = options.proxyHeader ?? DEFAULT_OPTIONS.proxyHeader
  if (header !== 'x-forwarded-for' && header !== 'forwarded') {
    throw new SignalingError('INVALID_OPTION', "proxyHeader must be 'x-forwarded-for' or 'forwarded'")
  }
  return header
}

const readAllowedOrigins = (options: SignalingServerOptions): ReadonlySet<string> | null => {
  if (options.allowedOrigins === undefined) return null
  if (!Array.isArray(options.allowedOrigins)) throw new SignalingError('INVALID_OPTION', 'allowedOrigins must be an array of origins')
  const origins = new Set<string>()
  for (const entry of options.allowedOrigins as unknown[]) {
    const origin = typeof entry === 'string' ? normalizeOrigin(entry) : null
    if (origin === null) throw new SignalingError('INVALID_OPTION', `allowedOrigins: ${JSON.stringify(entry)} is not an origin such as 'https://app.example.com'`)
    origins.add(origin)
  }
  return origins
}

const readMetrics = (options: SignalingServerOptions): MetricsSettings => {
  const { metricsToken, metricsPort } = options
  if (metricsToken !== undefined && typeof metricsToken !== 'string') throw new SignalingError('INVALID_OPTION', 'metricsToken must be a string')
  if (metricsToken !== undefined && Buffer.byteLength(metricsToken) < MIN_METRICS_TOKEN_BYTES) {
    throw new SignalingError('WEAK_SECRET', `metricsToken must be at least ${MIN_METRICS_TOKEN_BYTES} bytes`)
  }
  if (metricsPort !== undefined && !(typeof metricsPort === 'number' && Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65535)) {
    throw new SignalingError('INVALID_OPTION', `metricsPort must be an integer from 0 to 65535, got ${String(metricsPort)}`)
  }
  const host = options.metricsHost ?? DEFAULT_OPTIONS.metricsHost
  if (typeof host !== 'string' || host.length === 0) throw new SignalingError('INVALID_OPTION', 'metricsHost must be a non-empty string')
  return {
    tokenDigest: metricsToken === undefined ? null : createHash('sha256').update(metricsToken).digest(),
    port: metricsPort ?? null,
    host
  }
}

const readIssuerKey = (options: SignalingServerOptions): IssuerKey | null => {
  const key = options.issuerKey
  if (key === undefined) return null
  if (issuerProblem(key) !== null) throw new SignalingError('INVALID_OPTION', 'issuerKey must be an Ed25519 (OKP) or P-256 (EC) public JWK, or { jwksUrl }')
  if ('jwksUrl' in key && !/^https?:$/.test(new URL(key.jwksUrl).protocol)) throw new SignalingError('INVALID_OPTION', 'issuerKey.jwksUrl must be an http:// or https:// URL')
  if ('d' in key) throw new SignalingError('INVALID_OPTION', 'issuerKey is a private key: give the server the public JWK (without d)')
  return key
}

const readRedis = (options: SignalingServerOptions): RedisSettings | null => {
  const ttl = readNumber(options, 'redisTtl', 300)
  const prefix = options.redisPrefix ?? DEFAULT_OPTIONS.redisPrefix
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 128) {
    throw new SignalingError('INVALID_OPTION', 'redisPrefix must be a string of 1 to 128 characters')
  }
  if (options.redisUrl === undefined) return null
  const url = options.redisUrl
  let protocol: string | null = null
  try {
    protocol = typeof url === 'string' ? new URL(url).protocol : null
  } catch {}
  if (protocol !== 'redis:' && protocol !== 'rediss:') {
    throw new SignalingError('INVALID_OPTION', 'redisUrl must be a redis:// or rediss:// URL')
  }
  return { url, prefix, ttl }
}

const readSenderSecret = (options: SignalingServerOptions): Uint8Array | null => {
  const secret = options.senderSecret
  if (secret === undefined) return null
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (!(key instanceof Uint8Array)) throw new SignalingError('INVALID_OPTION', 'senderSecret must be a string or a Uint8Array')
  if (key.byteLength < MIN_SECRET_BYTES) throw new SignalingError('WEAK_SECRET', `senderSecret must be at least ${MIN_SECRET_BYTES} bytes`)
  return key
}

const readDevTokens = (options: SignalingServerOptions): boolean => {
  const on = options.devTokens ?? false
  if (typeof on !== 'boolean') throw new SignalingError('INVALID_OPTION', 'devTokens must be a boolean')
  return on
}

const readLocks = (options: SignalingServerOptions): LockSettings => {
  const key = options.lockKey === undefined ? null : toLockKey(options.lockKey)
  if (options.lockKey !== undefined && key === null) {
    throw new SignalingError('INVALID_OPTION', 'lockKey must be a private Ed25519 JWK ({ kty: "OKP", crv: "Ed25519", x, d }) or its JSON text')
  }
  const verifyRoomToken = options.verifyRoomToken ?? null
  if (verifyRoomToken !== null && typeof verifyRoomToken !== 'function') throw new SignalingError('INVALID_OPTION', 'verifyRoomToken must be a function')
  return { key, grace: readNumber(options, 'lockGrace', 0), verifyRoomToken }
}

export const resolveOptions = (options: SignalingServerOptions = {}): ResolvedOptions => {
  const port = readNumber(options, 'port', 0)
  if (port > 65535) throw new SignalingError('INVALID_OPTION', `port must be at most 65535, got ${port}`)
  const host = options.host ?? DEFAULT_OPTIONS.host
  if (typeof host !== 'string' || host.length === 0) throw new SignalingError('INVALID_OPTION', 'host must be a non-empty string')
  if (options.staticDir !== undefined && (typeof options.staticDir !== 'string' || options.staticDir.length === 0)) {
    throw new SignalingError('INVALID_OPTION', 'staticDir must be a non-empty string')
  }
  return {
    port,
    host,
    maxPayload: readNumber(options, 'maxPayload', 1),
    maxConnections: readNumber(options, 'maxConnections', 1),
    maxTopicsPerConnection: readNumber(options, 'maxTopicsPerConnection', 1),
    maxTopicLength: readNumber(options, 'maxTopicLength', 1),
    messagesPerSecond: readRate(options, 'messagesPerSecond'),
    messageBurst: readNumber(options, 'messageBurst', 1),
    maxBufferedBytes: readNumber(options, 'maxBufferedBytes', 1),
    heartbeatInterval: readNumber(options, 'heartbeatInterval', 1),
    closeTimeout: readNumber(options, 'closeTimeout', 0),
    addressLimits: readAddressLimits(options),
    trustProxy: readTrustProxy(options),
    proxyHeader: readProxyHeader(options),
    allowedOrigins: readAllowedOrigins(options),
    metrics: readMetrics(options),
    authKey: options.authSecret === undefined ? null : secretKey(options.authSecret),
    senderKey: readSenderSecret(options),
    issuerKey: readIssuerKey(options),
    devTokens: readDevTokens(options),
    staticDir: options.staticDir ?? null,
    redis: readRedis(options),
    logger: options.logger ?? silentLogger,
    turn: resolveTurnOptions(options.turn),
    locks: readLocks(options)
  }
}

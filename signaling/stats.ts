/**
 * Plain counters of what the server received, sent and refused. They are the one source of truth:
 * `stats()` copies them and the Prometheus registry reads them at scrape time, so the hot path is a
 * field increment and nothing more.
 */

import type { LockStats } from './lock-service.js'

export const REJECTION_REASONS = [
  /** A binary frame; the protocol is JSON text. The frame is ignored. */
  'binary',
  /** A text frame that is not JSON. Ignored. */
  'invalid_json',
  /** JSON that is not a well-formed message: unknown type, wrong field types, too many topics, a
   * topic name too long, data nested too deep. Ignored. */
  'malformed',
  /** A frame over `maxPayload`; `ws` closes the connection with 1009. */
  'too_large',
  /** A WebSocket protocol violation or invalid UTF-8; `ws` closes with 1002 or 1007. */
  'protocol_error',
  /** A message over the connection's rate limit. Dropped. */
  'rate_limited',
  /** A message over its address's rate limit (all of the address's connections together). Dropped. */
  'address_rate_limited',
  /** A connection closed with 4429 for sending on while throttled (by its own limit or its address's). */
  'rate_limit_closed',
  /** A publish to a topic the connection has not subscribed to. Dropped. */
  'not_subscribed',
  /** A topic outside the access token's rooms, in a subscribe or publish. Ignored. */
  'forbidden_topic',
  /** A subscribe beyond `maxTopicsPerConnection`. The extra topics are ignored. */
  'topic_limit',
  /** A receiver whose unsent bytes passed `maxBufferedBytes`; it is dropped. */
  'slow_consumer',
  /** A connection that did not answer a heartbeat ping; it is dropped. */
  'heartbeat_timeout',
  /** A connection closed with 4401 because its token expired. */
  'token_expired',
  /** An upgrade without a valid token: accepted, then closed at once with 4401. */
  'unauthorized',
  /** An upgrade beyond `maxConnections`, refused with HTTP 503. */
  'connection_limit',
  /** An upgrade from an address that holds `maxConnectionsPerAddress` already, refused with HTTP 429. */
  'address_connection_limit',
  /** An upgrade from an address opening connections faster than `connectionsPerSecondPerAddress`, refused with HTTP 429. */
  'address_connection_rate',
  /** An upgrade from a web page whose origin is not in `allowedOrigins`, refused with HTTP 403. */
  'forbidden_origin',
  /** A lock request whose signature does not verify, or that replays a nonce or seq. Answered, not performed. */
  'lock_invalid',
  /** A lock request its room token does not allow (protected rooms). Answered, not performed. */
  'lock_forbidden',
  /** A bug: an exception while handling a message. The message is dropped, the server goes on. */
  'internal_error'
] as const

export type RejectionReason = typeof REJECTION_REASONS[number]

export interface Counters {
  /** Frames received from clients, refused ones included. */
  messagesIn: number
  /** Frames sent to clients: relayed publishes and pongs. */
  messagesOut: number
  rejections: Record<RejectionReason, number>
}

export const createCounters = (): Counters => ({
  messagesIn: 0,
  messagesOut: 0,
  rejections: Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, 0])) as Record<RejectionReason, number>
})

/**
 * The link of a server started with `redisUrl`:
 * - `down`: a Redis connection is closed (ioredis reconnects); rooms are served per instance.
 * - `syncing`: both connections are open and the instance is resubscribing and rewriting its counts.
 * - `up`: publishes and counts flow between instances.
 * - `closed`: the server was closed.
 */
export type RedisLinkState = 'down' | 'syncing' | 'up' | 'closed'

export interface RedisStats {
  state: RedisLinkState
  /** This instance's id in Redis (a fresh UUID per start). */
  instanceId: string
  /** Other instances heard from within the TTL. */
  instances: number
  /** Publishes of clients here sent to the other instances. */
  published: number
  /** Publishes of other instances' clients received. */
  received: number
  /** Messages and replies from Redis refused as malformed. */
  rejected: number
  /** Publishes of clients here not sent to the other instances because the link was down. */
  dropped: number
  /** Completed (re)synchronisations: 1 after the first connection, one more per recovery. */
  syncs: number
}

export interface SignalingStats extends Counters {
  /** Open connections (a connection being closed by the server no longer counts). */
  connections: number
  /** Client addresses tracked: with connections, or limited recently. */
  addresses: number
  /** Topics with at least one subscriber here. */
  topics: number
  /** (topic, connection) pairs here. */
  subscriptions: number
  /** The Redis link; only present when the server was started with `redisUrl`. */
  redis?: RedisStats
  /** The lock arbiter (lock-service.ts). */
  locks: LockStats
}

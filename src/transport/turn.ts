/**
 * TURN servers from the signaling server (`joinRoom(room, { turn: 'signaling' })`).
 *
 * A signaling server started with `turn` sends each connection `{ type: 'turn', iceServers, ttl,
 * expiresAt }` right after it opens, and again before expiry (signaling/PROTOCOL.md, "TURN
 * credentials"). The message is untrusted input: `parseTurnMessage` turns it into RTCIceServers
 * or null. The latest valid grant is kept per signaling connection (y-webrtc shares one between
 * the rooms of a realm, and the server sends it once per connection), and
 * `withSignalingIceServers` gives simple-peer a config whose `iceServers` are read when each
 * RTCPeerConnection is created: connections made after credentials arrive use them, with the
 * app's own `peerOpts.config.iceServers` first.
 */

import { isRecord } from '../guards.js'

/** A grant of ICE servers, with its expiry on this peer's clock. */
export interface TurnGrant {
  iceServers: RTCIceServer[]
  /** ms since the epoch, local clock: receipt time plus the message's `ttl`. */
  expiresAt: number
}

/** Bounds on what a server may make a peer hold (one grant per signaling connection). */
export const MAX_ICE_SERVERS = 8
export const MAX_URLS_PER_SERVER = 8
export const MAX_FIELD_LENGTH = 1024
const ICE_URL = /^(turns?|stuns?):[^\s]+$/

const isField = (value: unknown): value is string => typeof value === 'string' && value.length <= MAX_FIELD_LENGTH

const toIceServer = (value: unknown): RTCIceServer | null => {
  if (!isRecord(value)) return null
  const urls = typeof value.urls === 'string' ? [value.urls] : value.urls
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_URLS_PER_SERVER) return null
  if (!urls.every((url) => isField(url) && ICE_URL.test(url))) return null
  const { username, credential } = value
  if (username !== undefined && !isField(username)) return null
  if (credential !== undefined && !isField(credential)) return null
  return { urls: [...urls as string[]], ...(username === undefined ? {} : { username }), ...(credential === undefined ? {} : { credential }) }
}

/**
 * A signaling server's `turn` message, received at `now` (ms), as a grant; null when it is not a
 * well-formed one. The lifetime comes from `ttl` (seconds), not from `expiresAt`, which is the
 * server's clock.
 */
export const parseTurnMessage = (message: unknown, now: number): TurnGrant | null => {
  if (!isRecord(message) || message.type !== 'turn') return null
  const { iceServers, ttl } = message
  if (!Array.isArray(iceServers) || iceServers.length === 0 || iceServers.length > MAX_ICE_SERVERS) return null
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) return null
  const servers: RTCIceServer[] = []
  for (const item of iceServers) {
    const server = toIceServer(item)
    if (server === null) return null
    servers.push(server)
  }
  return { iceServers: servers, expiresAt: now + ttl * 1000 }
}

/** The ICE servers of the grants still valid at `now`, in order. */
export const activeIceServers = (grants: Iterable<TurnGrant | undefined>, now: number): RTCIceServer[] => {
  const servers: RTCIceServer[] = []
  for (const grant of grants) if (grant !== undefined && grant.expiresAt > now) servers.push(...grant.iceServers)
  return servers
}

interface MessageSource {
  on: (name: 'message', fn: (message: unknown) => void) => void
}

const grants = new WeakMap<object, TurnGrant>()
const followed = new WeakSet<object>()

/**
 * Keeps the latest valid grant `conn` (a y-webrtc SignalingConn) receives. Idempotent per
 * connection. Every session follows its connections, with `turn: 'signaling'` or not: a session
 * that joins later on a shared connection finds the grant the server sent when it opened.
 */
export const followTurnCredentials = (conn: MessageSource): void => {
  if (followed.has(conn)) return
  followed.add(conn)
  conn.on('message', (message) => {
    const grant = parseTurnMessage(message, Date.now())
    if (grant !== null) grants.set(conn, grant)
  })
}

/** The grant last received on `conn`, if any. */
export const grantOf = (conn: object): TurnGrant | undefined => grants.get(conn)

/**
 * `config` (the app's `peerOpts.config`) with `iceServers` read at each use: the app's own, then
 * those `conns()` currently hold. simple-peer copies the config when it creates a connection.
 */
export const withSignalingIceServers = (config: RTCConfiguration | undefined, conns: () => Iterable<object>, now: () => number = Date.now): RTCConfiguration => {
  const own = config?.iceServers ?? []
  const result: RTCConfiguration = { ...config }
  Object.defineProperty(result, 'iceServers', {
    enumerable: true,
    // `conns()` may not be set yet while y-webrtc's constructor runs: no grants then.
    get: () => [...own, ...activeIceServers(Array.from(conns() ?? [], grantOf), now())]
  })
  return result
}

/**
 * Development only, never in production: a room-token issuer inside the signaling server, so that
 * the demo (`npm start`) shows protected rooms without a backend of its own. Anyone who can reach
 * the server gets a token: there is no login. The first to ask for a room is its host, everyone
 * after a guest.
 *
 * - `GET /dev/issuer`: the issuer's public key as a JWKS, `{ "keys": [jwk] }`: `auth.issuer` of
 *   the demo's peers (the JWK itself, or `{ jwksUrl }` pointing here).
 * - `POST /dev/token` with `Content-Type: application/json` and `{ room, peerKey, name, client? }`:
 *   `{ token, user, role, write, expiresAt }`, a room token for `room` bound to `peerKey`.
 *   `client` (16 to 128 of `A-Z a-z 0-9 _ -`) names the asker across its session keys, so that a
 *   page that reloads (a new key) keeps its user and role; it defaults to the key's peer id.
 *
 * Roles: the host may write every key (`["*"]`); a guest only its own raised hand,
 * `hand/<user>`, and the demo poll's counts, `poll/*` (a vote is `store.update` of one of them;
 * the poll itself, `poll`, is the host's). A user id (the token's `sub`) is the name given at the client's first request in
 * the room, made unique there (`Ada`, `Ada 2`). The host stays host while its tokens live (it
 * renews them while its page is open); once its last one has expired, the next to ask becomes the
 * host. A room is forgotten when every token issued for it has expired.
 *
 * Bounded like everything else on the server: body size, rooms, users per room, requests per
 * client address (DEV_TOKEN_LIMITS). The server accepts these tokens for access (createAccessCheck).
 */

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { JWK } from 'jose'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { peerIdOfJwk } from '../src/trust/identity.js'
import { isRecord } from '../src/guards.js'
import { addressGroup, parseAddress } from './client-address.js'
import type { Logger } from './logger.js'
import { FULL, charge, isFull, verdictOf, type RateLimit } from './rate-limit.js'

export interface DevTokenLimits {
  /** Largest request body, in bytes (a request is a room name, a public JWK and a name). */
  maxBodyBytes: number
  /** Rooms remembered at once; a new room beyond them gets 503. */
  maxRooms: number
  /** Users one room remembers; a new one beyond them gets 503. */
  maxUsersPerRoom: number
  /** Longest room name (the server's `maxTopicLength`). */
  maxRoomLength: number
  /** Requests to `/dev/` per client address; over it, 429. */
  requests: RateLimit
  /** Client addresses whose request rate is tracked at once. */
  maxAddresses: number
  /** Lifetime of a token, in seconds. */
  tokenLifetime: number
}

export const DEV_TOKEN_LIMITS: Readonly<DevTokenLimits> = Object.freeze({
  maxBodyBytes: 4096,
  maxRooms: 1000,
  maxUsersPerRoom: 100,
  maxRoomLength: 256,
  // A page asks twice when it opens (the key, a token), then once an hour: 20 pages at once per
  // address, then one a second.
  requests: Object.freeze({ rate: 1, burst: 40 }),
  maxAddresses: 10_000,
  tokenLifetime: 3600
})

/** Longest user name; longer names are cut. */
export const MAX_NAME_LENGTH = 40

/** What the host may write: everything. */
export const HOST_WRITE: readonly string[] = Object.freeze(['*'])

/** What a guest may write: its own raised hand, and the counts of the demo's poll (it votes). */
export const guestWrite = (user: string): string[] => [`hand/${user}`, 'poll/*']

export type DevRole = 'host' | 'guest'

export interface DevSeat {
  user: string
  role: DevRole
}

interface DevRoom {
  /** The client that holds the host role. */
  host: string
  /** When the host's last token expires (ms). */
  hostUntil: number
  /** When the last token issued for the room expires (ms): the room is forgotten after it. */
  until: number
  /** client → user. */
  users: Map<string, string>
}

const CLIENT = /^[A-Za-z0-9_-]{16,128}$/

/** A display name as a user id: whitespace collapsed, at most MAX_NAME_LENGTH, `Guest` if empty. */
export const cleanName = (name: unknown): string => {
  const clean = typeof name === 'string' ? name.replace(/\s+/g, ' ').trim().slice(0, MAX_NAME_LENGTH).trim() : ''
  return clean === '' ? 'Guest' : clean
}

/** Who is who in each dev room: pure, with the clock passed in. */
export class DevRooms {
  readonly #rooms = new Map<string, DevRoom>()
  readonly #limits: Pick<DevTokenLimits, 'maxRooms' | 'maxUsersPerRoom' | 'tokenLifetime'>

  constructor (limits: Pick<DevTokenLimits, 'maxRooms' | 'maxUsersPerRoom' | 'tokenLifetime'>) {
    this.#limits = limits
  }

  get size (): number {
    return this.#rooms.size
  }

  /**
   * The seat of `client` in `room` for a token issued at `now`, given (and remembered) at its
   * first request; a refusal when the rooms or the room's users are at their limit.
   */
  admit (room: string, client: string, name: string, now: number): DevSeat | 'too_many_rooms' | 'too_many_users' {
    const until = now + this.#limits.tokenLifetime * 1000
    let entry = this.#rooms.get(room)
    if (entry !== undefined && now >= entry.until) {
      this.#rooms.delete(room)
      entry = undefined
    }
    if (entry === undefined) {
      if (this.#rooms.size >= this.#limits.maxRooms) this.#sweep(now)
      if (this.#rooms.size >= this.#limits.maxRooms) return 'too_many_rooms'
      entry = { host: client, hostUntil: 0, until, users: new Map() }
      this.#rooms.set(room, entry)
    }
    let user = entry.users.get(client)
    if (user === undefined) {
      if (entry.users.size >= this.#limits.maxUsersPerRoom) return 'too_many_users'
      const taken = new Set(entry.users.values())
      user = name
      for (let n = 2; taken.has(user); n++) user = `${name} ${n}`
      entry.users.set(client, user)
    }
    // The host's tokens have all expired: it has left, and the next to ask takes over.
    if (entry.host !== client && now >= entry.hostUntil) entry.host = client
    if (entry.host === client) entry.hostUntil = until
    entry.until = until
    return { user, role: entry.host === client ? 'host' : 'guest' }
  }

  #sweep (now: number): void {
    for (const [room, entry] of this.#rooms) if (now >= entry.until) this.#rooms.delete(room)
  }
}

export interface DevTokenRequest {
  room: string
  peerKey: JWK
  name: string
  client: string
}

/** A request body as a token request, or why it is not one. */
export const readDevTokenRequest = (body: unknown, maxRoomLength: number): DevTokenRequest | string => {
  if (!isRecord(body)) return 'the body must be a JSON object { room, peerKey, name }'
  const { room, peerKey, name, client } = body
  if (typeof room !== 'string' || room.length === 0 || room.length > maxRoomLength) return `room must be a string of 1 to ${maxRoomLength} characters`
  // A room token's room ending in * is a prefix: a token for "*" would open every room.
  if (room.endsWith('*')) return 'room must not end with *'
  const peerId = isRecord(peerKey) ? peerIdOfJwk(peerKey as JWK) : null
  if (peerId === null) return 'peerKey must be the session\'s Ed25519 or P-256 public JWK (what auth.token is called with)'
  if (name !== undefined && typeof name !== 'string') return 'name must be a string'
  if (client !== undefined && (typeof client !== 'string' || !CLIENT.test(client))) return 'client must be 16 to 128 characters of A-Z a-z 0-9 _ -'
  return { room, peerKey: peerKey as JWK, name: cleanName(name), client: client ?? peerId }
}

export interface DevTokenService {
  /** The issuer's public JWK: the server accepts its room tokens. */
  readonly publicKey: JWK
  /** Answers a request under `/dev/`. */
  serve: (req: IncomingMessage, res: ServerResponse, pathname: string) => Promise<void>
}

export interface DevTokenOptions {
  logger: Logger
  /** The server listens beyond loopback: other machines can get tokens too. */
  exposed?: boolean | undefined
  limits?: Partial<DevTokenLimits> | undefined
  /** Wall clock, ms. Default `Date.now`. */
  now?: () => number
}

const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers })
  res.end(text)
}

/** Refuses and closes the connection, without reading the rest of the body. */
const refuseBody = (req: IncomingMessage, res: ServerResponse, status: number, error: string, headers: Record<string, string> = {}): void => {
  res.once('finish', () => req.destroy())
  sendJson(res, status, { error }, { Connection: 'close', ...headers })
}

/** The body as text, or null when it is larger than `max` bytes. */
const readBody = async (req: IncomingMessage, max: number): Promise<string | null> => {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > max) return null
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Generates the key pair and returns the endpoint; logs, at warn, that it is for development. */
export const createDevTokens = async ({ logger, exposed = false, limits: overrides = {}, now = Date.now }: DevTokenOptions): Promise<DevTokenService> => {
  const limits: DevTokenLimits = { ...DEV_TOKEN_LIMITS, ...overrides }
  const { publicKey, privateKey } = await generateIssuerKeys()
  const jwks = JSON.stringify({ keys: [{ ...publicKey, alg: 'EdDSA', use: 'sig' }] })
  const rooms = new DevRooms(limits)
  /** Each address's token bucket (rate-limit.ts). */
  const buckets = new Map<string, number>()
  logger.warn({ endpoints: ['GET /dev/issuer', 'POST /dev/token'] }, 'dev tokens are on: anyone who reaches this server gets a room token, the first in a room as its host. For development only, never in production')
  if (exposed) logger.warn({}, 'dev tokens are on and the server listens beyond loopback: every machine that reaches it gets room tokens')

  /** One request of the address; false when it is over its rate. */
  const admitAddress = (req: IncomingMessage): boolean => {
    const peer = req.socket.remoteAddress ?? ''
    const address = addressGroup(parseAddress(peer) ?? peer)
    const clock = performance.now()
    const bucket = buckets.get(address)
    if (bucket === undefined && buckets.size >= limits.maxAddresses) {
      for (const [key, old] of buckets) if (isFull(old, clock)) buckets.delete(key)
      // Still full of busy addresses: the longest known goes.
      if (buckets.size >= limits.maxAddresses) buckets.delete(buckets.keys().next().value as string)
    }
    const fullAt = charge(bucket ?? FULL, limits.requests, clock)
    buckets.set(address, fullAt)
    return verdictOf(fullAt, limits.requests, clock) === 'allow'
  }

  const issue = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      // Also what keeps other sites' pages out: a cross-origin JSON POST needs a preflight, never answered here.
      refuseBody(req, res, 415, 'Content-Type must be application/json')
      return
    }
    if (Number(req.headers['content-length'] ?? 0) > limits.maxBodyBytes) {
      refuseBody(req, res, 413, `the body must be at most ${limits.maxBodyBytes} bytes`)
      return
    }
    const text = await readBody(req, limits.maxBodyBytes)
    if (text === null) {
      refuseBody(req, res, 413, `the body must be at most ${limits.maxBodyBytes} bytes`)
      return
    }
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      sendJson(res, 400, { error: 'the body is not JSON' })
      return
    }
    const request = readDevTokenRequest(body, limits.maxRoomLength)
    if (typeof request === 'string') {
      sendJson(res, 400, { error: request })
      return
    }
    const issuedAt = now()
    const seat = rooms.admit(request.room, request.client, request.name, issuedAt)
    if (typeof seat === 'string') {
      logger.warn({ reason: seat }, 'dev token refused')
      sendJson(res, 503, { error: seat === 'too_many_rooms' ? 'too many dev rooms' : 'too many users in this dev room' })
      return
    }
    const write = seat.role === 'host' ? [...HOST_WRITE] : guestWrite(seat.user)
    const token = await createRoomToken({ privateKey, room: request.room, user: seat.user, write, peerKey: request.peerKey, expiresIn: limits.tokenLifetime })
    logger.debug({ role: seat.role }, 'dev token issued')
    sendJson(res, 200, { token, user: seat.user, role: seat.role, write, expiresAt: issuedAt + limits.tokenLifetime * 1000 })
  }

  const serve = async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    if (!admitAddress(req)) {
      refuseBody(req, res, 429, 'too many requests', { 'Retry-After': '1' })
      return
    }
    const method = req.method ?? 'GET'
    if (pathname === '/dev/issuer') {
      if (method !== 'GET' && method !== 'HEAD') {
        refuseBody(req, res, 405, 'method not allowed', { Allow: 'GET, HEAD' })
        return
      }
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(jwks), 'Cache-Control': 'no-store' })
      res.end(method === 'HEAD' ? undefined : jwks)
    } else if (pathname === '/dev/token') {
      if (method !== 'POST') {
        refuseBody(req, res, 405, 'method not allowed', { Allow: 'POST' })
        return
      }
      await issue(req, res)
    } else {
      sendJson(res, 404, { error: 'not found' })
    }
  }

  return { publicKey, serve }
}

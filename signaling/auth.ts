/**
 * Access tokens. Two kinds open a connection, each turned into the same `Grant` (the topics it may
 * use, and until when):
 *
 * - the server's own: an HS256 JWT signed with `authSecret`, whose `rooms` claim lists the topics.
 *   `createToken` mints one (for apps and tests), `verifyToken` checks it.
 * - an app's room token (src/trust/room-token.ts), signed by the issuer key of `issuerKey`: the
 *   token a protected room's peers already hold, so they need no second one. Its `room` claim is
 *   the one topic pattern it covers; its `write` and `cnf` claims are the peers' business, not the
 *   server's (the server cannot tell whether the connection holds the `cnf` key, so a copied room
 *   token opens signaling, and still lets its copier write nothing).
 *
 * `createAccessCheck` accepts either, by the token's `alg`. A room pattern ending in `*` is a
 * prefix: `team-42/*` allows every topic that starts with `team-42/`, and `*` alone allows every
 * topic. A `*` anywhere else is an ordinary character.
 */

import { SignJWT, decodeProtectedHeader, jwtVerify } from 'jose'
import { CLOCK_SKEW, RoomTokenVerifier, type IssuerKey, type RoomClaims } from '../src/trust/room-token.js'
import { SignalingError } from './errors.js'

/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash, 256 bits. */
export const MIN_SECRET_BYTES = 32

/** Most room patterns one token may carry; a bound on the work of checking a topic. */
export const MAX_TOKEN_ROOMS = 1000

export interface Grant {
  /** Exact topic names allowed. */
  readonly exact: ReadonlySet<string>
  /** Prefixes allowed (room patterns with the trailing `*` removed). */
  readonly prefixes: readonly string[]
  /** When the token expires, in ms since the epoch. */
  readonly expiresAt: number
}

export const secretKey = (secret: string | Uint8Array): Uint8Array => {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (!(key instanceof Uint8Array) || key.byteLength < MIN_SECRET_BYTES) {
    throw new SignalingError('WEAK_SECRET', `the token secret must be at least ${MIN_SECRET_BYTES} bytes`)
  }
  return key
}

export interface CreateTokenOptions {
  /** The HS256 secret, at least 32 bytes (a string counts its UTF-8 bytes). */
  secret: string | Uint8Array
  /** Topics (y-webrtc room names) the token allows; a trailing `*` makes a prefix pattern. */
  rooms: string[]
  /** Lifetime: seconds (a positive number) or a jose time span such as `'2h'`. Default 3600. */
  expiresIn?: number | string | undefined
}

/** Mints a signed access token to pass as `?token=` in the signaling URL. */
export const createToken = async ({ secret, rooms, expiresIn = 3600 }: CreateTokenOptions): Promise<string> => {
  const key = secretKey(secret)
  if (!Array.isArray(rooms) || rooms.length > MAX_TOKEN_ROOMS || !rooms.every((room) => typeof room === 'string' && room.length > 0)) {
    throw new SignalingError('INVALID_OPTION', `rooms must be an array of at most ${MAX_TOKEN_ROOMS} non-empty strings`)
  }
  if (typeof expiresIn === 'number' && !(Number.isFinite(expiresIn) && expiresIn > 0)) {
    throw new SignalingError('INVALID_OPTION', 'expiresIn must be a positive number of seconds or a time span string')
  }
  const expiration = typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000 + expiresIn) : expiresIn
  return await new SignJWT({ rooms })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(expiration)
    .sign(key)
}

/** Verifies signature, algorithm and `exp` (which is required) and reads `rooms`; `null` if anything is off. */
export const verifyToken = async (token: string, key: Uint8Array): Promise<Grant | null> => {
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], requiredClaims: ['exp'] })
    const { rooms, exp } = payload
    if (!Array.isArray(rooms) || rooms.length > MAX_TOKEN_ROOMS || typeof exp !== 'number') return null
    const exact = new Set<string>()
    const prefixes: string[] = []
    for (const room of rooms) {
      if (typeof room !== 'string' || room.length === 0) return null
      if (room.endsWith('*')) prefixes.push(room.slice(0, -1))
      else exact.add(room)
    }
    return { exact, prefixes, expiresAt: exp * 1000 }
  } catch {
    return null
  }
}

/**
 * A verified room token's grant at time `now` (ms): its `room` claim as the one pattern, until its
 * `exp`; null when it cannot be used now (expired, or issued more than CLOCK_SKEW in the future).
 */
export const roomTokenGrant = (claims: RoomClaims, now: number): Grant | null => {
  if (now >= claims.expiresAt || now < claims.issuedAt - CLOCK_SKEW) return null
  const { room, expiresAt } = claims
  return room.endsWith('*')
    ? { exact: new Set(), prefixes: [room.slice(0, -1)], expiresAt }
    : { exact: new Set([room]), prefixes: [], expiresAt }
}

/** A token's grant, or null when it opens nothing. */
export type AccessCheck = (token: string) => Promise<Grant | null>

export interface AccessOptions {
  /** The HS256 key (`authSecret`), or null. */
  secret: Uint8Array | null
  /** The issuers whose room tokens count (`issuerKey`, the dev tokens' key). */
  issuers: readonly IssuerKey[]
  /** The clock room tokens are judged by, in ms. Default `Date.now`. */
  now?: () => number
}

/**
 * The server's token check: an HS256 token against the secret, an EdDSA or ES256 one against each
 * issuer in turn (each verifier checks a token's signature once and caches the claims). Null when
 * neither is configured: no token is needed.
 */
export const createAccessCheck = ({ secret, issuers, now = Date.now }: AccessOptions): AccessCheck | null => {
  if (secret === null && issuers.length === 0) return null
  const verifiers = issuers.map((issuer) => new RoomTokenVerifier(issuer))
  return async (token) => {
    let alg: unknown
    try {
      alg = decodeProtectedHeader(token).alg
    } catch {
      return null
    }
    if (alg === 'HS256') return secret === null ? null : await verifyToken(token, secret)
    for (const verifier of verifiers) {
      const claims = await verifier.verify(token)
      if (typeof claims !== 'string') return roomTokenGrant(claims, now())
    }
    return null
  }
}

export const isTopicAllowed = (grant: Grant, topic: string): boolean =>
  grant.exact.has(topic) || grant.prefixes.some((prefix) => topic.startsWith(prefix))

/** The `token` query parameter of an upgrade request's URL, or null. */
export const tokenFromUrl = (url: string | undefined): string | null => {
  if (url === undefined) return null
  try {
    return new URL(url, 'http://localhost').searchParams.get('token')
  } catch {
    return null
  }
}

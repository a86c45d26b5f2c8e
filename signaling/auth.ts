/**
 * Access tokens: an HS256 JWT whose `rooms` claim lists the topics a connection may use and whose
 * `exp` says until when. `createToken` mints one (for apps and tests), `verifyToken` turns a token
 * into a `Grant` or `null`, and `isTopicAllowed` checks a topic against a grant.
 *
 * A room pattern ending in `*` is a prefix: `team-42/*` allows every topic that starts with
 * `team-42/`, and `*` alone allows every topic. A `*` anywhere else is an ordinary character.
 */

import { SignJWT, jwtVerify } from 'jose'
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

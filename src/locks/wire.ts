/**
 * The lock arbiter's wire format, shared by the signaling server (the arbiter) and the library's
 * client (arbiter-client.ts): the bounds, what a peer signs to ask for a lock, and what the server
 * signs to grant one. Pure and browser-safe (jose and WebCrypto only); signaling/PROTOCOL.md
 * ("Locks") is the prose version.
 *
 * A grant is a compact JWS by the server's Ed25519 key over
 *   { v: 1, room, key, holder, fencing, expiresAt }
 * so that any peer holding the server's public key can check that `holder` really was given the
 * lock with that fencing token; a peer cannot claim a lock it was not given.
 */

import { compactVerify, importJWK, type JWK } from 'jose'
import { isRecord } from '../guards.js'

/** Shortest lease, ms (Agora RTM's lower bound). */
export const MIN_LOCK_TTL = 10_000
/** Longest lease, ms; also how long a restarted arbiter refuses grants by default (PROTOCOL.md). */
export const MAX_LOCK_TTL = 300_000
/** Longest lock key, in UTF-16 code units: the store's default `maxKeyBytes`. */
export const MAX_LOCK_KEY_LENGTH = 1024
/** Longest peer id: an Ed25519 id is 43 characters, a P-256 one 92. */
export const MAX_PEER_ID_LENGTH = 128
/** Longest JWS of a request (its payload is a few hundred bytes plus the key). */
export const MAX_REQUEST_JWS_LENGTH = 4096
/** Longest room token carried by a request. */
export const MAX_ROOM_TOKEN_LENGTH = 8192

export type LockOp = 'acquire' | 'renew' | 'release' | 'revoke'
export const LOCK_OPS: readonly LockOp[] = ['acquire', 'renew', 'release', 'revoke']

/** What a peer signs with its session key for one lock operation. */
export interface LockRequestPayload {
  v: 1
  op: LockOp
  room: string
  key: string
  /** acquire and renew: the lease asked for, ms. */
  ttl?: number
  /** renew (required), release and revoke (optional): the grant the operation is about. */
  fencing?: number
  /** The connection's nonce, from the watch reply: the request is good on this connection only. */
  nonce: string
  /** Grows with each request the peer signs on a connection: a replay is refused. */
  seq: number
}

/** What the server signs for a holder. */
export interface GrantPayload {
  v: 1
  room: string
  key: string
  /** The holder's peer id. */
  holder: string
  /** Strictly increasing per (room, key), across restarts and instances. */
  fencing: number
  /** When the lease ends unless renewed, ms since the epoch by the arbiter's clock. */
  expiresAt: number
}

/** Why the server refused a lock frame (`code` of a failed `lock-result`). */
export type LockRefusal =
  /** Another peer holds the lock (the reply names it). */
  | 'locked'
  /** The arbiter cannot decide now: its Redis is unreachable, or it restarted less than a max TTL ago. */
  | 'unavailable'
  /** renew or release by a peer that does not hold that grant. */
  | 'not_holder'
  /** The requester may not lock (or revoke) this key: its room token does not grant it. */
  | 'forbidden'
  /** The connection is not subscribed to the room. */
  | 'not_subscribed'
  /** The signature does not verify with the peer id's key, or the signed fields differ from the clear ones. */
  | 'bad_signature'
  /** The nonce is not this connection's, or the seq is not above the last one accepted. */
  | 'replayed'
  /** A signed request before any watch on this connection: there is no nonce yet. */
  | 'no_session'
  /** The connection holds (or watches) as many locks (rooms) as allowed, or the room as many locks. */
  | 'too_many'
  /** Too many requests of this connection are being processed. */
  | 'busy'
  /** The frame breaks a field rule. */
  | 'malformed'

export const isPositiveSafeInteger = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0

export const isLockTtl = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= MIN_LOCK_TTL && value <= MAX_LOCK_TTL

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** A string UTF-8 can carry unchanged (Redis stores UTF-8: a lone surrogate would change the key). */
export const isWellFormed = (text: string): boolean => !LONE_SURROGATE.test(text)

export const isLockKey = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= MAX_LOCK_KEY_LENGTH && isWellFormed(value)

/** The payload to sign for a request; fields absent from the operation are left out. */
export const requestPayload = (fields: Omit<LockRequestPayload, 'v'>): LockRequestPayload => {
  const payload: LockRequestPayload = { v: 1, op: fields.op, room: fields.room, key: fields.key, nonce: fields.nonce, seq: fields.seq }
  if (fields.ttl !== undefined) payload.ttl = fields.ttl
  if (fields.fencing !== undefined) payload.fencing = fields.fencing
  return payload
}

/** The payload the server signs for a grant, with exactly these fields in this order. */
export const grantPayload = (grant: Omit<GrantPayload, 'v'>): GrantPayload =>
  ({ v: 1, room: grant.room, key: grant.key, holder: grant.holder, fencing: grant.fencing, expiresAt: grant.expiresAt })

/** The grant payload in `value`, or null when it is not one. */
export const toGrantPayload = (value: unknown): GrantPayload | null => {
  if (!isRecord(value) || value.v !== 1) return null
  const { room, key, holder, fencing, expiresAt } = value
  if (typeof room !== 'string' || room.length === 0 || !isLockKey(key) || typeof holder !== 'string' || holder.length === 0 ||
    holder.length > MAX_PEER_ID_LENGTH || !isPositiveSafeInteger(fencing) || !isPositiveSafeInteger(expiresAt)) return null
  return grantPayload({ room, key, holder, fencing, expiresAt })
}

/** An Ed25519 public JWK (no private part), or null. */
export const toServerKey = (value: unknown): JWK | null => {
  if (!isRecord(value) || value.kty !== 'OKP' || value.crv !== 'Ed25519' || typeof value.x !== 'string') return null
  if (value.x.length !== 43 || !/^[A-Za-z0-9_-]+$/.test(value.x) || value.d !== undefined) return null
  return { kty: 'OKP', crv: 'Ed25519', x: value.x }
}

/** Imported server keys by `x`; a client meets one or two in its life. Bounded. */
const serverKeys = new Map<string, Promise<CryptoKey | Uint8Array | null>>()
const MAX_SERVER_KEYS = 16

const importServerKey = (jwk: JWK): Promise<CryptoKey | Uint8Array | null> => {
  const x = jwk.x as string
  let key = serverKeys.get(x)
  if (key === undefined) {
    key = importJWK({ kty: 'OKP', crv: 'Ed25519', x }, 'EdDSA').catch(() => null)
    if (serverKeys.size >= MAX_SERVER_KEYS) serverKeys.delete(serverKeys.keys().next().value as string)
    serverKeys.set(x, key)
  }
  return key
}

const decoder = new TextDecoder()

/**
 * Checks a grant: `jws` signed by the server key `serverKey` (an Ed25519 public JWK) over a grant
 * payload. Returns the payload, or null (bad key, bad signature, another algorithm, not a grant).
 * Whether it is still current (expiresAt, a higher fencing token seen since) is for the caller.
 */
export const verifyGrant = async (jws: unknown, serverKey: JWK): Promise<GrantPayload | null> => {
  if (typeof jws !== 'string' || jws.length > MAX_REQUEST_JWS_LENGTH) return null
  const jwk = toServerKey(serverKey)
  if (jwk === null) return null
  const key = await importServerKey(jwk)
  if (key === null) return null
  try {
    const { payload, protectedHeader } = await compactVerify(jws, key, { algorithms: ['EdDSA'] })
    if (protectedHeader.alg !== 'EdDSA') return null
    return toGrantPayload(JSON.parse(decoder.decode(payload)))
  } catch {
    return null
  }
}

/**
 * The lock frames of the signaling protocol (PROTOCOL.md, "Locks") as data and pure functions: the
 * guard that turns a decoded `{ type: 'lock', ... }` object into a `LockRequest`, and the encoders
 * of what the server answers (`lock-result`) and tells a room's watchers (`lock-event`).
 *
 * Unlike the other guards, a lock frame that breaks a rule is not dropped silently: it becomes a
 * `malformed` request carrying the id (when it has a usable one), which the lock service counts and
 * answers, so a client's request never waits for a reply that cannot come.
 */

import type { JWK } from 'jose'
import {
  LOCK_OPS, MAX_PEER_ID_LENGTH, MAX_REQUEST_JWS_LENGTH, MAX_ROOM_TOKEN_LENGTH, isLockKey, isLockTtl, isPositiveSafeInteger, isWellFormed,
  type LockOp, type LockRefusal
} from '../src/locks/wire.js'
import type { ArbiterLease, LockEventKind } from './lock-arbiter.js'

/** A request id: chosen by the client, echoed in the reply. */
export type RequestId = number

export type LockRequest =
  /** Follow the room's locks: the reply has the nonce, the server key and the live locks; events follow. */
  | { type: 'lock', op: 'watch', id: RequestId, room: string }
  /** Stop following the room's locks. */
  | { type: 'lock', op: 'unwatch', id: RequestId, room: string }
  /** A signed operation by peer `peer` (its session key signed `jws`). */
  | SignedLockRequest
  /** A lock frame that breaks a field rule; `id` is null when the frame had no usable one. */
  | { type: 'lock', op: 'malformed', id: RequestId | null }

export interface SignedLockRequest {
  type: 'lock'
  op: LockOp
  id: RequestId
  room: string
  key: string
  peer: string
  ttl?: number
  fencing?: number
  jws: string
  /** The room token, in rooms whose server verifies them (`verifyRoomToken`). */
  token?: string
}

const isRequestId = (value: unknown): value is RequestId => isPositiveSafeInteger(value)

const isBoundedString = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= max

const malformed = (id: unknown): LockRequest => ({ type: 'lock', op: 'malformed', id: isRequestId(id) ? id : null })

/** The guard of a `type: 'lock'` object (the caller has checked `type`); a room is a topic name, at most `maxRoomLength` long. */
export const toLockRequest = (value: Record<string, unknown>, maxRoomLength: number): LockRequest => {
  const { op, id, room } = value
  if (!isRequestId(id) || !isBoundedString(room, maxRoomLength) || !isWellFormed(room)) return malformed(id)
  if (op === 'watch') return { type: 'lock', op, id, room }
  if (op === 'unwatch') return { type: 'lock', op, id, room }
  if (typeof op !== 'string' || !(LOCK_OPS as readonly string[]).includes(op)) return malformed(id)
  const { key, peer, ttl, fencing, jws, token } = value
  if (!isLockKey(key) || !isBoundedString(peer, MAX_PEER_ID_LENGTH) || !isBoundedString(jws, MAX_REQUEST_JWS_LENGTH)) return malformed(id)
  if (token !== undefined && !isBoundedString(token, MAX_ROOM_TOKEN_LENGTH)) return malformed(id)
  const needsTtl = op === 'acquire' || op === 'renew'
  if (needsTtl ? !isLockTtl(ttl) : ttl !== undefined) return malformed(id)
  const fencingRule = op === 'acquire' ? fencing === undefined : op === 'renew' ? isPositiveSafeInteger(fencing) : fencing === undefined || isPositiveSafeInteger(fencing)
  if (!fencingRule) return malformed(id)
  const request: SignedLockRequest = { type: 'lock', op: op as LockOp, id, room, key, peer, jws }
  if (ttl !== undefined) request.ttl = ttl as number
  if (fencing !== undefined) request.fencing = fencing as number
  if (token !== undefined) request.token = token
  return request
}

/** A lease on the wire: who holds which key, with which token, until when (and for how long still). */
export interface WireLease {
  key: string
  holder: string
  fencing: number
  expiresAt: number
  ttl: number
}

const wireLease = (lease: ArbiterLease): WireLease =>
  ({ key: lease.key, holder: lease.holder, fencing: lease.fencing, expiresAt: lease.expiresAt, ttl: lease.ttl })

export type LockServerMessage =
  | { type: 'lock-result', id: RequestId, op: 'watch', ok: true, room: string, nonce: string, serverKey: JWK, locks: WireLease[] }
  | ({ type: 'lock-result', id: RequestId, op: LockOp, ok: true, room: string, grant: string, previous?: string | null } & WireLease)
  | { type: 'lock-result', id: RequestId, op: LockOp | 'unwatch', ok: true, room: string }
  | ({ type: 'lock-result', id: RequestId, op: LockOp, ok: false, code: 'locked', room: string } & WireLease)
  | { type: 'lock-result', id: RequestId, op: string, ok: false, code: 'unavailable', room: string, retryAfter: number }
  | { type: 'lock-result', id: RequestId | null, op: string, ok: false, code: LockRefusal, room?: string }
  | ({ type: 'lock-event', event: LockEventKind, room: string, previous?: string | null } & WireLease)
  | { type: 'lock-event', event: 'snapshot', room: string, locks: WireLease[] }

const encode = (message: LockServerMessage): Buffer => Buffer.from(JSON.stringify(message))

export const encodeWatched = (id: RequestId, room: string, nonce: string, serverKey: JWK, locks: ArbiterLease[]): Buffer =>
  encode({ type: 'lock-result', id, op: 'watch', ok: true, room, nonce, serverKey, locks: locks.map(wireLease) })

/** `previous` (acquire only): the holder of the key's grant before this one, or null. */
export const encodeGranted = (id: RequestId, op: 'acquire' | 'renew', lease: ArbiterLease, grant: string, previous?: string | null): Buffer =>
  encode(previous === undefined
    ? { type: 'lock-result', id, op, ok: true, room: lease.room, ...wireLease(lease), grant }
    : { type: 'lock-result', id, op, ok: true, room: lease.room, ...wireLease(lease), grant, previous })

export const encodeDone = (id: RequestId, op: LockOp | 'unwatch', room: string): Buffer =>
  encode({ type: 'lock-result', id, op, ok: true, room })

export const encodeLocked = (id: RequestId, op: LockOp, lease: ArbiterLease): Buffer =>
  encode({ type: 'lock-result', id, op, ok: false, code: 'locked', room: lease.room, ...wireLease(lease) })

export const encodeUnavailable = (id: RequestId, op: string, room: string, retryAfter: number): Buffer =>
  encode({ type: 'lock-result', id, op, ok: false, code: 'unavailable', room, retryAfter: Math.max(0, Math.ceil(retryAfter)) })

export const encodeRefused = (id: RequestId | null, op: string, code: LockRefusal, room?: string): Buffer =>
  encode(room === undefined ? { type: 'lock-result', id, op, ok: false, code } : { type: 'lock-result', id, op, ok: false, code, room })

export const encodeEvent = (event: LockEventKind, lease: ArbiterLease, previous?: string | null): Buffer =>
  encode(previous === undefined
    ? { type: 'lock-event', event, room: lease.room, ...wireLease(lease) }
    : { type: 'lock-event', event, room: lease.room, ...wireLease(lease), previous })

export const encodeSnapshot = (room: string, locks: ArbiterLease[]): Buffer =>
  encode({ type: 'lock-event', event: 'snapshot', room, locks: locks.map(wireLease) })

/**
 * The lock protocol on the server (PROTOCOL.md, "Locks"): between the connections' lock frames and
 * an arbiter (memory or Redis) it checks who is asking (the peer's signature over the request, on
 * this connection's nonce, with a growing seq), whether it may (subscribed to the room; in rooms
 * with room tokens, a token bound to that peer whose `write` grants the key), signs the grants,
 * answers, and tells each room's watchers of every change. A connection that closes cleanly gives
 * its locks back at once; one that is cut keeps them until they run out (its peer may come back).
 *
 * Everything a connection can make this hold is bounded: the requests in its queue, the rooms it
 * watches, the locks it holds, the peers it signs for.
 */

import { randomBytes } from 'node:crypto'
import { isRecord } from '../src/guards.js'
import { isPositiveSafeInteger } from '../src/locks/wire.js'
import { verifySigned } from '../src/trust/identity.js'
import { RoomTokenVerifier, checkUse, grantsKey, type IssuerKey, type RoomClaims } from '../src/trust/room-token.js'
import type { ArbiterLease, LockArbiter, LockEvent } from './lock-arbiter.js'
import type { LockSigner } from './lock-key.js'
import {
  encodeDone, encodeEvent, encodeGranted, encodeLocked, encodeRefused, encodeSnapshot, encodeUnavailable, encodeWatched,
  type LockRequest, type SignedLockRequest
} from './lock-protocol.js'
import type { Logger } from './logger.js'
import type { Counters } from './stats.js'

/**
 * Checks a room token's signature (and whatever else the app wants) and returns its claims
 * (src/trust/room-token.ts), or null. The service then checks that the token is for this room,
 * unexpired and bound to the requesting peer's key (`checkUse`), and that its `write` patterns
 * grant the key (`grantsKey`). `roomTokenVerifier(issuer)` makes one for an issuer key.
 */
export type VerifyRoomToken = (token: string, room: string) => Promise<RoomClaims | null> | RoomClaims | null

/** The room tokens of an issuer (its public JWK, or `{ jwksUrl }`), or of any of several, as the peers verify them. */
export const roomTokenVerifier = (issuers: IssuerKey | readonly IssuerKey[]): VerifyRoomToken => {
  const verifiers = (Array.isArray(issuers) ? issuers as readonly IssuerKey[] : [issuers as IssuerKey]).map((issuer) => new RoomTokenVerifier(issuer))
  return async (token) => {
    for (const verifier of verifiers) {
      const claims = await verifier.verify(token)
      if (typeof claims !== 'string') return claims
    }
    return null
  }
}

/** The connection, as the service needs it. */
export interface LockConnection {
  readonly id: number
  /** Sends one encoded text frame; false when it was not sent. Never throws. */
  deliver: (frame: Buffer) => boolean
  /** Whether the connection is subscribed to the topic `topic`. */
  subscribes: (topic: string) => boolean
}

export interface LockLimits {
  /** Requests of one connection queued or being processed. */
  maxPending: number
  /** Locks one connection holds. */
  maxHeld: number
  /** Rooms one connection watches. */
  maxWatched: number
  /** Peers (with rooms) one connection signs requests for. */
  maxSigners: number
}

export const DEFAULT_LOCK_LIMITS: LockLimits = Object.freeze({ maxPending: 16, maxHeld: 64, maxWatched: 100, maxSigners: 100 })

export interface LockServiceOptions {
  arbiter: LockArbiter
  /** The grant signer; null while it cannot be had yet (a key shared through Redis that is unreachable). */
  signer: () => Promise<LockSigner | null>
  verifyRoomToken: VerifyRoomToken | null
  counters: Counters
  logger: Logger
  limits?: LockLimits
  /** Wall clock for token expiry, ms. Default Date.now. */
  clock?: () => number
}

export interface LockStats {
  /** Rooms with watchers here. */
  rooms: number
  /** (room, connection) watch pairs here. */
  watchers: number
  /** Leases held (memory arbiter), or null (Redis: not counted). */
  held: number | null
  granted: number
  renewed: number
  released: number
  revoked: number
  /** Acquires refused because another peer held the lock. */
  locked: number
  /** Requests answered `unavailable`. */
  unavailable: number
  /** Requests refused for a bad signature, a replay, a missing right or another rule. */
  refused: number
}

interface Held {
  room: string
  key: string
  holder: string
  fencing: number
}

interface Session {
  readonly nonce: string
  /** Last seq accepted, per `peer \n room`. */
  readonly seqs: Map<string, number>
  /** Locks taken or renewed through this connection, by `room \n key`. */
  readonly held: Map<string, Held>
  readonly watched: Set<string>
  tail: Promise<void>
  pending: number
  closed: boolean
  /** The client closed the connection with a close frame: its locks go back at once. */
  clean: boolean
}

const slot = (a: string, b: string): string => `${a}\n${b}`

/** Claims as the callback returned them: an app's own verifier may return anything. */
const isClaims = (value: unknown): value is RoomClaims =>
  isRecord(value) && typeof value.room === 'string' && typeof value.peerId === 'string' && Array.isArray(value.write) &&
  value.write.every((pattern) => typeof pattern === 'string') && typeof value.expiresAt === 'number' && typeof value.issuedAt === 'number'

export class LockService {
  private readonly sessions = new WeakMap<LockConnection, Session>()
  private readonly watchers = new Map<string, Set<LockConnection>>()
  private readonly limits: LockLimits
  private readonly clock: () => number
  private readonly counts = { granted: 0, renewed: 0, released: 0, revoked: 0, locked: 0, unavailable: 0, refused: 0 }
  private watcherCount = 0
  private closed = false

  constructor (private readonly opts: LockServiceOptions) {
    this.limits = opts.limits ?? DEFAULT_LOCK_LIMITS
    this.clock = opts.clock ?? Date.now
    opts.arbiter.onEvent((event) => this.onEvent(event))
    opts.arbiter.onResync(() => this.resync())
  }

  stats (): LockStats {
    return { rooms: this.watchers.size, watchers: this.watcherCount, held: this.opts.arbiter.size, ...this.counts }
  }

  /** One lock frame of `connection` (already parsed and rate-limited). Never throws. */
  handle (connection: LockConnection, request: LockRequest): void {
    if (this.closed) return
    if (request.op === 'malformed') {
      this.opts.counters.rejections.malformed++
      connection.deliver(encodeRefused(request.id, 'malformed', 'malformed'))
      return
    }
    if (request.op === 'unwatch') {
      this.unwatch(connection, request.room)
      connection.deliver(encodeDone(request.id, 'unwatch', request.room))
      return
    }
    let session = this.sessions.get(connection)
    if (request.op === 'watch' && session === undefined) {
      session = { nonce: randomBytes(16).toString('base64url'), seqs: new Map(), held: new Map(), watched: new Set(), tail: Promise.resolve(), pending: 0, closed: false, clean: false }
      this.sessions.set(connection, session)
    }
    if (session === undefined) {
      this.refuse(connection, request, 'no_session')
      return
    }
    if (session.pending >= this.limits.maxPending) {
      this.refuse(connection, request, 'busy')
      return
    }
    const current = session
    const run = request.op === 'watch'
      ? async () => await this.watch(connection, current, request.id, request.room)
      : async () => await this.perform(connection, current, request)
    current.pending++
    current.tail = current.tail
      .then(async () => {
        if (!current.closed) await run()
      })
      .catch((err: unknown) => {
        this.opts.logger.error({ conn: connection.id, err }, 'a lock request failed')
        this.opts.counters.rejections.internal_error++
      })
      .finally(() => { current.pending-- })
  }

  /**
   * The connection stopped counting. `clean`: the client closed it with a close frame, so its
   * locks are released now; otherwise (cut, timed out, closed by the server) they run out.
   */
  released (connection: LockConnection, clean: boolean): void {
    const session = this.sessions.get(connection)
    if (session === undefined) return
    session.closed = true
    session.clean = clean
    for (const room of [...session.watched]) this.unwatch(connection, room)
    if (clean) for (const held of [...session.held.values()]) this.giveBack(session, held)
  }

  async close (): Promise<void> {
    this.closed = true
    this.watchers.clear()
    await this.opts.arbiter.close()
  }

  private refuse (connection: LockConnection, request: Exclude<LockRequest, { op: 'malformed' }>, code: Parameters<typeof encodeRefused>[2]): void {
    this.counts.refused++
    if (code === 'bad_signature' || code === 'replayed') this.opts.counters.rejections.lock_invalid++
    if (code === 'forbidden') this.opts.counters.rejections.lock_forbidden++
    this.opts.logger.debug({ conn: connection.id, op: request.op, code }, 'lock request refused')
    connection.deliver(encodeRefused(request.id, request.op, code, request.room))
  }

  private unavailable (connection: LockConnection, request: { id: number, op: string, room: string }, retryAfter: number): void {
    this.counts.unavailable++
    connection.deliver(encodeUnavailable(request.id, request.op, request.room, retryAfter))
  }

  private async watch (connection: LockConnection, session: Session, id: number, room: string): Promise<void> {
    const request = { type: 'lock', op: 'watch', id, room } as const
    if (!connection.subscribes(room)) {
      this.refuse(connection, request, 'not_subscribed')
      return
    }
    if (!session.watched.has(room)) {
      // Rooms the connection has left since it watched them make way first.
      for (const other of session.watched) if (!connection.subscribes(other)) this.unwatch(connection, other)
      if (session.watched.size >= this.limits.maxWatched) {
        this.refuse(connection, request, 'too_many')
        return
      }
      session.watched.add(room)
      let watchers = this.watchers.get(room)
      if (watchers === undefined) {
        watchers = new Set()
        this.watchers.set(room, watchers)
        this.opts.arbiter.watch(room)
      }
      watchers.add(connection)
      this.watcherCount++
    }
    const signer = await this.opts.signer()
    const locks = signer === null ? null : await this.opts.arbiter.list(room)
    if (session.closed) return
    if (signer === null || locks === null) {
      this.unavailable(connection, request, 1_000)
      return
    }
    connection.deliver(encodeWatched(id, room, session.nonce, signer.publicJwk, locks))
  }

  private unwatch (connection: LockConnection, room: string): void {
    const session = this.sessions.get(connection)
    if (session === undefined || !session.watched.delete(room)) return
    const watchers = this.watchers.get(room)
    if (watchers?.delete(connection) !== true) return
    this.watcherCount--
    if (watchers.size > 0) return
    this.watchers.delete(room)
    this.opts.arbiter.unwatch(room)
  }

  /** Checks who asks and whether it may, then does it. */
  private async perform (connection: LockConnection, session: Session, request: SignedLockRequest): Promise<void> {
    const signed = await verifySigned(request.jws, request.peer)
    if (signed === null || !matches(signed, request)) {
      this.refuse(connection, request, 'bad_signature')
      return
    }
    const signer = slot(request.peer, request.room)
    const last = session.seqs.get(signer)
    if (signed.nonce !== session.nonce || (last !== undefined && (signed.seq as number) <= last)) {
      this.refuse(connection, request, 'replayed')
      return
    }
    if (last === undefined && session.seqs.size >= this.limits.maxSigners) {
      this.refuse(connection, request, 'too_many')
      return
    }
    session.seqs.set(signer, signed.seq as number)
    if (!connection.subscribes(request.room)) {
      this.refuse(connection, request, 'not_subscribed')
      return
    }
    // Giving a lock back needs no right: only the holder's signature.
    if (request.op !== 'release') {
      const right = await this.mayWrite(request)
      if (right === 'unavailable') {
        this.unavailable(connection, request, 1_000)
        return
      }
      if (!right) {
        this.refuse(connection, request, 'forbidden')
        return
      }
    }
    switch (request.op) {
      case 'acquire':
        await this.acquire(connection, session, request)
        break
      case 'renew':
        await this.renew(connection, session, request)
        break
      case 'release':
        await this.end(connection, session, request, 'release')
        break
      case 'revoke':
        await this.end(connection, session, request, 'revoke')
        break
    }
  }

  /**
   * Open rooms (no `verifyRoomToken`): anyone subscribed may lock any key, and only the holder ends
   * a lock (a revoke by the holder is a release; by anyone else it finds no lock of theirs).
   * Protected rooms: the request's token must be valid, for this room, bound to this peer, and
   * grant the key.
   */
  private async mayWrite (request: SignedLockRequest): Promise<boolean | 'unavailable'> {
    const verify = this.opts.verifyRoomToken
    if (verify === null) return true
    if (request.token === undefined) return false
    let claims: unknown
    try {
      claims = await verify(request.token, request.room)
    } catch (err) {
      this.opts.logger.warn({ err }, 'verifyRoomToken threw')
      return 'unavailable'
    }
    if (!isClaims(claims)) return false
    if (checkUse(claims, { room: request.room, peerId: request.peer, at: this.clock() }) !== null) return false
    return grantsKey(claims.write, request.key)
  }

  private async acquire (connection: LockConnection, session: Session, request: SignedLockRequest): Promise<void> {
    const here = slot(request.room, request.key)
    if (!session.held.has(here) && session.held.size >= this.limits.maxHeld) {
      this.refuse(connection, request, 'too_many')
      return
    }
    const signer = await this.opts.signer()
    if (signer === null) {
      this.unavailable(connection, request, 1_000)
      return
    }
    const result = await this.opts.arbiter.acquire(request.room, request.key, request.peer, request.ttl as number)
    if (result.ok) {
      this.counts.granted++
      await this.grant(connection, session, request, 'acquire', result.lease, signer, result.extended ? undefined : result.previous)
    } else if (result.code === 'locked') {
      this.counts.locked++
      connection.deliver(encodeLocked(request.id, 'acquire', result.lease))
    } else if (result.code === 'unavailable') {
      this.unavailable(connection, request, result.retryAfter)
    } else {
      this.refuse(connection, request, result.code)
    }
  }

  private async renew (connection: LockConnection, session: Session, request: SignedLockRequest): Promise<void> {
    const signer = await this.opts.signer()
    if (signer === null) {
      this.unavailable(connection, request, 1_000)
      return
    }
    const result = await this.opts.arbiter.renew(request.room, request.key, request.peer, request.fencing as number, request.ttl as number)
    if (result.ok) {
      this.counts.renewed++
      await this.grant(connection, session, request, 'renew', result.lease, signer)
    } else if (result.code === 'unavailable') {
      this.unavailable(connection, request, result.retryAfter)
    } else {
      session.held.delete(slot(request.room, request.key))
      this.refuse(connection, request, result.code)
    }
  }

  private async grant (connection: LockConnection, session: Session, request: SignedLockRequest, op: 'acquire' | 'renew', lease: ArbiterLease, signer: LockSigner, previous?: string | null): Promise<void> {
    const held: Held = { room: lease.room, key: lease.key, holder: lease.holder, fencing: lease.fencing }
    if (session.closed) {
      // The connection went while this was being decided: nobody hears the answer.
      if (session.clean) this.giveBack(session, held)
      return
    }
    session.held.set(slot(lease.room, lease.key), held)
    const grant = await signer.sign({ room: lease.room, key: lease.key, holder: lease.holder, fencing: lease.fencing, expiresAt: lease.expiresAt })
    connection.deliver(encodeGranted(request.id, op, lease, grant, previous))
  }

  /**
   * release: compare-and-delete by the holder. revoke: of any holder's lock, in protected rooms (the
   * right was checked); in open rooms only the holder may, so it is a release there, and refused
   * (`forbidden`) when the requester holds nothing.
   */
  private async end (connection: LockConnection, session: Session, request: SignedLockRequest, op: 'release' | 'revoke'): Promise<void> {
    const { arbiter } = this.opts
    const byHolder = op === 'release' || this.opts.verifyRoomToken === null
    const result = byHolder
      ? await arbiter.release(request.room, request.key, request.peer, request.fencing)
      : await arbiter.revoke(request.room, request.key, request.fencing)
    if (byHolder && (result.ok || result.code !== 'unavailable')) session.held.delete(slot(request.room, request.key))
    if (result.ok) {
      if (byHolder) this.counts.released++
      else this.counts.revoked++
      connection.deliver(encodeDone(request.id, request.op, request.room))
    } else if (result.code === 'unavailable') {
      this.unavailable(connection, request, result.retryAfter)
    } else {
      this.refuse(connection, request, op === 'revoke' && byHolder ? 'forbidden' : 'not_holder')
    }
  }

  /** Releases a lock of a connection that left cleanly (fire and forget: it runs out otherwise). */
  private giveBack (session: Session, held: Held): void {
    session.held.delete(slot(held.room, held.key))
    this.opts.arbiter.release(held.room, held.key, held.holder, held.fencing).then((result) => {
      if (result.ok) this.counts.released++
    }, (err: unknown) => this.opts.logger.debug({ err }, 'releasing a lock of a closed connection failed'))
  }

  private onEvent ({ event, lease, previous }: LockEvent): void {
    const watchers = this.watchers.get(lease.room)
    if (watchers === undefined) return
    const frame = encodeEvent(event, lease, previous)
    for (const connection of watchers) {
      if (connection.subscribes(lease.room)) connection.deliver(frame)
    }
  }

  /** Events may have been lost (the Redis link was down): every watched room gets a snapshot. */
  private resync (): void {
    for (const [room, watchers] of this.watchers) {
      this.opts.arbiter.list(room).then((locks) => {
        if (locks === null || this.watchers.get(room) !== watchers) return
        const frame = encodeSnapshot(room, locks)
        for (const connection of watchers) {
          if (connection.subscribes(room)) connection.deliver(frame)
        }
      }, (err: unknown) => this.opts.logger.debug({ err }, 'a lock snapshot failed'))
    }
  }
}

/** The signed payload says what the clear frame says. */
const matches = (signed: Record<string, unknown>, request: SignedLockRequest): boolean =>
  signed.v === 1 && signed.op === request.op && signed.room === request.room && signed.key === request.key &&
  signed.ttl === request.ttl && signed.fencing === request.fencing && typeof signed.nonce === 'string' && isPositiveSafeInteger(signed.seq)

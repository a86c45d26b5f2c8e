/**
 * The client of the signaling server's lock arbiter (signaling/PROTOCOL.md, "Locks"), over any
 * transport that carries its JSON frames: the y-webrtc adapter's signaling connection, or a plain
 * WebSocket in tests. It asks for leases signed with the session's key, renews what it holds, and
 * keeps a view of the room's locks from the arbiter's events, so that `holder(key)` says what
 * every peer of the room is told.
 *
 * - Renewal: every third of the TTL while connected; a renewal that fails is retried every second.
 *   While the connection is down nothing is renewed: the lock stays this peer's until its lease
 *   runs out (`isHeld` says so, from when the last grant was asked for, by this peer's clock), and a
 *   connection back in time renews it at once, keeping the fencing token. After that the lock is
 *   lost (`lost` event) and the arbiter gives it to others.
 * - Every frame from the server is untrusted input: anything that does not fit is ignored. Grants
 *   are checked against the server key (pinned with `serverKey`, else the one the server sent).
 * - Events from the arbiter may arrive in any order (several instances, a snapshot taken before an
 *   event): a grant or renewal older than what is known, or than an end already seen, is ignored,
 *   which the fencing tokens (increasing per key) make possible.
 */

import type { JWK } from 'jose'
import { ErrorCodes, SessionStoreError } from '../errors.js'
import { IsolatedObservable } from '../events.js'
import { isRecord } from '../guards.js'
import type { Identity } from '../trust/identity.js'
import {
  MIN_LOCK_TTL, isLockKey, isLockTtl, isPositiveSafeInteger, requestPayload, toServerKey, verifyGrant,
  type GrantPayload, type LockOp
} from './wire.js'

/** How the client reaches the arbiter: any connection that carries JSON objects both ways. */
export interface ArbiterTransport {
  /** Sends one frame (an object the transport encodes as JSON). May throw while not connected. */
  send: (frame: object) => void
  /** Calls `listener` with every frame the server sends (decoded JSON); returns an unsubscribe. */
  onFrame: (listener: (frame: unknown) => void) => () => void
  /** Calls `listener` when the connection opens (true) or closes (false). Default: connected for good. */
  onStatus?: (listener: (connected: boolean) => void) => () => void
  /** Whether the connection is open when the client is made; with `onStatus`, default false. */
  connected?: boolean
}

export interface ArbiterClientOptions extends ArbiterTransport {
  /** The session's key: requests are signed with it, and the lock holder is its peer id. */
  identity: Identity
  /** The room (the signaling topic) whose locks this client takes and follows. */
  room: string
  /** Clock, ms since the epoch; default `performance.timeOrigin + performance.now()` (never steps back). */
  now?: () => number
  /** The room token to send with each request, in rooms whose server verifies them. Default none. */
  token?: () => string | null | undefined
  /** The arbiter's public key (Ed25519 JWK), when known beforehand: a server with another key is not trusted. Default: the key the server sends. */
  serverKey?: JWK
  /** ms to wait for an answer before counting the arbiter as unreachable. Default 5000. */
  requestTimeout?: number
}

/** A lock as this peer sees it. */
export interface LockInfo {
  key: string
  /** The holder's peer id. */
  holder: string
  fencingToken: number
  /** When the lease ends unless renewed, ms since the epoch by this client's clock. */
  expiresAt: number
}

/** A lock this peer holds. `expiresAt`, `fencingToken` and `grant` follow its renewals. */
export interface HeldLock extends LockInfo {
  /** The server's signed grant (a compact JWS), for others to check with `verifyGrant`. */
  readonly grant: string
  /**
   * The holder of the key's grant before this one, as the arbiter says (null: none it remembers,
   * or this peer): the peer whose last writes to the key the new holder waits for before it reads.
   * Exact whatever order the arbiter's events arrive in.
   */
  readonly previous: string | null
  /** Whether the lease still runs (not released, lost or run out). */
  readonly held: boolean
  /** Gives the lock back. Never rejects: an arbiter that cannot be reached lets the lease run out. */
  release: () => Promise<void>
}

export interface AcquireOptions {
  /** Lease, ms: 10000 to 300000. Default 10000. */
  ttl?: number
  /** ms to keep trying while another peer holds the lock or no arbiter answers. Default 0: answer at once. */
  wait?: number
}

/** A change of holder, as every peer of the room is told. */
export interface LockChange {
  key: string
  /** The new holder, or null when the lock ended. */
  holder: string | null
  /**
   * For an end, the holder that ended; for a grant, the holder of the key's grant before it (as the
   * arbiter says when it says, else as this peer saw it).
   */
  previous: string | null
  fencingToken: number
  released: boolean
  reason: 'grant' | 'release' | 'expire' | 'revoke'
}

/**
 * Why a held lock ended without `release`: its lease ran out (`expired`), a peer with the right
 * revoked it, the arbiter refused a renewal (`refused`: it no longer knew the grant, or the token
 * no longer grants the key), or the arbiter released it on this peer's behalf (`released`: a
 * connection of this peer that held it was closed).
 */
export type LostReason = 'expired' | 'revoked' | 'refused' | 'released'

export interface ArbiterClientEvents {
  /** The holder of a key changed (renewals are not changes). */
  lock: (change: LockChange) => void
  /** A lock this peer held ended without `release`: its lease ran out, or it was revoked or refused a renewal. */
  lost: (event: { key: string, fencingToken: number, reason: LostReason }) => void
  /** A listener threw (CALLBACK_FAILED), or the server's key was not the pinned one (LOCK_UNAVAILABLE). */
  error: (error: SessionStoreError) => void
}

interface WireLease {
  key: string
  holder: string
  fencing: number
  expiresAt: number
  ttl: number
}

type Result =
  | { ok: true, op: 'watch', nonce: string, serverKey: JWK, locks: WireLease[] }
  | { ok: true, op: 'acquire' | 'renew', lease: WireLease, grant: string, previous: string | null | undefined }
  | { ok: true, op: 'release' | 'revoke' | 'unwatch' }
  | { ok: false, code: 'locked', lease: WireLease }
  | { ok: false, code: 'unavailable', retryAfter: number }
  | { ok: false, code: string }

interface Known {
  holder: string
  fencing: number
  /** Local deadline (this client's clock). */
  deadline: number
  /** The watch generation in which it was last heard of. */
  generation: number
  timer: ReturnType<typeof setTimeout> | undefined
}

interface Held {
  readonly key: string
  fencing: number
  ttl: number
  grant: string
  /** Local deadline: when the last successful request was sent, plus its TTL. */
  deadline: number
  renewTimer: ReturnType<typeof setTimeout> | undefined
  expiryTimer: ReturnType<typeof setTimeout> | undefined
  handle: HeldLock | null
}

interface Session {
  nonce: string
  serverKey: JWK
}

const MAX_SNAPSHOT = 4096
const RENEW_RETRY = 1_000
const WATCH_RETRY_MIN = 200
const WATCH_RETRY_MAX = 5_000

const toWireLease = (value: unknown): WireLease | null => {
  if (!isRecord(value)) return null
  const { key, holder, fencing, expiresAt, ttl } = value
  if (!isLockKey(key) || typeof holder !== 'string' || holder.length === 0 || holder.length > 128) return null
  if (!isPositiveSafeInteger(fencing) || !isPositiveSafeInteger(expiresAt) || typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 0) return null
  return { key, holder, fencing, expiresAt, ttl }
}

/** A `previous` field: a peer id, null, or absent (undefined). */
const toPrevious = (value: unknown): string | null | undefined =>
  value === null ? null : typeof value === 'string' && value.length > 0 && value.length <= 128 ? value : undefined

const toLeases = (value: unknown): WireLease[] | null => {
  if (!Array.isArray(value) || value.length > MAX_SNAPSHOT) return null
  const leases: WireLease[] = []
  for (const item of value) {
    const lease = toWireLease(item)
    if (lease === null) return null
    leases.push(lease)
  }
  return leases
}

/** A `lock-result` frame for `room`: its id and what it says, or null. */
const toResult = (frame: Record<string, unknown>): { id: number, result: Result } | null => {
  const { id, op, ok } = frame
  if (!isPositiveSafeInteger(id) || typeof op !== 'string') return null
  if (ok === true) {
    if (op === 'watch') {
      const serverKey = toServerKey(frame.serverKey)
      const locks = toLeases(frame.locks)
      if (typeof frame.nonce !== 'string' || frame.nonce.length === 0 || frame.nonce.length > 128 || serverKey === null || locks === null) return null
      return { id, result: { ok: true, op, nonce: frame.nonce, serverKey, locks } }
    }
    if (op === 'acquire' || op === 'renew') {
      const lease = toWireLease(frame)
      if (lease === null || typeof frame.grant !== 'string') return null
      return { id, result: { ok: true, op, lease, grant: frame.grant, previous: toPrevious(frame.previous) } }
    }
    if (op === 'release' || op === 'revoke' || op === 'unwatch') return { id, result: { ok: true, op } }
    return null
  }
  if (ok !== false || typeof frame.code !== 'string') return null
  if (frame.code === 'locked') {
    const lease = toWireLease(frame)
    return lease === null ? null : { id, result: { ok: false, code: 'locked', lease } }
  }
  if (frame.code === 'unavailable') {
    const retryAfter = typeof frame.retryAfter === 'number' && Number.isFinite(frame.retryAfter) && frame.retryAfter >= 0 ? frame.retryAfter : 1_000
    return { id, result: { ok: false, code: 'unavailable', retryAfter } }
  }
  return { id, result: { ok: false, code: frame.code.slice(0, 32) } }
}

const defaultNow = (): number => performance.timeOrigin + performance.now()

export class ArbiterClient extends IsolatedObservable<ArbiterClientEvents> {
  readonly room: string
  readonly #opts: ArbiterClientOptions
  readonly #now: () => number
  readonly #requestTimeout: number
  readonly #unsubscribe: Array<() => void> = []
  #connected: boolean
  #session: Session | null = null
  #destroyed = false
  /** Request ids start at random, so that two clients on one connection do not answer each other's. */
  #nextId = 1 + Math.floor(Math.random() * 2 ** 30)
  #seq = 0
  /** Requests are signed and sent one after another, so that their seqs arrive in order. */
  #signing: Promise<unknown> = Promise.resolve()
  readonly #pending = new Map<number, { resolve: (result: Result | null) => void, timer: ReturnType<typeof setTimeout> }>()
  #watchId = 0
  #watchTimer: ReturnType<typeof setTimeout> | undefined
  #watchRetry = WATCH_RETRY_MIN
  #generation = 0
  readonly #known = new Map<string, Known>()
  /** Per key, the highest fencing token the arbiter said has ended. */
  readonly #ended = new Map<string, number>()
  readonly #held = new Map<string, Held>()
  readonly #wakers = new Set<{ key: string | null, wake: () => void }>()

  constructor (options: ArbiterClientOptions) {
    super()
    if (typeof options.room !== 'string' || options.room.length === 0) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'room must be a non-empty string')
    if (options.serverKey !== undefined && toServerKey(options.serverKey) === null) {
      throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'serverKey must be an Ed25519 public JWK')
    }
    this.#opts = options
    this.room = options.room
    this.#now = options.now ?? defaultNow
    this.#requestTimeout = options.requestTimeout ?? 5_000
    this.#connected = options.connected ?? options.onStatus === undefined
    this.#unsubscribe.push(options.onFrame((frame) => this.#onFrame(frame)))
    if (options.onStatus !== undefined) this.#unsubscribe.push(options.onStatus((connected) => this.#onStatus(connected)))
    if (this.#connected) this.#watch()
  }

  /** Whether the arbiter has answered on the current connection (locks can be asked for). */
  get ready (): boolean {
    return this.#session !== null
  }

  /** The arbiter's public key, once known (pinned, or sent by the server). */
  get serverKey (): JWK | null {
    return this.#opts.serverKey ?? this.#session?.serverKey ?? null
  }

  /**
   * Takes the lock of `key` for `ttl` ms and keeps renewing it while held. Rejects LOCKED when
   * another peer holds it (after waiting up to `wait` ms for it to be released), LOCK_UNAVAILABLE
   * when no arbiter answers (within `wait`), PERMISSION_DENIED when the room token does not grant the key,
   * INVALID_KEY / INVALID_OPTION for bad arguments. A lock this peer holds already is returned as is.
   */
  async acquire (key: string, { ttl = MIN_LOCK_TTL, wait = 0 }: AcquireOptions = {}): Promise<HeldLock> {
    if (!isLockKey(key)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'a lock key is a non-empty, well-formed string of at most 1024 characters', { key })
    if (!isLockTtl(ttl)) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'ttl must be an integer from 10000 to 300000 ms', { key })
    if (typeof wait !== 'number' || !(wait >= 0) || wait === Infinity) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'wait must be a finite number of ms >= 0', { key })
    const deadline = this.#now() + wait
    let backoff = 100
    for (;;) {
      if (this.#destroyed) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'the lock client was destroyed', { key })
      const mine = this.#held.get(key)
      if (mine?.handle != null && this.isHeld(key)) return mine.handle
      const left = deadline - this.#now()
      if (this.#session === null) {
        if (left <= 0) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'no lock arbiter is connected', { key })
        await this.#waitFor(null, left)
        continue
      }
      const sentAt = this.#now()
      const result = await this.#request('acquire', key, { ttl })
      if (result !== null && result.ok && result.op === 'acquire') {
        const lock = await this.#take(key, result.lease, result.grant, sentAt, ttl, result.previous)
        if (lock !== null) return lock
        throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'the arbiter sent a grant that does not verify', { key })
      }
      const now = this.#now()
      if (result !== null && !result.ok && result.code === 'locked' && 'lease' in result) {
        this.#learn(result.lease, 'grant')
        // The end of that lease may have been told between the answer and now: then ask again.
        const known = this.#known.get(key)
        if (known === undefined && wait > 0) continue
        if (deadline - now <= 0) throw new SessionStoreError(ErrorCodes.LOCKED, `the lock is held by ${result.lease.holder}`, { key })
        // Until the holder's lease is said to end (or runs out), or the wait is over.
        await this.#waitFor(key, Math.min(deadline - now, (known?.deadline ?? now) - now + 50))
        continue
      }
      if (result !== null && !result.ok && result.code === 'forbidden') {
        throw new SessionStoreError(ErrorCodes.PERMISSION_DENIED, 'the room token does not grant this key (or the room has none)', { key })
      }
      if (result === null && this.#session !== null) {
        // No answer: the grant may have been made. Give back whatever this peer holds of the key.
        this.#send('release', key, {}).catch(() => {})
      }
      if (deadline - now <= 0) {
        const why = result === null ? 'no answer' : !result.ok ? result.code : 'an unexpected answer'
        throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, `the lock arbiter did not grant the lock (${why})`, { key })
      }
      const retryAfter = result !== null && !result.ok && 'retryAfter' in result ? Math.max(result.retryAfter, 100) : backoff
      backoff = Math.min(backoff * 2, 2_000)
      await this.#waitFor(null, Math.min(deadline - now, retryAfter))
    }
  }

  /** Gives the lock of `key` back, if this peer holds it. Never rejects. */
  async release (key: string): Promise<void> {
    const held = this.#held.get(key)
    if (held === undefined) return
    this.#drop(held)
    const result = await this.#request('release', key, { fencing: held.fencing })
    if (result !== null && result.ok) this.#end(key, held.fencing, 'release')
  }

  /**
   * Ends the lock of `key` whoever holds it. Allowed to a peer whose room token grants the key; in
   * rooms without tokens only to the holder. Rejects PERMISSION_DENIED or LOCK_UNAVAILABLE; resolves when
   * the lock has ended (or there was none).
   */
  async revoke (key: string): Promise<void> {
    if (!isLockKey(key)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'not a lock key', { key })
    const known = this.#known.get(key)
    const result = await this.#request('revoke', key, known === undefined ? {} : { fencing: known.fencing })
    if (result === null) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'no lock arbiter answered', { key })
    if (result.ok) {
      if (known !== undefined) this.#end(key, known.fencing, 'revoke')
      return
    }
    if (result.code === 'not_holder') return
    if (result.code === 'forbidden') throw new SessionStoreError(ErrorCodes.PERMISSION_DENIED, 'this peer may not revoke the lock', { key })
    throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, `the lock arbiter did not revoke the lock (${result.code})`, { key })
  }

  /** Who holds `key` as far as this peer knows (the arbiter tells every watcher), or null. */
  holder (key: string): LockInfo | null {
    const known = this.#known.get(key)
    if (known === undefined || known.deadline <= this.#now()) return null
    return { key, holder: known.holder, fencingToken: known.fencing, expiresAt: this.#expiresAt(known.deadline) }
  }

  /** Every lock of the room this peer knows of. */
  locks (): LockInfo[] {
    return [...this.#known.keys()].map((key) => this.holder(key)).filter((info): info is LockInfo => info !== null)
  }

  /** Whether this peer holds `key`'s lock now: granted, not released or lost, and its lease not run out. */
  isHeld (key: string): boolean {
    const held = this.#held.get(key)
    return held !== undefined && held.deadline > this.#now()
  }

  /** The signed grant of this peer's lock of `key`, while it holds it. */
  grantOf (key: string): string | undefined {
    return this.isHeld(key) ? this.#held.get(key)?.grant : undefined
  }

  /**
   * Checks a grant (as a holder attaches it to its writes) with the arbiter's key; null when it is
   * not one of this room. While the key is not known yet (no answer from the arbiter so far), waits
   * up to `wait` ms for it; null after that.
   */
  async verifyGrant (grant: string, { wait = 0 }: { wait?: number } = {}): Promise<GrantPayload | null> {
    const deadline = this.#now() + wait
    while (this.serverKey === null && !this.#destroyed && deadline > this.#now()) await this.#waitFor(null, deadline - this.#now())
    const serverKey = this.serverKey
    if (serverKey === null) return null
    const payload = await verifyGrant(grant, serverKey)
    return payload !== null && payload.room === this.room ? payload : null
  }

  /** Stops: gives back what it holds (best effort), stops renewing and listening, drops its listeners. */
  override destroy (): void {
    if (this.#destroyed) return
    for (const held of [...this.#held.values()]) {
      this.#drop(held)
      this.#send('release', held.key, { fencing: held.fencing }, false).catch(() => {})
    }
    this.#destroyed = true
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    clearTimeout(this.#watchTimer)
    for (const known of this.#known.values()) clearTimeout(known.timer)
    this.#known.clear()
    this.#failPending()
    this.#wakeAll()
    super.destroy()
  }

  // ---- connection and watch ---------------------------------------------------------------------

  #onStatus (connected: boolean): void {
    if (this.#destroyed || connected === this.#connected) return
    this.#connected = connected
    this.#session = null
    clearTimeout(this.#watchTimer)
    if (connected) {
      this.#watchRetry = WATCH_RETRY_MIN
      this.#watch()
      return
    }
    this.#failPending()
    for (const held of this.#held.values()) clearTimeout(held.renewTimer)
  }

  #watch (): void {
    if (this.#destroyed || !this.#connected) return
    clearTimeout(this.#watchTimer)
    const id = this.#nextId++
    this.#watchId = id
    this.#generation++
    const generation = this.#generation
    const retry = (): void => {
      if (this.#watchId !== id) return
      this.#watchTimer = setTimeout(() => this.#watch(), this.#watchRetry)
      this.#watchRetry = Math.min(this.#watchRetry * 2, WATCH_RETRY_MAX)
    }
    this.#pending.set(id, {
      resolve: (result) => {
        if (result === null || !result.ok || result.op !== 'watch') {
          if (this.#connected) retry()
          return
        }
        this.#onWatched(result, generation)
      },
      timer: setTimeout(() => this.#settle(id, null), this.#requestTimeout)
    })
    if (!this.#trySend({ type: 'lock', op: 'watch', id, room: this.room })) this.#settle(id, null)
  }

  #onWatched (result: Extract<Result, { op: 'watch' }>, generation: number): void {
    const pinned = this.#opts.serverKey
    if (pinned !== undefined && pinned.x !== result.serverKey.x) {
      this.#emit('error', new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'the signaling server signs lock grants with a key other than serverKey: not trusted as arbiter'))
      return
    }
    this.#session = { nonce: result.nonce, serverKey: result.serverKey }
    this.#watchRetry = WATCH_RETRY_MIN
    // What was known before this watch and is not in the snapshot has ended meanwhile.
    const live = new Set(result.locks.map((lease) => lease.key))
    for (const [key, known] of [...this.#known]) {
      if (known.generation < generation && !live.has(key)) this.#end(key, known.fencing, 'expire')
    }
    for (const lease of result.locks) this.#learn(lease, 'grant')
    for (const held of [...this.#held.values()]) {
      if (held.deadline > this.#now()) this.#renew(held)
      else this.#lose(held, 'expired')
    }
    this.#wakeAll()
  }

  // ---- frames -----------------------------------------------------------------------------------

  #onFrame (frame: unknown): void {
    if (this.#destroyed || !isRecord(frame) || frame.room !== this.room) return
    try {
      if (frame.type === 'lock-result') {
        const parsed = toResult(frame)
        if (parsed !== null) this.#settle(parsed.id, parsed.result)
      } else if (frame.type === 'lock-event') {
        this.#onEvent(frame)
      }
    } catch (err) {
      this.#emit('error', new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, 'a lock frame could not be handled', { cause: err }))
    }
  }

  #onEvent (frame: Record<string, unknown>): void {
    if (this.#session === null) return
    if (frame.event === 'snapshot') {
      const leases = toLeases(frame.locks)
      if (leases !== null) for (const lease of leases) this.#learn(lease, 'grant')
      return
    }
    const lease = toWireLease(frame)
    if (lease === null) return
    switch (frame.event) {
      case 'grant':
      case 'renew':
        this.#learn(lease, frame.event, toPrevious(frame.previous))
        break
      case 'release':
      case 'expire':
      case 'revoke':
        this.#end(lease.key, lease.fencing, frame.event)
        break
    }
  }

  // ---- the room's view --------------------------------------------------------------------------

  /** A lease the arbiter told of: newer than what is known, and not ended already. `previous`: the arbiter's, when it said. */
  #learn (lease: WireLease, how: 'grant' | 'renew', previous?: string | null): void {
    if (lease.fencing <= (this.#ended.get(lease.key) ?? 0)) return
    const current = this.#known.get(lease.key)
    if (current !== undefined && current.fencing > lease.fencing) return
    if (current !== undefined) clearTimeout(current.timer)
    const known: Known = { holder: lease.holder, fencing: lease.fencing, deadline: this.#now() + lease.ttl, generation: this.#generation, timer: undefined }
    // Heard of no renewal by then: most likely this peer lost the connection; the lease is over.
    known.timer = setTimeout(() => {
      if (this.#known.get(lease.key) !== known) return
      this.#known.delete(lease.key)
      this.#changed({ key: lease.key, holder: null, previous: known.holder, fencingToken: known.fencing, released: true, reason: 'expire' })
    }, lease.ttl)
    this.#known.set(lease.key, known)
    if (current?.fencing !== lease.fencing) {
      this.#changed({ key: lease.key, holder: lease.holder, previous: previous !== undefined ? previous : current?.holder ?? null, fencingToken: lease.fencing, released: false, reason: how === 'renew' ? 'grant' : how })
    }
  }

  /** The arbiter said the grant `fencing` of `key` ended. */
  #end (key: string, fencing: number, reason: 'release' | 'expire' | 'revoke'): void {
    this.#ended.set(key, Math.max(this.#ended.get(key) ?? 0, fencing))
    const held = this.#held.get(key)
    if (held !== undefined && held.fencing <= fencing) this.#lose(held, reason === 'revoke' ? 'revoked' : reason === 'release' ? 'released' : 'expired')
    const known = this.#known.get(key)
    if (known === undefined || known.fencing > fencing) return
    clearTimeout(known.timer)
    this.#known.delete(key)
    this.#changed({ key, holder: null, previous: known.holder, fencingToken: known.fencing, released: true, reason })
  }

  #changed (change: LockChange): void {
    this.#emit('lock', change)
    this.#wake(change.key)
  }

  // ---- own locks --------------------------------------------------------------------------------

  async #take (key: string, lease: WireLease, grant: string, sentAt: number, ttl: number, previous: string | null | undefined): Promise<HeldLock | null> {
    const payload = await this.#verifyOwn(grant, key, lease)
    if (payload === null) {
      this.#send('release', key, { fencing: lease.fencing }).catch(() => {})
      return null
    }
    const replaced = this.#held.get(key)
    if (replaced !== undefined) this.#drop(replaced)
    const held: Held = { key, fencing: lease.fencing, ttl: Math.min(lease.ttl, ttl), grant, deadline: sentAt + Math.min(lease.ttl, ttl), renewTimer: undefined, expiryTimer: undefined, handle: null }
    const client = this
    // An extension (the lock was this peer's already) has no previous holder but this peer.
    const before = previous === undefined ? null : previous === this.#opts.identity.id ? null : previous
    held.handle = {
      key,
      holder: this.#opts.identity.id,
      previous: before,
      get fencingToken () { return held.fencing },
      get expiresAt () { return client.#expiresAt(held.deadline) },
      get grant () { return held.grant },
      get held () { return client.#held.get(key) === held && held.deadline > client.#now() },
      release: async () => {
        if (this.#held.get(key) === held) await this.release(key)
      }
    }
    this.#held.set(key, held)
    this.#learn(lease, 'grant', previous)
    this.#schedule(held)
    return held.handle
  }

  /** A grant for this peer, of this key, with the token the answer said. */
  async #verifyOwn (grant: string, key: string, lease: WireLease): Promise<GrantPayload | null> {
    const serverKey = this.serverKey
    const payload = serverKey === null ? null : await verifyGrant(grant, serverKey)
    if (payload === null || payload.room !== this.room || payload.key !== key || payload.holder !== this.#opts.identity.id || payload.fencing !== lease.fencing) return null
    return payload
  }

  /** The next renewal in a third of the TTL; the end of the lease at its deadline. */
  #schedule (held: Held, delay = held.ttl / 3): void {
    clearTimeout(held.renewTimer)
    clearTimeout(held.expiryTimer)
    const left = held.deadline - this.#now()
    held.expiryTimer = setTimeout(() => {
      if (this.#held.get(held.key) === held && held.deadline <= this.#now()) this.#lose(held, 'expired')
    }, Math.max(0, left))
    if (this.#session !== null) held.renewTimer = setTimeout(() => this.#renew(held), Math.max(0, Math.min(delay, left)))
  }

  #renew (held: Held): void {
    if (this.#held.get(held.key) !== held || this.#session === null) return
    const sentAt = this.#now()
    this.#request('renew', held.key, { ttl: held.ttl, fencing: held.fencing }).then(async (result) => {
      if (this.#held.get(held.key) !== held) return
      const renewed = result !== null && result.ok && result.op === 'renew' ? result : null
      const verified = renewed !== null && await this.#verifyOwn(renewed.grant, held.key, renewed.lease) !== null
      // The grant is checked in real time: meanwhile the lease may have run out (while the
      // connection was down), or the lock been released or revoked. A lost lock stays lost: taking
      // the late answer would tell the room this peer holds it again, after 'lost' said it did not.
      if (this.#held.get(held.key) !== held) return
      if (renewed !== null && verified) {
        held.grant = renewed.grant
        held.deadline = sentAt + Math.min(renewed.lease.ttl, held.ttl)
        this.#learn(renewed.lease, 'renew')
        this.#schedule(held)
      } else if (result !== null && !result.ok && (result.code === 'not_holder' || result.code === 'forbidden')) {
        this.#lose(held, 'refused')
      } else {
        this.#schedule(held, RENEW_RETRY)
      }
    }).catch((err: unknown) => this.#emit('error', new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, 'renewing a lock failed', { key: held.key, cause: err })))
  }

  /** Stops renewing `held` and forgets it. */
  #drop (held: Held): void {
    clearTimeout(held.renewTimer)
    clearTimeout(held.expiryTimer)
    if (this.#held.get(held.key) === held) this.#held.delete(held.key)
  }

  #lose (held: Held, reason: LostReason): void {
    if (this.#held.get(held.key) !== held) return
    this.#drop(held)
    this.#emit('lost', { key: held.key, fencingToken: held.fencing, reason })
  }

  #expiresAt (deadline: number): number {
    return Math.round(deadline)
  }

  // ---- requests ---------------------------------------------------------------------------------

  /** Signs and sends one request; its answer, or null when none came (not connected, timed out, cut). */
  async #request (op: LockOp, key: string, fields: { ttl?: number, fencing?: number }): Promise<Result | null> {
    try {
      return await this.#send(op, key, fields)
    } catch {
      return null
    }
  }

  /** `answer: false` sends without waiting for the answer (a last release on the way out). */
  async #send (op: LockOp, key: string, fields: { ttl?: number, fencing?: number }, answer = true): Promise<Result | null> {
    // The answer travels in an object: a promise returned from `then` would be waited for, and
    // every request would wait for the answer of the one before.
    const sent = this.#signing.then(async (): Promise<{ answer: Promise<Result | null> } | null> => {
      const session = this.#session
      if (session === null || (this.#destroyed && answer)) return null
      const seq = ++this.#seq
      const jws = await this.#opts.identity.sign({ ...requestPayload({ op, room: this.room, key, nonce: session.nonce, seq, ...fields }) })
      if (this.#session !== session) return null
      const id = this.#nextId++
      const frame: Record<string, unknown> = { type: 'lock', op, id, room: this.room, key, peer: this.#opts.identity.id, jws, ...fields }
      const token = this.#opts.token?.()
      if (typeof token === 'string' && token.length > 0) frame.token = token
      if (!answer) {
        this.#trySend(frame)
        return null
      }
      const reply = new Promise<Result | null>((resolve) => {
        this.#pending.set(id, { resolve, timer: setTimeout(() => this.#settle(id, null), this.#requestTimeout) })
      })
      if (!this.#trySend(frame)) this.#settle(id, null)
      return { answer: reply }
    })
    this.#signing = sent.catch(() => {})
    const handle = await sent
    return handle === null ? null : await handle.answer
  }

  #trySend (frame: object): boolean {
    try {
      this.#opts.send(frame)
      return true
    } catch {
      return false
    }
  }

  #settle (id: number, result: Result | null): void {
    const pending = this.#pending.get(id)
    if (pending === undefined) return
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    pending.resolve(result)
  }

  #failPending (): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id, null)
  }

  // ---- waiting ----------------------------------------------------------------------------------

  /** Resolves when `key`'s holder changes or the session does (for null: only the session), or after `ms`. */
  async #waitFor (key: string | null, ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const waker = { key, wake: () => done() }
      const timer = setTimeout(() => done(), Math.max(0, ms))
      const done = (): void => {
        clearTimeout(timer)
        this.#wakers.delete(waker)
        resolve()
      }
      this.#wakers.add(waker)
    })
  }

  #wake (key: string): void {
    for (const waker of [...this.#wakers]) if (waker.key === key) waker.wake()
  }

  #wakeAll (): void {
    for (const waker of [...this.#wakers]) waker.wake()
  }

  #emit<E extends keyof ArbiterClientEvents & string>(name: E, payload: Parameters<ArbiterClientEvents[E]>[0]): void {
    this.emitIsolated(name, payload, (err) => {
      if (name !== 'error') this.emitIsolated('error', new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a '${name}' listener threw`, { cause: err }), () => {})
    })
  }
}

/**
 * The lock arbiter's state machine, in memory: leases per (room, key) with a holder, a fencing
 * token and an expiry. Pure: the clock is passed in, nothing here sets a timer or touches a
 * socket; the memory arbiter (lock-arbiter.ts) and the tests drive it. The Redis arbiter
 * (redis-locks.ts) implements the same rules in Lua; PROTOCOL.md ("Locks") states them.
 *
 * - acquire grants a free key (or one whose lease has run out), refuses a key held by another
 *   peer (naming the holder and when its lease ends), and extends the lease when the holder asks
 *   again (same fencing token: a holder that comes back within its TTL keeps the lock).
 * - renew extends the lease of the holder of that very grant (holder and fencing token), release
 *   and revoke delete it (compare-and-delete: only that grant, never a newer one).
 * - Fencing tokens strictly increase per key, across restarts: each is at least the clock's
 *   microseconds since the epoch at the grant, and above every token this table issued before.
 * - For `grace` ms after it starts, the table refuses every grant (`unavailable`): locks granted
 *   before a restart (which the table no longer knows) have run out by then.
 *
 * A lease that has run out reads as free at once; `expire()` removes it and says so (the owner of
 * the table calls it before each operation and at `nextExpiry()`, and tells the room).
 */

import { MAX_LOCK_TTL, isLockTtl } from '../src/locks/wire.js'

export interface Lease {
  readonly room: string
  readonly key: string
  /** The holder's peer id. */
  readonly holder: string
  readonly fencing: number
  /** ms since the epoch, by the table's clock. */
  readonly expiresAt: number
}

export type EndReason = 'release' | 'revoke' | 'expire'

export type AcquireResult =
  /**
   * `extended`: the holder asked again and its lease was extended. `previous`: the holder of the
   * key's grant before this one (whose writes the new holder waits for), null when unknown or
   * for an extension.
   */
  | { ok: true, lease: Lease, extended: boolean, previous: string | null }
  | { ok: false, code: 'locked', lease: Lease }
  | { ok: false, code: 'unavailable', retryAfter: number }
  | { ok: false, code: 'too_many' }
  | { ok: false, code: 'malformed' }

export type RenewResult =
  | { ok: true, lease: Lease }
  /** The grant is gone (released, revoked, expired) or was never this peer's; `lease` is the key's current one. */
  | { ok: false, code: 'not_holder', lease: Lease | null }
  | { ok: false, code: 'malformed' }

export type EndResult =
  | { ok: true, lease: Lease }
  | { ok: false, code: 'not_holder', lease: Lease | null }

export interface LockTableOptions {
  /** Wall clock, ms since the epoch. Fencing tokens derive from it. */
  clock: () => number
  /** ms after start during which every grant is refused. Default MAX_LOCK_TTL. */
  grace?: number
  /** Live leases per room at most. Default 1024. */
  maxLocksPerRoom?: number
}

export const DEFAULT_MAX_LOCKS_PER_ROOM = 1024

/** Keys whose last holder is remembered (for `previous`), the least recently granted forgotten first. */
const MAX_LAST_HOLDERS = 16_384

interface Deadline {
  expiresAt: number
  room: string
  key: string
  fencing: number
}

/** A binary min-heap of deadlines; stale ones (renewed or ended leases) are skipped when popped. */
class Deadlines {
  private readonly items: Deadline[] = []

  get size (): number {
    return this.items.length
  }

  peek (): Deadline | undefined {
    return this.items[0]
  }

  push (item: Deadline): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if ((items[parent] as Deadline).expiresAt <= item.expiresAt) break
      items[i] = items[parent] as Deadline
      i = parent
    }
    items[i] = item
  }

  pop (): Deadline | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      if (left >= items.length) break
      const right = left + 1
      const child = right < items.length && (items[right] as Deadline).expiresAt < (items[left] as Deadline).expiresAt ? right : left
      if ((items[child] as Deadline).expiresAt >= last.expiresAt) break
      items[i] = items[child] as Deadline
      i = child
    }
    items[i] = last
    return top
  }
}

export class LockTable {
  private readonly rooms = new Map<string, Map<string, Lease>>()
  private readonly deadlines = new Deadlines()
  private readonly clock: () => number
  private readonly maxLocksPerRoom: number
  /** The last fencing token issued, for every key: one counter keeps them all increasing. */
  private lastFencing = 0
  /** The holder of each key's last grant, by `room \n key`: grants of a key follow one another, so it is the next one's previous holder. */
  private readonly lastHolders = new Map<string, string>()
  private leases = 0
  /** Grants are refused before this instant. */
  readonly availableAt: number

  constructor ({ clock, grace = MAX_LOCK_TTL, maxLocksPerRoom = DEFAULT_MAX_LOCKS_PER_ROOM }: LockTableOptions) {
    if (!(Number.isInteger(grace) && grace >= 0)) throw new RangeError('grace must be an integer >= 0')
    this.clock = clock
    this.maxLocksPerRoom = maxLocksPerRoom
    this.availableAt = clock() + grace
  }

  /** Live leases (expired ones still count until `expire` or an operation on their key removes them). */
  get size (): number {
    return this.leases
  }

  /** The key's lease, or null when it is free (an expired lease counts as free). */
  get (room: string, key: string): Lease | null {
    const lease = this.rooms.get(room)?.get(key)
    return lease === undefined || lease.expiresAt <= this.clock() ? null : lease
  }

  /** The live leases of a room. */
  list (room: string): Lease[] {
    const now = this.clock()
    return [...(this.rooms.get(room)?.values() ?? [])].filter((lease) => lease.expiresAt > now)
  }

  acquire (room: string, key: string, holder: string, ttl: number): AcquireResult {
    if (!isLockTtl(ttl)) return { ok: false, code: 'malformed' }
    const now = this.clock()
    const current = this.get(room, key)
    if (current !== null && current.holder !== holder) return { ok: false, code: 'locked', lease: current }
    if (current !== null) return { ok: true, lease: this.put({ ...current, expiresAt: now + ttl }), extended: true, previous: null }
    if (now < this.availableAt) return { ok: false, code: 'unavailable', retryAfter: this.availableAt - now }
    const leases = this.rooms.get(room)
    if (leases !== undefined && leases.size >= this.maxLocksPerRoom) return { ok: false, code: 'too_many' }
    this.lastFencing = Math.max(this.lastFencing + 1, Math.floor(now * 1000))
    const slot = `${room}\n${key}`
    const previous = this.lastHolders.get(slot) ?? null
    this.lastHolders.delete(slot)
    this.lastHolders.set(slot, holder)
    if (this.lastHolders.size > MAX_LAST_HOLDERS) this.lastHolders.delete(this.lastHolders.keys().next().value as string)
    return { ok: true, lease: this.put({ room, key, holder, fencing: this.lastFencing, expiresAt: now + ttl }), extended: false, previous }
  }

  renew (room: string, key: string, holder: string, fencing: number, ttl: number): RenewResult {
    if (!isLockTtl(ttl)) return { ok: false, code: 'malformed' }
    const current = this.get(room, key)
    if (current === null || current.holder !== holder || current.fencing !== fencing) return { ok: false, code: 'not_holder', lease: current }
    return { ok: true, lease: this.put({ ...current, expiresAt: this.clock() + ttl }) }
  }

  /** Compare-and-delete by the holder; `fencing` (when given) must be the lease's too. */
  release (room: string, key: string, holder: string, fencing?: number): EndResult {
    const current = this.get(room, key)
    if (current === null || current.holder !== holder || (fencing !== undefined && current.fencing !== fencing)) {
      return { ok: false, code: 'not_holder', lease: current }
    }
    this.delete(current)
    return { ok: true, lease: current }
  }

  /** Ends the key's lease whoever holds it (the caller decided the requester may); `fencing` (when given) must match. */
  revoke (room: string, key: string, fencing?: number): EndResult {
    const current = this.get(room, key)
    if (current === null || (fencing !== undefined && current.fencing !== fencing)) return { ok: false, code: 'not_holder', lease: current }
    this.delete(current)
    return { ok: true, lease: current }
  }

  /** Removes the leases that have run out by now and returns them, earliest first. */
  expire (): Lease[] {
    const now = this.clock()
    const expired: Lease[] = []
    for (let next = this.deadlines.peek(); next !== undefined && next.expiresAt <= now; next = this.deadlines.peek()) {
      this.deadlines.pop()
      const lease = this.rooms.get(next.room)?.get(next.key)
      if (lease === undefined || lease.fencing !== next.fencing || lease.expiresAt !== next.expiresAt) continue
      this.delete(lease)
      expired.push(lease)
    }
    return expired
  }

  /** When the earliest live lease runs out (ms since the epoch), or null when none is held. */
  nextExpiry (): number | null {
    for (let next = this.deadlines.peek(); next !== undefined; next = this.deadlines.peek()) {
      const lease = this.rooms.get(next.room)?.get(next.key)
      if (lease !== undefined && lease.fencing === next.fencing && lease.expiresAt === next.expiresAt) return next.expiresAt
      this.deadlines.pop()
    }
    return null
  }

  private put (lease: Lease): Lease {
    let leases = this.rooms.get(lease.room)
    if (leases === undefined) {
      leases = new Map()
      this.rooms.set(lease.room, leases)
    }
    if (!leases.has(lease.key)) this.leases++
    leases.set(lease.key, lease)
    this.deadlines.push({ expiresAt: lease.expiresAt, room: lease.room, key: lease.key, fencing: lease.fencing })
    return lease
  }

  private delete (lease: Lease): void {
    const leases = this.rooms.get(lease.room)
    if (leases?.get(lease.key) !== lease) return
    leases.delete(lease.key)
    this.leases--
    if (leases.size === 0) this.rooms.delete(lease.room)
  }
}

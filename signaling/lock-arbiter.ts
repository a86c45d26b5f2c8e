/**
 * The arbiter as the server sees it: asynchronous operations on leases and a stream of events
 * (grant, renew, release, revoke, expire) for the rooms' watchers. Two implementations with the
 * same rules: the memory arbiter here (one process: the LockTable and a timer for expiries) and
 * the Redis arbiter (redis-locks.ts: several instances, state in Redis). lock-service.ts puts the
 * protocol on top (signatures, permissions, replies, events to watchers) and knows neither.
 */

import { LockTable, type EndReason, type Lease } from './locks.js'

/** A lease as an arbiter answers it: `ttl` is how many ms it had left when answered (no clock needed to use it). */
export interface ArbiterLease extends Lease {
  readonly ttl: number
}

export interface Unavailable {
  ok: false
  code: 'unavailable'
  /** ms after which asking again may succeed. */
  retryAfter: number
}

export type ArbiterAcquire =
  /** `previous`: the holder of the key's grant before this one (null: unknown, or an extension). */
  | { ok: true, lease: ArbiterLease, extended: boolean, previous: string | null }
  | { ok: false, code: 'locked', lease: ArbiterLease }
  | { ok: false, code: 'too_many' | 'malformed' }
  | Unavailable

export type ArbiterRenew =
  | { ok: true, lease: ArbiterLease }
  | { ok: false, code: 'not_holder' | 'malformed' }
  | Unavailable

export type ArbiterEnd =
  | { ok: true, lease: Lease }
  | { ok: false, code: 'not_holder' }
  | Unavailable

export type LockEventKind = 'grant' | 'renew' | EndReason

/** A change of a lease, for every watcher of its room; `ttl` is 0 for the ends. */
export interface LockEvent {
  readonly event: LockEventKind
  readonly lease: ArbiterLease
  /** For a grant: the holder of the key's grant before it, or null. */
  readonly previous?: string | null
}

export interface LockArbiter {
  acquire: (room: string, key: string, holder: string, ttl: number) => Promise<ArbiterAcquire>
  renew: (room: string, key: string, holder: string, fencing: number, ttl: number) => Promise<ArbiterRenew>
  /** Compare-and-delete by the holder; with `fencing`, only that grant. */
  release: (room: string, key: string, holder: string, fencing?: number) => Promise<ArbiterEnd>
  /** Deletes the key's lease whoever holds it (the service has checked the right); with `fencing`, only that grant. */
  revoke: (room: string, key: string, fencing?: number) => Promise<ArbiterEnd>
  /** The room's live leases, or null when the arbiter cannot tell now. */
  list: (room: string) => Promise<ArbiterLease[] | null>
  /** The service has watchers of `room` here (events of its expiries are needed) / no longer has. */
  watch: (room: string) => void
  unwatch: (room: string) => void
  /** Every event of every room (the service filters by its watchers). Set once, before use. */
  onEvent: (listener: (event: LockEvent) => void) => void
  /**
   * Called when events may have been missed (a Redis link that came back): the service sends its
   * watchers a fresh snapshot. The memory arbiter never calls it.
   */
  onResync: (listener: () => void) => void
  /** Leases held, where the arbiter can count them cheaply (memory), else null. */
  readonly size: number | null
  close: () => Promise<void>
}

/** setTimeout's largest delay. */
const MAX_TIMER_DELAY = 2 ** 31 - 1

const withTtl = (lease: Lease, now: number): ArbiterLease => ({ ...lease, ttl: Math.max(0, lease.expiresAt - now) })

export interface MemoryArbiterOptions {
  /** Wall clock, ms since the epoch. Default Date.now. */
  clock?: () => number
  /** See LockTable. */
  grace?: number
  maxLocksPerRoom?: number
}

/** The arbiter of one process: locks live and die with it (PROTOCOL.md says why that is safe). */
export class MemoryArbiter implements LockArbiter {
  private readonly table: LockTable
  private readonly clock: () => number
  private listener: (event: LockEvent) => void = () => {}
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerAt = Infinity
  private closed = false

  constructor ({ clock = Date.now, grace, maxLocksPerRoom }: MemoryArbiterOptions = {}) {
    this.clock = clock
    this.table = new LockTable({ clock, ...(grace === undefined ? {} : { grace }), ...(maxLocksPerRoom === undefined ? {} : { maxLocksPerRoom }) })
  }

  get size (): number {
    return this.table.size
  }

  onEvent (listener: (event: LockEvent) => void): void {
    this.listener = listener
  }

  onResync (): void {}

  watch (): void {}

  unwatch (): void {}

  async acquire (room: string, key: string, holder: string, ttl: number): Promise<ArbiterAcquire> {
    this.expire()
    const result = this.table.acquire(room, key, holder, ttl)
    const now = this.clock()
    if (!result.ok) return result.code === 'locked' ? { ok: false, code: 'locked', lease: withTtl(result.lease, now) } : result
    const lease = withTtl(result.lease, now)
    this.emit(result.extended ? 'renew' : 'grant', lease, result.extended ? undefined : result.previous)
    return { ok: true, lease, extended: result.extended, previous: result.previous }
  }

  async renew (room: string, key: string, holder: string, fencing: number, ttl: number): Promise<ArbiterRenew> {
    this.expire()
    const result = this.table.renew(room, key, holder, fencing, ttl)
    if (!result.ok) return { ok: false, code: result.code }
    const lease = withTtl(result.lease, this.clock())
    this.emit('renew', lease)
    return { ok: true, lease }
  }

  async release (room: string, key: string, holder: string, fencing?: number): Promise<ArbiterEnd> {
    this.expire()
    return this.end('release', this.table.release(room, key, holder, fencing))
  }

  async revoke (room: string, key: string, fencing?: number): Promise<ArbiterEnd> {
    this.expire()
    return this.end('revoke', this.table.revoke(room, key, fencing))
  }

  async list (room: string): Promise<ArbiterLease[]> {
    this.expire()
    const now = this.clock()
    return this.table.list(room).map((lease) => withTtl(lease, now))
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
  }

  private end (reason: EndReason, result: ReturnType<LockTable['release']>): ArbiterEnd {
    if (!result.ok) return { ok: false, code: 'not_holder' }
    this.emit(reason, { ...result.lease, ttl: 0 })
    return { ok: true, lease: result.lease }
  }

  private emit (event: LockEvent['event'], lease: ArbiterLease, previous?: string | null): void {
    this.listener(previous === undefined ? { event, lease } : { event, lease, previous })
    this.schedule()
  }

  /** Tells the room of every lease that has run out, then waits for the next one. */
  private expire (): void {
    for (const lease of this.table.expire()) this.listener({ event: 'expire', lease: { ...lease, ttl: 0 } })
  }

  private schedule (): void {
    if (this.closed) return
    const next = this.table.nextExpiry()
    if (next === null || next >= this.timerAt) return
    clearTimeout(this.timer)
    this.timerAt = next
    this.timer = setTimeout(() => {
      this.timerAt = Infinity
      this.expire()
      this.schedule()
    }, Math.min(Math.max(0, next - this.clock()), MAX_TIMER_DELAY))
    this.timer.unref()
  }
}

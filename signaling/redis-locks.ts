/**
 * The lock arbiter of instances that share a Redis (PROTOCOL.md, "Locks across instances"): the
 * state lives in Redis only, and every operation is one Lua script, atomic there, so two peers on
 * two instances never both hold a lock. The lease is `SET lock "FENCING HOLDER" NX PX ttl`; renew
 * and release compare holder and fencing token before they touch it (compare-and-renew,
 * compare-and-delete); the fencing counter of each key grows from max(last + 1, Redis's clock in
 * microseconds), so it survives a Redis that lost its data.
 *
 * Nothing is decided from this process's memory: when Redis cannot be reached, every operation
 * answers `unavailable`, never a grant. Each script publishes its event on one channel, which every
 * instance reads and hands to its watchers; expiries, which nobody runs a script for, are found by
 * the instances that watch the room (a check at each tracked lease's end, announced once).
 */

import { randomUUID } from 'node:crypto'
import type { Redis, RedisOptions } from 'ioredis'
import type { JWK } from 'jose'
import { MAX_LOCK_TTL, MAX_PEER_ID_LENGTH, isLockKey, isPositiveSafeInteger } from '../src/locks/wire.js'
import { loadPackage } from './dependencies.js'
import type { ArbiterAcquire, ArbiterEnd, ArbiterLease, ArbiterRenew, LockArbiter, LockEvent, LockEventKind } from './lock-arbiter.js'
import { toLockKey } from './lock-key.js'
import { DEFAULT_MAX_LOCKS_PER_ROOM } from './locks.js'
import type { Logger } from './logger.js'
import { decodeJson, isRecord } from './protocol.js'

export interface RedisArbiterOptions {
  url: string
  prefix: string
  /** ms after Redis is found without lock state (first use, or it lost its data) during which grants are refused. */
  grace: number
  logger: Logger
  maxLocksPerRoom?: number
  /** How long a command may take before it counts as failed (the answer is `unavailable`). Default 2000. */
  commandTimeout?: number
}

/** A key's fencing counter and last ended token outlive its leases this long (then the clock floor takes over). */
const META_TTL = 60 * 60_000
/** A room's index of leases outlives its last write by this much past the longest lease. */
const INDEX_TTL = MAX_LOCK_TTL + 60_000
/** How long after a tracked lease's end its instance checks it (Redis expires keys on access, exactly). */
const CHECK_DELAY = 20
/** Retry of a check that failed (Redis unreachable). */
const CHECK_RETRY = 1_000
/** Longest event text accepted from Redis. */
const MAX_EVENT_LENGTH = 8 * 1024
const RETRY_AFTER = 1_000

/** The names of the lock keys under a prefix. A key name carries the room's length, so no two (room, key) pairs share one. */
export const lockNames = (prefix: string): {
  lock: (room: string, key: string) => string
  lockPrefix: (room: string) => string
  meta: (room: string, key: string) => string
  index: (room: string) => string
  since: string
  signingKey: string
  events: string
} => ({
  lock: (room, key) => `${prefix}lock:${room.length}:${room}:${key}`,
  lockPrefix: (room) => `${prefix}lock:${room.length}:${room}:`,
  meta: (room, key) => `${prefix}lockmeta:${room.length}:${room}:${key}`,
  index: (room) => `${prefix}lockroom:${room}`,
  since: `${prefix}locks:since`,
  signingKey: `${prefix}locks:key`,
  events: `${prefix}lock-events`
})

// Shared head of every script: Redis's clock, number formatting that keeps 16 digits (Lua's
// tostring would write 1.7e+15), the lease's two parts, and the event every instance reads.
const PRELUDE = `
local t = redis.call('TIME')
local nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(nowus / 1000)
local function fmt (n) return string.format('%.0f', n) end
local function parse (value)
  local sp = string.find(value, ' ', 1, true)
  return string.sub(value, 1, sp - 1), string.sub(value, sp + 1)
end
local function event (channel, kind, room, key, holder, fencing, ttl, previous)
  redis.call('PUBLISH', channel, cjson.encode({ e = kind, r = room, k = key, h = holder, f = fencing, x = fmt(now + ttl), t = ttl, p = previous }))
end
`

/**
 * KEYS: lock, meta, index, since. ARGV: holder, ttl, grace, room, key, channel, maxLocksPerRoom, indexTtl.
 * Returns {status, fencing, holder, ttl left, expiresAt, previous}: granted (previous: the holder
 * of the key's last grant, '' if none), extended (the holder asked again), locked; or
 * {unavailable, retryAfter}, {too_many}.
 */
const ACQUIRE = `${PRELUDE}
local ttl = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[1])
if current then
  local f, h = parse(current)
  local left = redis.call('PTTL', KEYS[1])
  if h ~= ARGV[1] then return { 'locked', f, h, left, fmt(now + left) } end
  redis.call('SET', KEYS[1], current, 'XX', 'PX', ttl)
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], ARGV[8])
  event(ARGV[6], 'renew', ARGV[4], ARGV[5], h, f, ttl, '')
  return { 'extended', f, h, ttl, fmt(now + ttl), '' }
end
local since = tonumber(redis.call('GET', KEYS[4]))
if not since then
  since = now
  redis.call('SET', KEYS[4], fmt(now))
end
local grace = tonumber(ARGV[3])
if now < since + grace then return { 'unavailable', since + grace - now } end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return { 'too_many' } end
local last = tonumber(redis.call('HGET', KEYS[2], 'f') or '0')
local previous = redis.call('HGET', KEYS[2], 'g') or ''
local f = fmt(math.max(last + 1, nowus))
redis.call('SET', KEYS[1], f .. ' ' .. ARGV[1], 'NX', 'PX', ttl)
redis.call('HSET', KEYS[2], 'f', f, 'g', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ${META_TTL})
redis.call('ZADD', KEYS[3], now + ttl, ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[8])
event(ARGV[6], 'grant', ARGV[4], ARGV[5], ARGV[1], f, ttl, previous)
return { 'granted', f, ARGV[1], ttl, fmt(now + ttl), previous }
`

/** KEYS: lock, index. ARGV: holder, fencing, ttl, room, key, channel, indexTtl. Compare-and-renew. */
const RENEW = `${PRELUDE}
local ttl = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[2] .. ' ' .. ARGV[1] then return { 'not_holder' } end
redis.call('SET', KEYS[1], current, 'XX', 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
event(ARGV[6], 'renew', ARGV[4], ARGV[5], ARGV[1], ARGV[2], ttl, '')
return { 'renewed', ARGV[2], ARGV[1], ttl, fmt(now + ttl) }
`

/**
 * KEYS: lock, meta, index. ARGV: holder ('' for any), fencing ('' for any), reason, room, key, channel.
 * Compare-and-delete; the ended token is remembered so that no expiry of it is announced later.
 */
const END = `${PRELUDE}
local current = redis.call('GET', KEYS[1])
if not current then return { 'not_holder' } end
local f, h = parse(current)
if (ARGV[1] ~= '' and h ~= ARGV[1]) or (ARGV[2] ~= '' and f ~= ARGV[2]) then return { 'not_holder' } end
redis.call('DEL', KEYS[1])
if tonumber(f) > tonumber(redis.call('HGET', KEYS[2], 'e') or '0') then redis.call('HSET', KEYS[2], 'e', f) end
redis.call('PEXPIRE', KEYS[2], ${META_TTL})
redis.call('ZREM', KEYS[3], ARGV[5])
event(ARGV[6], ARGV[3], ARGV[4], ARGV[5], h, f, 0, '')
return { 'ended', f, h, 0, fmt(now) }
`

/**
 * KEYS: lock, meta, index. ARGV: fencing, holder, room, key, channel. After a tracked lease's end:
 * {held, fencing, holder, ttl left, expiresAt} while a lease is there (this one renewed, or a newer
 * one); otherwise announces the expiry of `fencing` once, whichever instance asks first.
 */
const CHECK = `${PRELUDE}
local current = redis.call('GET', KEYS[1])
if current then
  local f, h = parse(current)
  local left = redis.call('PTTL', KEYS[1])
  return { 'held', f, h, left, fmt(now + left) }
end
if tonumber(redis.call('HGET', KEYS[2], 'e') or '0') >= tonumber(ARGV[1]) then return { 'ended' } end
redis.call('HSET', KEYS[2], 'e', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ${META_TTL})
redis.call('ZREM', KEYS[3], ARGV[4])
event(ARGV[5], 'expire', ARGV[3], ARGV[4], ARGV[2], ARGV[1], 0, '')
return { 'expired' }
`

/** KEYS: index. ARGV: the room's lock key prefix. The live leases: key, fencing, holder, ttl left, expiresAt, ... */
const LIST = `${PRELUDE}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local current = redis.call('GET', ARGV[1] .. key)
  if current then
    local f, h = parse(current)
    local left = redis.call('PTTL', ARGV[1] .. key)
    table.insert(out, key)
    table.insert(out, f)
    table.insert(out, h)
    table.insert(out, left)
    table.insert(out, fmt(now + left))
  end
end
return out
`

type Script = (...args: Array<string | number>) => Promise<unknown>

interface Scripts {
  lockAcquire: Script
  lockRenew: Script
  lockEnd: Script
  lockCheck: Script
  lockList: Script
}

const toNumber = (value: unknown): number | null => {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN
  return Number.isSafeInteger(n) && n >= 0 ? n : null
}

/** A lease from a script's reply, starting at `at`: fencing, holder, ttl left, expiresAt. Null when malformed. */
const leaseFrom = (reply: unknown[], at: number, room: string, key: string): ArbiterLease | null => {
  const fencing = toNumber(reply[at])
  const holder = reply[at + 1]
  const ttl = toNumber(reply[at + 2])
  const expiresAt = toNumber(reply[at + 3])
  if (fencing === null || fencing === 0 || typeof holder !== 'string' || holder.length === 0 || ttl === null || expiresAt === null) return null
  return { room, key, holder, fencing, expiresAt, ttl }
}

const EVENT_KINDS: readonly LockEventKind[] = ['grant', 'renew', 'release', 'revoke', 'expire']

/** An event as published by the scripts; null when it is not one (Redis input is untrusted too). */
export const parseLockEvent = (text: string): LockEvent | null => {
  if (text.length > MAX_EVENT_LENGTH) return null
  const value = decodeJson(text)
  if (!isRecord(value)) return null
  const { e, r, k, h, f, x, t, p } = value
  if (typeof e !== 'string' || !(EVENT_KINDS as readonly string[]).includes(e)) return null
  const fencing = toNumber(f)
  const expiresAt = toNumber(x)
  const ttl = toNumber(t)
  if (typeof r !== 'string' || r.length === 0 || !isLockKey(k) || typeof h !== 'string' || h.length === 0 || h.length > MAX_PEER_ID_LENGTH) return null
  if (fencing === null || !isPositiveSafeInteger(fencing) || expiresAt === null || ttl === null) return null
  if (p !== undefined && (typeof p !== 'string' || p.length > MAX_PEER_ID_LENGTH)) return null
  const lease = { room: r, key: k, holder: h, fencing, expiresAt, ttl }
  return e === 'grant' ? { event: 'grant', lease, previous: typeof p === 'string' && p.length > 0 ? p : null } : { event: e as LockEventKind, lease }
}

interface Tracked {
  fencing: number
  holder: string
  timer: ReturnType<typeof setTimeout> | undefined
}

export type RedisArbiterState = 'down' | 'up' | 'closed'

export class RedisArbiter implements LockArbiter {
  readonly instanceId = randomUUID()
  private readonly names: ReturnType<typeof lockNames>
  private readonly cmd: Redis & Scripts
  private readonly sub: Redis
  private readonly maxLocksPerRoom: number
  private listener: (event: LockEvent) => void = () => {}
  private resyncListener: () => void = () => {}
  /** Watched rooms (with a count of watch calls) and the leases tracked in them for their expiry. */
  private readonly watched = new Map<string, { watchers: number, leases: Map<string, Tracked> }>()
  private subscribed = false
  private closed = false

  constructor (private readonly opts: RedisArbiterOptions) {
    this.names = lockNames(opts.prefix)
    this.maxLocksPerRoom = opts.maxLocksPerRoom ?? DEFAULT_MAX_LOCKS_PER_ROOM
    const common: RedisOptions = {
      // A command that cannot be sent now fails now: a lock decision is never queued for later.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      autoResubscribe: false,
      commandTimeout: opts.commandTimeout ?? 2_000,
      retryStrategy: (times) => Math.min(times * 100, 2_000),
      lazyConnect: true
    }
    const { Redis: RedisClient } = loadPackage<typeof import('ioredis')>('redisUrl (several instances)', 'ioredis')
    this.cmd = new RedisClient(opts.url, { ...common, connectionName: `signaling-locks-${this.instanceId}` }) as Redis & Scripts
    // The subscriber has no command timeout: it only waits for messages.
    this.sub = new RedisClient(opts.url, { ...common, commandTimeout: undefined, connectionName: `signaling-lock-events-${this.instanceId}` })
    this.cmd.defineCommand('lockAcquire', { numberOfKeys: 4, lua: ACQUIRE })
    this.cmd.defineCommand('lockRenew', { numberOfKeys: 2, lua: RENEW })
    this.cmd.defineCommand('lockEnd', { numberOfKeys: 3, lua: END })
    this.cmd.defineCommand('lockCheck', { numberOfKeys: 3, lua: CHECK })
    this.cmd.defineCommand('lockList', { numberOfKeys: 1, lua: LIST })
    for (const client of [this.cmd, this.sub]) {
      client.on('error', (err: Error) => opts.logger.debug({ err: err.message }, 'redis (locks) error'))
      client.connect().catch(() => {})
    }
    this.sub.on('ready', () => this.onSubscriberReady())
    this.sub.on('close', () => { this.subscribed = false })
    this.sub.on('message', (channel: string, text: string) => {
      if (channel === this.names.events) this.onMessage(text)
    })
    this.cmd.on('ready', () => {
      // Checks that failed while Redis was away run again.
      for (const [room, state] of this.watched) for (const [key, tracked] of state.leases) this.schedule(room, key, tracked, 0)
      this.resyncWhenUp()
    })
  }

  /** `up` while operations can reach Redis and events arrive. */
  get state (): RedisArbiterState {
    if (this.closed) return 'closed'
    return this.cmd.status === 'ready' && this.subscribed ? 'up' : 'down'
  }

  readonly size = null

  onEvent (listener: (event: LockEvent) => void): void {
    this.listener = listener
  }

  onResync (listener: () => void): void {
    this.resyncListener = listener
  }

  watch (room: string): void {
    const state = this.watched.get(room)
    if (state === undefined) this.watched.set(room, { watchers: 1, leases: new Map() })
    else state.watchers++
  }

  unwatch (room: string): void {
    const state = this.watched.get(room)
    if (state === undefined) return
    if (--state.watchers > 0) return
    for (const tracked of state.leases.values()) clearTimeout(tracked.timer)
    this.watched.delete(room)
  }

  /**
   * The signing key all instances use when none is configured: the first instance's candidate,
   * stored once (SET NX) and read by the others. Rejects while Redis cannot be reached.
   */
  async sharedKey (candidate: JWK): Promise<JWK> {
    await this.cmd.set(this.names.signingKey, JSON.stringify(candidate), 'NX')
    const stored = toLockKey(await this.cmd.get(this.names.signingKey))
    if (stored === null) throw new Error('the lock key stored in Redis is not a private Ed25519 JWK')
    return stored
  }

  async acquire (room: string, key: string, holder: string, ttl: number): Promise<ArbiterAcquire> {
    const names = this.names
    const reply = await this.run(() => this.cmd.lockAcquire(
      names.lock(room, key), names.meta(room, key), names.index(room), names.since,
      holder, ttl, this.opts.grace, room, key, names.events, this.maxLocksPerRoom, INDEX_TTL
    ))
    if (reply === null) return { ok: false, code: 'unavailable', retryAfter: RETRY_AFTER }
    const [status] = reply
    if (status === 'unavailable') return { ok: false, code: 'unavailable', retryAfter: toNumber(reply[1]) ?? RETRY_AFTER }
    if (status === 'too_many') return { ok: false, code: 'too_many' }
    const lease = leaseFrom(reply, 1, room, key)
    if (lease === null) return this.malformedReply()
    if (status === 'locked') return { ok: false, code: 'locked', lease }
    const previous = typeof reply[5] === 'string' && reply[5].length > 0 && reply[5].length <= MAX_PEER_ID_LENGTH ? reply[5] : null
    if (status === 'granted' || status === 'extended') return { ok: true, lease, extended: status === 'extended', previous }
    return this.malformedReply()
  }

  async renew (room: string, key: string, holder: string, fencing: number, ttl: number): Promise<ArbiterRenew> {
    const names = this.names
    const reply = await this.run(() => this.cmd.lockRenew(
      names.lock(room, key), names.index(room), holder, String(fencing), ttl, room, key, names.events, INDEX_TTL
    ))
    if (reply === null) return { ok: false, code: 'unavailable', retryAfter: RETRY_AFTER }
    if (reply[0] === 'not_holder') return { ok: false, code: 'not_holder' }
    const lease = reply[0] === 'renewed' ? leaseFrom(reply, 1, room, key) : null
    return lease === null ? this.malformedReply() : { ok: true, lease }
  }

  async release (room: string, key: string, holder: string, fencing?: number): Promise<ArbiterEnd> {
    return await this.end(room, key, holder, fencing, 'release')
  }

  async revoke (room: string, key: string, fencing?: number): Promise<ArbiterEnd> {
    return await this.end(room, key, '', fencing, 'revoke')
  }

  async list (room: string): Promise<ArbiterLease[] | null> {
    const reply = await this.run(() => this.cmd.lockList(this.names.index(room), this.names.lockPrefix(room)))
    if (reply === null) return null
    const leases: ArbiterLease[] = []
    for (let i = 0; i + 4 < reply.length; i += 5) {
      const key = reply[i]
      const lease = isLockKey(key) ? leaseFrom(reply, i + 1, room, key) : null
      if (lease === null) continue
      leases.push(lease)
      this.track(lease)
    }
    return leases
  }

  async close (): Promise<void> {
    this.closed = true
    for (const state of this.watched.values()) for (const tracked of state.leases.values()) clearTimeout(tracked.timer)
    this.watched.clear()
    await Promise.all([this.cmd, this.sub].map(async (client) => {
      if (client.status === 'ready') await client.quit().catch(() => {})
      client.disconnect()
    }))
  }

  private async end (room: string, key: string, holder: string, fencing: number | undefined, reason: 'release' | 'revoke'): Promise<ArbiterEnd> {
    const names = this.names
    const reply = await this.run(() => this.cmd.lockEnd(
      names.lock(room, key), names.meta(room, key), names.index(room),
      holder, fencing === undefined ? '' : String(fencing), reason, room, key, names.events
    ))
    if (reply === null) return { ok: false, code: 'unavailable', retryAfter: RETRY_AFTER }
    if (reply[0] === 'not_holder') return { ok: false, code: 'not_holder' }
    const lease = reply[0] === 'ended' ? leaseFrom(reply, 1, room, key) : null
    return lease === null ? this.malformedReply() : { ok: true, lease }
  }

  /** Runs a script; null when Redis could not be asked or did not answer (the caller says `unavailable`). */
  private async run (script: () => Promise<unknown>): Promise<unknown[] | null> {
    if (this.closed || this.cmd.status !== 'ready') return null
    try {
      const reply = await script()
      return Array.isArray(reply) ? reply : null
    } catch (err) {
      this.opts.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'redis (locks) command failed')
      return null
    }
  }

  private malformedReply (): { ok: false, code: 'unavailable', retryAfter: number } {
    this.opts.logger.error({}, 'redis (locks): a script answered something unexpected')
    return { ok: false, code: 'unavailable', retryAfter: RETRY_AFTER }
  }

  private onSubscriberReady (): void {
    if (this.closed) return
    this.sub.subscribe(this.names.events).then(() => {
      this.subscribed = true
      // Whatever was published while we were away is lost: the watchers get a snapshot.
      this.resyncWhenUp()
    }, (err: unknown) => this.opts.logger.debug({ err }, 'redis (locks): subscribing failed'))
  }

  /**
   * Each time the arbiter comes up (either connection back, the other one ready), the watchers get
   * a snapshot. It is taken with the command connection, which reconnects on its own schedule:
   * called when the subscriber was back first, every snapshot failed, and the watchers never
   * heard that the locks were gone; a command connection that drops under a snapshot gives
   * another when it is back.
   */
  private resyncWhenUp (): void {
    if (this.state === 'up') this.resyncListener()
  }

  private onMessage (text: string): void {
    if (this.closed) return
    const event = parseLockEvent(text)
    if (event === null) {
      this.opts.logger.debug({}, 'redis (locks): refused a malformed event')
      return
    }
    if (event.event === 'grant' || event.event === 'renew') this.track(event.lease)
    else this.untrack(event.lease.room, event.lease.key, event.lease.fencing)
    try {
      this.listener(event)
    } catch (err) {
      this.opts.logger.error({ err }, 'redis (locks): an event listener threw')
    }
  }

  /** Follows a lease of a watched room, to find out when it runs out. */
  private track (lease: ArbiterLease): void {
    const state = this.watched.get(lease.room)
    if (state === undefined) return
    const current = state.leases.get(lease.key)
    if (current !== undefined && current.fencing > lease.fencing) return
    if (current !== undefined) clearTimeout(current.timer)
    if (current === undefined && state.leases.size >= this.maxLocksPerRoom) return
    const tracked: Tracked = { fencing: lease.fencing, holder: lease.holder, timer: undefined }
    state.leases.set(lease.key, tracked)
    this.schedule(lease.room, lease.key, tracked, lease.ttl + CHECK_DELAY)
  }

  private untrack (room: string, key: string, fencing: number): void {
    const state = this.watched.get(room)
    const current = state?.leases.get(key)
    if (state === undefined || current === undefined || current.fencing > fencing) return
    clearTimeout(current.timer)
    state.leases.delete(key)
  }

  private schedule (room: string, key: string, tracked: Tracked, delay: number): void {
    clearTimeout(tracked.timer)
    tracked.timer = setTimeout(() => { this.check(room, key, tracked).catch(() => {}) }, Math.min(delay, MAX_LOCK_TTL + CHECK_DELAY))
    tracked.timer.unref()
  }

  /** At a tracked lease's end: still there (renewed, or superseded), or announce its expiry. */
  private async check (room: string, key: string, tracked: Tracked): Promise<void> {
    const names = this.names
    const reply = await this.run(() => this.cmd.lockCheck(
      names.lock(room, key), names.meta(room, key), names.index(room),
      String(tracked.fencing), tracked.holder, room, key, names.events
    ))
    if (this.watched.get(room)?.leases.get(key) !== tracked) return
    if (reply === null) {
      this.schedule(room, key, tracked, CHECK_RETRY)
      return
    }
    if (reply[0] === 'held') {
      const lease = leaseFrom(reply, 1, room, key)
      if (lease !== null) this.track(lease)
      else this.schedule(room, key, tracked, CHECK_RETRY)
      return
    }
    // Expired (announced now, by this instance or another) or ended: the event untracks it; if it
    // was lost, untrack here.
    this.untrack(room, key, tracked.fencing)
  }
}

/**
 * The arbiter's state machine (signaling/locks.ts) with an injected clock, and the memory arbiter
 * around it (signaling/lock-arbiter.ts) with fake timers: grant, refuse, expire, renew, release,
 * revoke, fencing tokens that only grow (across restarts too), and the wait after a restart.
 */

import { afterEach, describe, expect, it, vi } from 'vitest'
import { MAX_LOCK_TTL, MIN_LOCK_TTL } from '../src/locks/wire.js'
import { MemoryArbiter, type LockEvent } from '../signaling/lock-arbiter.js'
import { LockTable } from '../signaling/locks.js'

const START = 1_767_225_600_000

/** A clock the test moves by hand. */
const manualClock = (start = START): { now: () => number, advance: (ms: number) => void, set: (ms: number) => void } => {
  let now = start
  return { now: () => now, advance: (ms) => { now += ms }, set: (ms) => { now = ms } }
}

const table = (clock = manualClock(), grace = 0): { table: LockTable, clock: ReturnType<typeof manualClock> } =>
  ({ table: new LockTable({ clock: clock.now, grace }), clock })

describe('LockTable', () => {
  it('grants a free key, refuses it to another peer naming the holder, and grants it again once released', () => {
    const { table: locks } = table()
    const granted = locks.acquire('room', 'spotlight', 'alice', 10_000)
    expect(granted).toMatchObject({ ok: true, extended: false, lease: { room: 'room', key: 'spotlight', holder: 'alice', expiresAt: START + 10_000 } })
    const refused = locks.acquire('room', 'spotlight', 'bob', 10_000)
    expect(refused).toEqual({ ok: false, code: 'locked', lease: granted.ok && granted.lease })
    expect(locks.acquire('other-room', 'spotlight', 'bob', 10_000).ok).toBe(true)
    expect(locks.acquire('room', 'other-key', 'bob', 10_000).ok).toBe(true)

    const fencing = granted.ok ? granted.lease.fencing : 0
    expect(locks.release('room', 'spotlight', 'bob')).toMatchObject({ ok: false, code: 'not_holder' })
    expect(locks.release('room', 'spotlight', 'alice', fencing + 1)).toMatchObject({ ok: false, code: 'not_holder' })
    expect(locks.release('room', 'spotlight', 'alice', fencing)).toMatchObject({ ok: true, lease: { holder: 'alice', fencing } })
    expect(locks.get('room', 'spotlight')).toBeNull()
    expect(locks.acquire('room', 'spotlight', 'bob', 10_000)).toMatchObject({ ok: true, lease: { holder: 'bob' } })
  })

  it('names the previous holder of each grant: whose writes the new holder waits for', () => {
    const { table: locks, clock } = table()
    expect(locks.acquire('room', 'k', 'alice', 10_000)).toMatchObject({ ok: true, previous: null })
    expect(locks.acquire('room', 'k', 'alice', 10_000)).toMatchObject({ ok: true, extended: true, previous: null })
    locks.release('room', 'k', 'alice')
    expect(locks.acquire('room', 'k', 'bob', 10_000)).toMatchObject({ ok: true, previous: 'alice' })
    // An expiry hands over too.
    clock.advance(10_000)
    locks.expire()
    expect(locks.acquire('room', 'k', 'carol', 10_000)).toMatchObject({ ok: true, previous: 'bob' })
    locks.revoke('room', 'k')
    expect(locks.acquire('room', 'k', 'carol', 10_000)).toMatchObject({ ok: true, previous: 'carol' })
    expect(locks.acquire('room', 'other', 'dave', 10_000)).toMatchObject({ ok: true, previous: null })
    expect(locks.acquire('other-room', 'k', 'dave', 10_000)).toMatchObject({ ok: true, previous: null })
  })

  it('validates the TTL: 10 to 300 s, whole ms', () => {
    const { table: locks } = table()
    for (const ttl of [MIN_LOCK_TTL - 1, MAX_LOCK_TTL + 1, 10_000.5, Number.NaN, Infinity, -10_000]) {
      expect(locks.acquire('room', 'key', 'alice', ttl)).toEqual({ ok: false, code: 'malformed' })
    }
    expect(locks.acquire('room', 'key', 'alice', MIN_LOCK_TTL).ok).toBe(true)
    expect(locks.acquire('room', 'key2', 'alice', MAX_LOCK_TTL).ok).toBe(true)
    const held = locks.get('room', 'key')!
    expect(locks.renew('room', 'key', 'alice', held.fencing, MAX_LOCK_TTL + 1)).toEqual({ ok: false, code: 'malformed' })
  })

  it('lets a lease run out: the key is free at expiresAt, and expire() reports it once', () => {
    const { table: locks, clock } = table()
    const granted = locks.acquire('room', 'key', 'alice', 10_000)
    clock.advance(9_999)
    expect(locks.get('room', 'key')).not.toBeNull()
    expect(locks.expire()).toEqual([])
    expect(locks.nextExpiry()).toBe(START + 10_000)
    clock.advance(1)
    expect(locks.get('room', 'key')).toBeNull()
    expect(locks.list('room')).toEqual([])
    expect(locks.expire()).toEqual([granted.ok && granted.lease])
    expect(locks.expire()).toEqual([])
    expect(locks.nextExpiry()).toBeNull()
    expect(locks.size).toBe(0)
    expect(locks.acquire('room', 'key', 'bob', 10_000).ok).toBe(true)
  })

  it('renews only the holder of that very grant, from now, keeping the fencing token', () => {
    const { table: locks, clock } = table()
    const first = locks.acquire('room', 'key', 'alice', 10_000)
    const fencing = first.ok ? first.lease.fencing : 0
    clock.advance(8_000)
    expect(locks.renew('room', 'key', 'bob', fencing, 10_000)).toMatchObject({ ok: false, code: 'not_holder' })
    expect(locks.renew('room', 'key', 'alice', fencing - 1, 10_000)).toMatchObject({ ok: false, code: 'not_holder' })
    expect(locks.renew('room', 'key', 'alice', fencing, 20_000)).toEqual({ ok: true, lease: { room: 'room', key: 'key', holder: 'alice', fencing, expiresAt: START + 28_000 } })
    clock.advance(19_999)
    expect(locks.expire()).toEqual([])
    expect(locks.get('room', 'key')).toMatchObject({ holder: 'alice', fencing })
    clock.advance(1)
    expect(locks.expire()).toHaveLength(1)
    // A grant that has run out cannot be renewed: the holder learns it lost the lock.
    expect(locks.renew('room', 'key', 'alice', fencing, 10_000)).toEqual({ ok: false, code: 'not_holder', lease: null })
  })

  it('extends the lease of a holder that asks again, with the same fencing token', () => {
    const { table: locks, clock } = table()
    const first = locks.acquire('room', 'key', 'alice', 10_000)
    clock.advance(5_000)
    const again = locks.acquire('room', 'key', 'alice', 30_000)
    expect(again).toMatchObject({ ok: true, extended: true, lease: { fencing: first.ok && first.lease.fencing, expiresAt: START + 35_000 } })
  })

  it('revokes whoever holds the key; with a fencing token only that grant', () => {
    const { table: locks } = table()
    const first = locks.acquire('room', 'key', 'alice', 10_000)
    const fencing = first.ok ? first.lease.fencing : 0
    expect(locks.revoke('room', 'key', fencing + 1)).toMatchObject({ ok: false, code: 'not_holder' })
    expect(locks.revoke('room', 'key', fencing)).toMatchObject({ ok: true, lease: { holder: 'alice' } })
    expect(locks.revoke('room', 'key')).toEqual({ ok: false, code: 'not_holder', lease: null })
    expect(locks.acquire('room', 'key', 'bob', 10_000).ok).toBe(true)
    expect(locks.revoke('room', 'key')).toMatchObject({ ok: true, lease: { holder: 'bob' } })
    // The revoked holder's compare-and-delete finds nothing of its own.
    expect(locks.release('room', 'key', 'bob')).toMatchObject({ ok: false, code: 'not_holder' })
  })

  it('issues fencing tokens that strictly increase per key, at least the clock in microseconds', () => {
    const { table: locks, clock } = table()
    let last = 0
    for (let i = 0; i < 2_000; i++) {
      const granted = locks.acquire('room', 'key', i % 2 === 0 ? 'alice' : 'bob', 10_000)
      if (!granted.ok) throw new Error('not granted')
      expect(granted.lease.fencing).toBeGreaterThan(last)
      expect(granted.lease.fencing).toBeGreaterThanOrEqual(clock.now() * 1000)
      expect(Number.isSafeInteger(granted.lease.fencing)).toBe(true)
      last = granted.lease.fencing
      locks.release('room', 'key', granted.lease.holder)
      // Many grants in the same millisecond, then the clock moves on.
      if (i % 500 === 499) clock.advance(1)
    }
  })

  it('never issues a token at or below one of before a restart (a new table on the same clock)', () => {
    const clock = manualClock()
    const before = new LockTable({ clock: clock.now, grace: 0 })
    let highest = 0
    // Far more grants within one millisecond than a real key ever sees.
    for (let i = 0; i < 900; i++) {
      const granted = before.acquire('room', `key-${i % 3}`, 'alice', 10_000)
      if (granted.ok) highest = Math.max(highest, granted.lease.fencing)
      before.release('room', `key-${i % 3}`, 'alice')
    }
    clock.advance(1)
    const after = new LockTable({ clock: clock.now, grace: 0 })
    const granted = after.acquire('room', 'key-0', 'bob', 10_000)
    expect(granted.ok && granted.lease.fencing).toBeGreaterThan(highest)
  })

  it('refuses every grant for the grace period after it starts, then grants', () => {
    const clock = manualClock()
    const locks = new LockTable({ clock: clock.now, grace: MAX_LOCK_TTL })
    expect(locks.availableAt).toBe(START + MAX_LOCK_TTL)
    expect(locks.acquire('room', 'key', 'alice', 10_000)).toEqual({ ok: false, code: 'unavailable', retryAfter: MAX_LOCK_TTL })
    clock.advance(MAX_LOCK_TTL - 1)
    expect(locks.acquire('room', 'key', 'alice', 10_000)).toEqual({ ok: false, code: 'unavailable', retryAfter: 1 })
    clock.advance(1)
    expect(locks.acquire('room', 'key', 'alice', 10_000).ok).toBe(true)
  })

  it('the grace period covers every lease of before the restart', () => {
    // A lease of the longest TTL granted (or renewed) just before a crash has run out when the
    // restarted table grants its first lock.
    const clock = manualClock()
    const before = new LockTable({ clock: clock.now, grace: 0 })
    const held = before.acquire('room', 'key', 'alice', MAX_LOCK_TTL)
    const after = new LockTable({ clock: clock.now })
    let granted = after.acquire('room', 'key', 'bob', 10_000)
    while (!granted.ok) {
      expect(granted.code).toBe('unavailable')
      clock.advance(granted.ok ? 0 : (granted as { retryAfter: number }).retryAfter)
      granted = after.acquire('room', 'key', 'bob', 10_000)
    }
    expect(clock.now()).toBeGreaterThanOrEqual(held.ok ? held.lease.expiresAt : Infinity)
  })

  it('bounds the live leases of a room', () => {
    const clock = manualClock()
    const locks = new LockTable({ clock: clock.now, grace: 0, maxLocksPerRoom: 3 })
    for (const key of ['a', 'b', 'c']) expect(locks.acquire('room', key, 'alice', 10_000).ok).toBe(true)
    expect(locks.acquire('room', 'd', 'alice', 10_000)).toEqual({ ok: false, code: 'too_many' })
    expect(locks.acquire('other', 'd', 'alice', 10_000).ok).toBe(true)
    locks.release('room', 'a', 'alice')
    expect(locks.acquire('room', 'd', 'alice', 10_000).ok).toBe(true)
    clock.advance(10_000)
    locks.expire()
    expect(locks.size).toBe(0)
  })

  it('keeps expiries in order whatever the order of grants and renewals (seeded)', () => {
    const seed = 20_250_101
    let state = seed
    const random = (): number => {
      state = (state * 1_103_515_245 + 12_345) % 2 ** 31
      return state / 2 ** 31
    }
    const clock = manualClock()
    const locks = new LockTable({ clock: clock.now, grace: 0 })
    const expected = new Map<string, number>()
    for (let step = 0; step < 3_000; step++) {
      const key = `k${Math.floor(random() * 40)}`
      const ttl = MIN_LOCK_TTL + Math.floor(random() * 20_000)
      const current = locks.get('room', key)
      if (current === null) {
        expect(locks.acquire('room', key, 'alice', ttl).ok, `seed ${seed}`).toBe(true)
      } else if (random() < 0.3) {
        locks.release('room', key, 'alice')
        expected.delete(key)
        continue
      } else {
        expect(locks.renew('room', key, 'alice', current.fencing, ttl).ok, `seed ${seed}`).toBe(true)
      }
      expected.set(key, clock.now() + ttl)
      clock.advance(Math.floor(random() * 1_000))
      for (const lease of locks.expire()) {
        expect(lease.expiresAt, `seed ${seed}`).toBe(expected.get(lease.key))
        expect(lease.expiresAt, `seed ${seed}`).toBeLessThanOrEqual(clock.now())
        expected.delete(lease.key)
      }
      for (const [key, at] of expected) expect(at > clock.now(), `seed ${seed}: ${key}`).toBe(true)
    }
  })
})

describe('MemoryArbiter', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('tells of every change, and of each expiry when it happens, with the time left', async () => {
    vi.useFakeTimers({ now: START })
    const arbiter = new MemoryArbiter({ grace: 0 })
    const events: LockEvent[] = []
    arbiter.onEvent((event) => events.push(event))

    const granted = await arbiter.acquire('room', 'a', 'alice', 10_000)
    expect(granted).toMatchObject({ ok: true, lease: { ttl: 10_000, expiresAt: START + 10_000 } })
    expect(await arbiter.acquire('room', 'a', 'bob', 10_000)).toMatchObject({ ok: false, code: 'locked', lease: { holder: 'alice', ttl: 10_000 } })
    await arbiter.acquire('room', 'b', 'bob', 20_000)
    vi.advanceTimersByTime(4_000)
    const fencing = granted.ok ? granted.lease.fencing : 0
    expect(await arbiter.renew('room', 'a', 'alice', fencing, 10_000)).toMatchObject({ ok: true, lease: { ttl: 10_000, expiresAt: START + 14_000 } })
    expect(events.map((e) => [e.event, e.lease.key, e.lease.holder])).toEqual([['grant', 'a', 'alice'], ['grant', 'b', 'bob'], ['renew', 'a', 'alice']])

    vi.advanceTimersByTime(9_999)
    expect(events).toHaveLength(3)
    vi.advanceTimersByTime(1)
    expect(events.at(-1)).toMatchObject({ event: 'expire', lease: { key: 'a', holder: 'alice', fencing, ttl: 0 } })
    expect(await arbiter.list('room')).toMatchObject([{ key: 'b', holder: 'bob', ttl: 6_000 }])
    expect(await arbiter.revoke('room', 'b')).toMatchObject({ ok: true })
    expect(events.at(-1)).toMatchObject({ event: 'revoke', lease: { key: 'b', holder: 'bob' } })
    vi.advanceTimersByTime(60_000)
    expect(events.filter((e) => e.event === 'expire')).toHaveLength(1)
    expect(arbiter.size).toBe(0)
    await arbiter.close()
  })

  it('answers unavailable during the grace period, then grants', async () => {
    vi.useFakeTimers({ now: START })
    const arbiter = new MemoryArbiter({ grace: 30_000 })
    expect(await arbiter.acquire('room', 'a', 'alice', 10_000)).toEqual({ ok: false, code: 'unavailable', retryAfter: 30_000 })
    vi.advanceTimersByTime(30_000)
    expect((await arbiter.acquire('room', 'a', 'alice', 10_000)).ok).toBe(true)
    await arbiter.close()
  })
})

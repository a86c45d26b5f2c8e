/**
 * The Redis lock arbiter (signaling/redis-locks.ts) against a real redis-server: two arbiters on
 * one Redis never both grant a lock, fencing tokens grow across them and across a Redis that lost
 * its data, events and expiries reach every arbiter, and with Redis gone nothing is granted. Then
 * two signaling instances sharing a Redis, with raw clients and with ArbiterClient.
 */

import { Redis } from 'ioredis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ErrorCodes, SessionStoreError } from '../src/errors.js'
import type { LockEvent } from '../signaling/lock-arbiter.js'
import { generateLockKey } from '../signaling/lock-key.js'
import { silentLogger } from '../signaling/logger.js'
import { RedisArbiter, parseLockEvent } from '../signaling/redis-locks.js'
import { lockEvent, lockPeer, ready, startLockClient, type LockResult } from './helpers/locks.js'
import { startInstances, startRedis } from './helpers/redis.js'
import { connect, uniqueTopic } from './helpers/signaling.js'
import { waitFor } from './helpers/wait.js'

const startArbiter = async (url: string, options: { grace?: number, prefix?: string } = {}): Promise<RedisArbiter> => {
  const arbiter = new RedisArbiter({ url, prefix: options.prefix ?? 'locks-test:', grace: options.grace ?? 0, logger: silentLogger })
  onTestFinished(async () => await arbiter.close())
  await waitFor(() => arbiter.state === 'up', { timeout: 10_000, what: 'the arbiter to reach Redis' })
  return arbiter
}

const collect = (arbiter: RedisArbiter): LockEvent[] => {
  const events: LockEvent[] = []
  arbiter.onEvent((event) => events.push(event))
  return events
}

describe('RedisArbiter', () => {
  it('when the subscriber is back before the command connection, the watchers still get a snapshot, taken once both are up', { timeout: 30_000 }, async () => {
    const redis = await startRedis()
    const arbiter = await startArbiter(redis.url, { prefix: 'resync-test:' })
    const room = uniqueTopic('room')
    // What the signaling's lock service does on a resync: list every watched room.
    const snapshots: Array<{ state: string, locks: unknown }> = []
    arbiter.onResync(() => {
      const state = arbiter.state
      void arbiter.list(room).then((locks) => snapshots.push({ state, locks }))
    })
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    onTestFinished(() => { admin.disconnect() })
    await admin.connect()
    /** Kills the arbiter's connections whose name starts with `name` (its two: signaling-locks-*, signaling-lock-events-*). */
    const kill = async (name: string): Promise<void> => {
      const list = await admin.call('CLIENT', 'LIST') as string
      for (const line of list.split('\n')) {
        if (!line.includes(` name=${name}${arbiter.instanceId} `)) continue
        const id = /(?:^| )id=(\d+)/.exec(line)?.[1]
        if (id !== undefined) await admin.call('CLIENT', 'KILL', 'ID', id).catch(() => {})
      }
    }
    // Both connections drop, as when Redis restarts; the command connection is kept away until the
    // subscriber is back and subscribed: the order that, under load, once left watchers without
    // any snapshot (the resync ran at once, and its list failed).
    await Promise.all([kill('signaling-lock-events-'), kill('signaling-locks-')])
    await waitFor(async () => {
      await kill('signaling-locks-')
      const [, subscribers] = await admin.call('PUBSUB', 'NUMSUB', 'resync-test:lock-events') as [string, number]
      return subscribers >= 1
    }, { timeout: 10_000, interval: 5, what: 'the subscriber back while the command connection is kept away' })
    // Once more: a command connection back in the last moment drops under the resync's list.
    await kill('signaling-locks-')
    // Killed a moment ago, it reconnects 100 ms or more later (the arbiter's retry strategy).
    await waitFor(() => arbiter.state === 'up', { timeout: 10_000, what: 'the command connection back' })
    await waitFor(() => Array.isArray(snapshots.at(-1)?.locks), { timeout: 5_000, what: 'a listed snapshot once both connections are back' })
    // Every resync ran with the arbiter up, and the last one (each time it came up) was listed.
    expect(snapshots.every(({ state }) => state === 'up')).toBe(true)
    expect(snapshots.at(-1)?.locks).toEqual([])
  })

  it('two arbiters on one Redis never both grant a lock; tokens grow round after round', async () => {
    const redis = await startRedis()
    const arbiters = [await startArbiter(redis.url), await startArbiter(redis.url)]
    const room = uniqueTopic('room')
    let last = 0
    for (let round = 0; round < 30; round++) {
      const holders = Array.from({ length: 10 }, (_, i) => `peer-${round}-${i}`)
      const results = await Promise.all(holders.map(async (holder, i) => await arbiters[i % 2]!.acquire(room, 'votes', holder, 10_000)))
      const granted = results.filter((result) => result.ok)
      expect(granted).toHaveLength(1)
      const winner = granted[0]!.ok ? granted[0]!.lease : null
      expect(winner!.fencing).toBeGreaterThan(last)
      last = winner!.fencing
      for (const result of results) {
        if (!result.ok) expect(result).toMatchObject({ code: 'locked', lease: { holder: winner!.holder, fencing: winner!.fencing } })
      }
      // Only the winner's compare-and-delete succeeds.
      const loser = holders.find((holder) => holder !== winner!.holder)!
      expect(await arbiters[round % 2]!.release(room, 'votes', loser)).toEqual({ ok: false, code: 'not_holder' })
      expect(await arbiters[(round + 1) % 2]!.release(room, 'votes', winner!.holder, winner!.fencing + 1)).toEqual({ ok: false, code: 'not_holder' })
      expect(await arbiters[(round + 1) % 2]!.release(room, 'votes', winner!.holder, winner!.fencing)).toMatchObject({ ok: true })
    }
    // Tokens are at least Redis's clock in microseconds.
    expect(last).toBeGreaterThan((Date.now() - 60_000) * 1000)
  })

  it('renews only the holder of that grant, extends a holder that asks again, revokes, lists', async () => {
    const redis = await startRedis()
    const [a, b] = [await startArbiter(redis.url), await startArbiter(redis.url)]
    const room = uniqueTopic('room')
    const granted = await a!.acquire(room, 'k', 'alice', 10_000)
    if (!granted.ok) throw new Error('not granted')
    const { fencing } = granted.lease
    expect(granted.lease).toMatchObject({ room, key: 'k', holder: 'alice', ttl: 10_000 })
    expect(await b!.renew(room, 'k', 'bob', fencing, 10_000)).toEqual({ ok: false, code: 'not_holder' })
    expect(await b!.renew(room, 'k', 'alice', fencing - 1, 10_000)).toEqual({ ok: false, code: 'not_holder' })
    expect(await b!.renew(room, 'k', 'alice', fencing, 60_000)).toMatchObject({ ok: true, lease: { fencing, ttl: 60_000 } })
    expect(await b!.acquire(room, 'k', 'alice', 20_000)).toMatchObject({ ok: true, extended: true, lease: { fencing, ttl: 20_000 } })
    await a!.acquire(room, 'other', 'bob', 10_000)
    const listed = await b!.list(room)
    expect(listed?.map((lease) => [lease.key, lease.holder]).sort()).toEqual([['k', 'alice'], ['other', 'bob']])
    expect(granted.previous).toBeNull()
    expect(await b!.revoke(room, 'k', fencing + 1)).toEqual({ ok: false, code: 'not_holder' })
    expect(await b!.revoke(room, 'k')).toMatchObject({ ok: true, lease: { holder: 'alice', fencing } })
    expect(await a!.renew(room, 'k', 'alice', fencing, 10_000)).toEqual({ ok: false, code: 'not_holder' })
    expect((await a!.list(room))?.map((lease) => lease.key)).toEqual(['other'])
    // The next grant of the key names its previous holder, whichever arbiter granted either.
    expect(await b!.acquire(room, 'k', 'carol', 10_000)).toMatchObject({ ok: true, previous: 'alice' })
  })

  it('publishes every change to every arbiter, and announces an expiry once, found by those that watch the room', async () => {
    const redis = await startRedis()
    const [a, b] = [await startArbiter(redis.url), await startArbiter(redis.url)]
    const [eventsA, eventsB] = [collect(a!), collect(b!)]
    const room = uniqueTopic('room')
    a!.watch(room)
    b!.watch(room)
    // Short leases straight through the arbiter (the wire's 10 s minimum is the guard's business).
    const granted = await a!.acquire(room, 'k', 'alice', 300)
    const fencing = granted.ok ? granted.lease.fencing : 0
    await waitFor(() => eventsA.some((e) => e.event === 'expire') && eventsB.some((e) => e.event === 'expire'), { timeout: 5_000, what: 'the expiry on both' })
    for (const events of [eventsA, eventsB]) {
      expect(events.map((e) => [e.event, e.lease.holder, e.lease.fencing])).toEqual([['grant', 'alice', fencing], ['expire', 'alice', fencing]])
    }
    expect(await b!.acquire(room, 'k', 'bob', 10_000)).toMatchObject({ ok: true, previous: 'alice' })
    await waitFor(() => eventsA.length === 3, { what: 'bob\'s grant on a' })
    expect(eventsA[2]).toMatchObject({ event: 'grant', previous: 'alice', lease: { holder: 'bob' } })
    const bobs = await a!.list(room)
    await a!.renew(room, 'k', 'bob', bobs![0]!.fencing, 10_000)
    await b!.release(room, 'k', 'bob')
    await waitFor(() => eventsA.length === 5 && eventsB.length === 5, { what: 'grant, renew and release on both' })
    expect(eventsB.slice(2).map((e) => e.event)).toEqual(['grant', 'renew', 'release'])
    expect(eventsA.filter((e) => e.event === 'expire')).toHaveLength(1)
  })

  it('grants nothing while Redis is unreachable, and after it lost its data waits out the grace, with tokens above the old ones', async () => {
    const redis = await startRedis()
    const arbiter = await startArbiter(redis.url, { grace: 1_500 })
    const room = uniqueTopic('room')
    // A fresh Redis has no lock state: the grace applies from the first request.
    expect(await arbiter.acquire(room, 'k', 'alice', 10_000)).toMatchObject({ ok: false, code: 'unavailable' })
    await waitFor(async () => (await arbiter.acquire(room, 'k', 'alice', 10_000)).ok, { timeout: 5_000, interval: 100, what: 'the grace to pass' })
    const before = await arbiter.list(room)
    const highest = before![0]!.fencing

    await redis.stop()
    await waitFor(() => arbiter.state === 'down', { what: 'the arbiter to see Redis go' })
    for (let i = 0; i < 5; i++) {
      expect(await arbiter.acquire(room, `k${i}`, 'bob', 10_000)).toMatchObject({ ok: false, code: 'unavailable' })
      expect(await arbiter.renew(room, 'k', 'alice', highest, 10_000)).toMatchObject({ ok: false, code: 'unavailable' })
      expect(await arbiter.release(room, 'k', 'alice')).toMatchObject({ ok: false, code: 'unavailable' })
      expect(await arbiter.list(room)).toBeNull()
    }

    await redis.start()
    await waitFor(() => arbiter.state === 'up', { timeout: 10_000, what: 'the arbiter to reach Redis again' })
    // Redis came back empty: alice's lease is gone, and for the grace nobody gets the key.
    expect(await arbiter.renew(room, 'k', 'alice', highest, 10_000)).toEqual({ ok: false, code: 'not_holder' })
    expect(await arbiter.acquire(room, 'k', 'bob', 10_000)).toMatchObject({ ok: false, code: 'unavailable' })
    const after = await waitFor(async () => {
      const result = await arbiter.acquire(room, 'k', 'bob', 10_000)
      return result.ok ? result.lease : null
    }, { timeout: 5_000, interval: 100, what: 'the grace to pass again' })
    expect(after.fencing).toBeGreaterThan(highest)
  })

  it('gives every instance the key the first one stored', async () => {
    const redis = await startRedis()
    const [a, b] = [await startArbiter(redis.url), await startArbiter(redis.url)]
    const [first, second] = [await generateLockKey(), await generateLockKey()]
    expect(await a!.sharedKey(first)).toEqual(first)
    expect(await b!.sharedKey(second)).toEqual(first)
  })

  it('refuses malformed events read from Redis', () => {
    const good = { e: 'grant', r: 'room', k: 'key', h: 'peer', f: '1767225600000000', x: '1767225610000', t: 10_000 }
    expect(parseLockEvent(JSON.stringify(good))).toMatchObject({ event: 'grant', lease: { fencing: 1_767_225_600_000_000, expiresAt: 1_767_225_610_000, ttl: 10_000 } })
    for (const bad of [
      'not json', '[]', JSON.stringify({ ...good, e: 'steal' }), JSON.stringify({ ...good, r: '' }), JSON.stringify({ ...good, k: '' }),
      JSON.stringify({ ...good, h: 'x'.repeat(129) }), JSON.stringify({ ...good, f: '1.5' }), JSON.stringify({ ...good, f: '0' }),
      JSON.stringify({ ...good, f: '99999999999999999' }), JSON.stringify({ ...good, t: -1 }), JSON.stringify({ ...good, pad: 'x'.repeat(9000) })
    ]) expect(parseLockEvent(bad), bad.slice(0, 80)).toBeNull()
  })
})

describe('two signaling instances sharing a Redis', () => {
  it('peers on two instances never both hold a lock, and each sees the other\'s grants and releases', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await lockPeer(await connect(a!.url), room)
    const bob = await lockPeer(await connect(b!.url), room)
    // One key for the whole cluster, shared through Redis.
    expect(alice.serverKey).toEqual(bob.serverKey)

    for (let round = 0; round < 20; round++) {
      const [x, y] = await Promise.all([alice.request('acquire', 'votes', { ttl: 10_000 }), bob.request('acquire', 'votes', { ttl: 10_000 })])
      expect([x.ok, y.ok].filter(Boolean)).toHaveLength(1)
      const [winner, loser] = x.ok ? [alice, bob] : [bob, alice]
      const won = (x.ok ? x : y) as Extract<LockResult, { grant: string }>
      expect(x.ok ? y : x).toMatchObject({ ok: false, code: 'locked', holder: winner.identity.id, fencing: won.fencing })
      // Events travel through Redis: each is waited for by its token, whatever else is in flight.
      const ofThisGrant = (event: string) => (m: Parameters<ReturnType<typeof lockEvent>>[0]): boolean => lockEvent(event, 'votes')(m) && (m as { fencing?: number }).fencing === won.fencing
      expect(await loser.client.next(ofThisGrant('grant'))).toMatchObject({ holder: winner.identity.id })
      expect(await winner.request('release', 'votes', { fencing: won.fencing })).toMatchObject({ ok: true })
      expect(await loser.client.next(ofThisGrant('release'))).toMatchObject({ holder: winner.identity.id })
    }
  })

  it('a client closing on one instance frees its lock for a client of the other at once', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(a!.url, room)
    const bob = await startLockClient(b!.url, room)
    await Promise.all([ready(alice.client), ready(bob.client)])
    const lock = await alice.client.acquire('spotlight', { ttl: 60_000 })
    await waitFor(() => bob.client.holder('spotlight')?.holder === alice.identity.id, { what: 'bob to see alice hold it' })
    const waiting = bob.client.acquire('spotlight', { wait: 5_000 })
    const started = Date.now()
    await alice.transport.close()
    const got = await waiting
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(got.fencingToken).toBeGreaterThan(lock.fencingToken)
    // Whose last writes to wait for, from the arbiter: exact even when the grant's answer overtakes
    // the release's event, which travels through Redis.
    expect(got.previous).toBe(alice.identity.id)
    expect(lock.previous).toBeNull()
  })

  it('with Redis gone, locks are refused LOCK_UNAVAILABLE (never granted from memory); once back, watchers get a snapshot', async () => {
    const redis = await startRedis()
    const [a] = await startInstances(1, redis.url, { lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(a!.url, room)
    await ready(alice.client)
    const lock = await alice.client.acquire('k', { ttl: 10_000 })
    await redis.stop()
    const refused = await alice.client.acquire('other', { wait: 0 }).catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(SessionStoreError)
    expect((refused as SessionStoreError).code).toBe(ErrorCodes.LOCK_UNAVAILABLE)
    // The held lock is this peer's until its lease runs out; renewals fail meanwhile.
    expect(lock.held).toBe(true)

    await redis.start()
    // Redis restarted empty: the snapshot says nothing is held, and the holder's renewal is refused.
    await waitFor(() => alice.transport.frames.some((f) => (f as { event?: string }).event === 'snapshot'), { timeout: 10_000, what: 'a snapshot after the resync' })
    await waitFor(() => !lock.held, { timeout: 15_000, what: 'the holder to learn its lease is gone' })
    const again = await alice.client.acquire('k', { wait: 5_000 })
    expect(again.fencingToken).toBeGreaterThan(lock.fencingToken)
  }, 40_000)
})

/**
 * ArbiterClient (src/locks/arbiter-client.ts): against a real signaling server over WebSockets
 * (acquire, LOCKED, waiting, LOCK_UNAVAILABLE, events, revoke, verifyGrant, a cut connection), and
 * through an in-process transport into a LockService with fake timers for what takes time
 * (renewal at a third of the TTL, a lease that lapses while disconnected, resuming within it).
 */

import { afterEach, describe, expect, it, vi } from 'vitest'
import { ErrorCodes, SessionStoreError } from '../src/errors.js'
import { ArbiterClient, type HeldLock, type LockChange } from '../src/locks/arbiter-client.js'
import { createIdentity } from '../src/trust/identity.js'
import { MemoryArbiter } from '../signaling/lock-arbiter.js'
import { createLockSigner, generateLockKey } from '../signaling/lock-key.js'
import { LockService, roomTokenVerifier } from '../signaling/lock-service.js'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { createCounters } from '../signaling/stats.js'
import { silentLogger } from '../signaling/logger.js'
import { directTransport, ready, startLockClient } from './helpers/locks.js'
import { startServer, uniqueTopic } from './helpers/signaling.js'
import { once, waitFor } from './helpers/wait.js'

const rejection = async (promise: Promise<unknown>): Promise<SessionStoreError> => {
  try {
    await promise
  } catch (err) {
    if (err instanceof SessionStoreError) return err
    throw err
  }
  throw new Error('expected a rejection')
}

describe('ArbiterClient against a signaling server', () => {
  it('takes a lock, which every client of the room sees, and gives it back', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(server.url, room)
    const bob = await startLockClient(server.url, room)
    await Promise.all([ready(alice.client), ready(bob.client)])

    const seen = once<LockChange>(bob.client, 'lock')
    const lock = await alice.client.acquire('spotlight', { ttl: 10_000 })
    expect(lock).toMatchObject({ key: 'spotlight', holder: alice.identity.id, held: true })
    expect(lock.expiresAt).toBeGreaterThan(Date.now() + 9_000)
    expect(Number.isSafeInteger(lock.fencingToken)).toBe(true)
    expect(await seen).toEqual({ key: 'spotlight', holder: alice.identity.id, previous: null, fencingToken: lock.fencingToken, released: false, reason: 'grant' })
    expect(alice.client.isHeld('spotlight')).toBe(true)
    expect(bob.client.isHeld('spotlight')).toBe(false)
    expect(bob.client.holder('spotlight')).toMatchObject({ key: 'spotlight', holder: alice.identity.id, fencingToken: lock.fencingToken })
    expect(alice.client.holder('spotlight')).toMatchObject({ holder: alice.identity.id })
    // Asking again for a lock held returns it.
    expect(await alice.client.acquire('spotlight')).toBe(lock)

    // Every peer can check the grant with the server's key; a forged or another room's one fails.
    expect(await bob.client.verifyGrant(lock.grant)).toMatchObject({ room, key: 'spotlight', holder: alice.identity.id, fencing: lock.fencingToken })
    expect(await bob.client.verifyGrant(lock.grant.slice(0, -4) + 'AAAA')).toBeNull()

    const freed = once<LockChange>(bob.client, 'lock')
    await lock.release()
    expect(await freed).toMatchObject({ key: 'spotlight', holder: null, previous: alice.identity.id, released: true, reason: 'release' })
    expect(lock.held).toBe(false)
    expect(alice.client.isHeld('spotlight')).toBe(false)
    expect(bob.client.holder('spotlight')).toBeNull()
    const next = await bob.client.acquire('spotlight')
    expect(next.fencingToken).toBeGreaterThan(lock.fencingToken)
    expect(next.previous).toBe(alice.identity.id)
    expect(lock.previous).toBeNull()
  })

  it('rejects LOCKED at once without wait, and with wait gets the lock once it is released', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(server.url, room)
    const bob = await startLockClient(server.url, room)
    await Promise.all([ready(alice.client), ready(bob.client)])
    const lock = await alice.client.acquire('k')

    const refused = await rejection(bob.client.acquire('k', { wait: 0 }))
    expect(refused).toMatchObject({ code: ErrorCodes.LOCKED, key: 'k' })
    expect(refused.message).toContain(alice.identity.id)

    const started = Date.now()
    const waiting = bob.client.acquire('k', { wait: 5_000 })
    setTimeout(() => { lock.release().catch(() => {}) }, 200)
    const got = await waiting
    expect(got.holder).toBe(bob.identity.id)
    expect(Date.now() - started).toBeLessThan(3_000)

    // Waiting longer than the holder keeps it: LOCKED after the wait.
    const before = Date.now()
    expect(await rejection(alice.client.acquire('k', { wait: 400 }))).toMatchObject({ code: ErrorCodes.LOCKED })
    expect(Date.now() - before).toBeGreaterThanOrEqual(390)
  })

  it('many clients waiting on one key: each gets it in turn, one at a time', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const clients = await Promise.all(Array.from({ length: 5 }, async () => await startLockClient(server.url, room)))
    await Promise.all(clients.map(async ({ client }) => await ready(client)))
    let holding = 0
    let most = 0
    const order: string[] = []
    await Promise.all(clients.map(async ({ client, identity }) => {
      for (let i = 0; i < 4; i++) {
        const lock = await client.acquire('votes', { wait: 20_000 })
        holding++
        most = Math.max(most, holding)
        order.push(identity.id)
        await new Promise((resolve) => setImmediate(resolve))
        holding--
        await lock.release()
      }
    }))
    expect(most).toBe(1)
    expect(order).toHaveLength(20)
  })

  it('rejects LOCK_UNAVAILABLE when no arbiter is connected, or while the arbiter waits after its start', async () => {
    const identity = await createIdentity()
    const lonely = new ArbiterClient({ send: () => { throw new Error('not connected') }, onFrame: () => () => {}, onStatus: () => () => {}, identity, room: 'r' })
    const started = Date.now()
    expect(await rejection(lonely.acquire('k'))).toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
    expect(await rejection(lonely.acquire('k', { wait: 300 }))).toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
    expect(Date.now() - started).toBeLessThan(2_000)
    lonely.destroy()

    const server = await startServer()
    const room = uniqueTopic('room')
    const alice = await startLockClient(server.url, room)
    await ready(alice.client)
    expect(await rejection(alice.client.acquire('k'))).toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
  })

  it('checks its arguments', async () => {
    const identity = await createIdentity()
    const client = new ArbiterClient({ send: () => {}, onFrame: () => () => {}, identity, room: 'r' })
    expect(await rejection(client.acquire(''))).toMatchObject({ code: ErrorCodes.INVALID_KEY })
    expect(await rejection(client.acquire('k', { ttl: 5_000 }))).toMatchObject({ code: ErrorCodes.INVALID_OPTION })
    expect(await rejection(client.acquire('k', { ttl: 400_000 }))).toMatchObject({ code: ErrorCodes.INVALID_OPTION })
    expect(await rejection(client.acquire('k', { wait: -1 }))).toMatchObject({ code: ErrorCodes.INVALID_OPTION })
    expect(() => new ArbiterClient({ send: () => {}, onFrame: () => () => {}, identity, room: '' })).toThrow(SessionStoreError)
    client.destroy()
  })

  it('does not trust a server whose key is not the pinned one', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const pinned = await generateLockKey()
    const alice = await startLockClient(server.url, room, { serverKey: { kty: 'OKP', crv: 'Ed25519', x: pinned.x } })
    const error = await once<SessionStoreError>(alice.client, 'error')
    expect(error.code).toBe(ErrorCodes.LOCK_UNAVAILABLE)
    expect(alice.client.ready).toBe(false)
    expect(await rejection(alice.client.acquire('k'))).toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
  })

  it('revokes with a token that grants the key; PERMISSION_DENIED without one', async () => {
    const issuer = await generateIssuerKeys()
    const server = await startServer({ lockGrace: 0, verifyRoomToken: roomTokenVerifier(issuer.publicKey) })
    const room = uniqueTopic('room')
    const hostIdentity = await createIdentity()
    const guestIdentity = await createIdentity()
    const token = async (identity: typeof hostIdentity, write: string[]): Promise<string> =>
      await createRoomToken({ privateKey: issuer.privateKey, room, user: 'u', write, peerKey: identity.publicJwk })
    const [hostToken, guestToken] = [await token(hostIdentity, ['*']), await token(guestIdentity, ['poll'])]
    const host = await startLockClient(server.url, room, { identity: hostIdentity, token: () => hostToken })
    const guest = await startLockClient(server.url, room, { identity: guestIdentity, token: () => guestToken })
    await Promise.all([ready(host.client), ready(guest.client)])

    expect(await rejection(guest.client.acquire('spotlight'))).toMatchObject({ code: ErrorCodes.PERMISSION_DENIED })
    const lock = await guest.client.acquire('poll')
    await waitFor(() => host.client.holder('poll') !== null, { what: 'the host to see the guest lock' })
    expect(await rejection(guest.client.revoke('spotlight'))).toMatchObject({ code: ErrorCodes.PERMISSION_DENIED })
    const lost = once<{ key: string, reason: string }>(guest.client, 'lost')
    await host.client.revoke('poll')
    expect(await lost).toMatchObject({ key: 'poll', reason: 'revoked', fencingToken: lock.fencingToken })
    expect(lock.held).toBe(false)
    expect(host.client.holder('poll')).toBeNull()
  })

  it('a cut connection stops the renewals: the lease runs out and another client gets the lock', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(server.url, room)
    const bob = await startLockClient(server.url, room)
    await Promise.all([ready(alice.client), ready(bob.client)])
    const lock = await alice.client.acquire('k', { ttl: 10_000 })
    const cutAt = Date.now()
    alice.transport.cut()
    const got = await bob.client.acquire('k', { wait: 15_000 })
    const took = Date.now() - cutAt
    expect(got.fencingToken).toBeGreaterThan(lock.fencingToken)
    // Freed within the TTL (+1 s) of the last renewal, and not before the lease ran out.
    expect(took).toBeLessThan(11_000)
    expect(took).toBeGreaterThan(5_000)
    await waitFor(() => !lock.held, { what: 'the cut client to see its lease run out' })
  }, 30_000)

  it('a client that closes its connection gives its locks back at once', async () => {
    const server = await startServer({ lockGrace: 0 })
    const room = uniqueTopic('room')
    const alice = await startLockClient(server.url, room)
    const bob = await startLockClient(server.url, room)
    await Promise.all([ready(alice.client), ready(bob.client)])
    await alice.client.acquire('k', { ttl: 300_000 })
    const waiting = bob.client.acquire('k', { wait: 5_000 })
    const started = Date.now()
    await alice.transport.close()
    expect((await waiting).holder).toBe(bob.identity.id)
    expect(Date.now() - started).toBeLessThan(2_000)
  })
})

describe('ArbiterClient over time (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  const setup = async (): Promise<{ service: LockService, arbiter: MemoryArbiter }> => {
    const arbiter = new MemoryArbiter({ grace: 0 })
    const signer = await createLockSigner(await generateLockKey())
    const service = new LockService({ arbiter, signer: async () => signer, verifyRoomToken: null, counters: createCounters(), logger: silentLogger })
    return { service, arbiter }
  }

  /** Lets the microtasks and WebCrypto work of the frames in flight finish, in fake time. */
  const settle = async (ms = 0): Promise<void> => {
    for (let i = 0; i < 20; i++) await vi.advanceTimersByTimeAsync(i === 0 ? ms : 0)
    await new Promise((resolve) => setImmediate(resolve))
    for (let i = 0; i < 20; i++) await vi.advanceTimersByTimeAsync(0)
  }

  /**
   * Waits for `cond` without moving the fake clock: WebCrypto and I/O finish in real time, so the
   * deadline is in real time too (performance is not faked), not a count of turns, which a loaded
   * machine gets through before a signature is done.
   */
  const realUntil = async (cond: () => boolean, what: string, ms = 20_000): Promise<void> => {
    const deadline = performance.now() + ms
    while (!cond()) {
      if (performance.now() > deadline) throw new Error(`not within ${ms} ms (real time): ${what}`)
      await new Promise((resolve) => setImmediate(resolve))
      await vi.advanceTimersByTimeAsync(0)
    }
  }

  /** Connects `client`, and resolves with the lock on 'k' (ttl 30 s) once it holds it. */
  const connectAndHold = async (client: ArbiterClient, transport: { connect: () => void }): Promise<HeldLock> => {
    transport.connect()
    await realUntil(() => client.ready, 'ready')
    const acquiring = client.acquire('k', { ttl: 30_000 })
    await realUntil(() => client.isHeld('k'), 'held')
    return await acquiring
  }

  it('renews every third of the TTL while connected, keeping the lock for as long as it is held', async () => {
    vi.useFakeTimers({ now: 1_767_225_600_000, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
    const { service, arbiter } = await setup()
    const room = 'room'
    const transport = directTransport(service, room)
    let asked = 0
    /** The lock's expiry when the last renewal was asked for: it changes once the answer is taken. */
    let expiryBefore = 0
    const send = transport.send
    transport.send = (frame) => {
      if ((frame as { op?: string }).op === 'renew') {
        asked++
        expiryBefore = lock.expiresAt
      }
      send(frame)
    }
    let lock!: HeldLock
    const real = await createIdentity()
    // Signing works in real time while the clock is fake: the loop below waits for it.
    let signing = 0
    const identity = {
      ...real,
      sign: async (payload: Record<string, unknown>) => {
        signing++
        try {
          return await real.sign(payload)
        } finally {
          signing--
        }
      }
    }
    const client = new ArbiterClient({ ...transport, identity, room, now: Date.now, requestTimeout: 60_000 })
    lock = await connectAndHold(client, transport)
    const acquiredAt = Date.now()
    const answered = (): number => transport.frames.filter((f) => (f as { type?: string, op?: string }).type === 'lock-result' && (f as { op?: string }).op === 'renew').length
    // Five minutes, a second at a time; WebCrypto works in real time while the clock is fake, so
    // each second waits until every renewal asked for is answered and taken.
    const renewedAt: number[] = []
    for (let second = 0; second < 300; second++) {
      await settle(1_000)
      await realUntil(() => signing === 0 && answered() >= asked && (asked === 0 || lock.expiresAt !== expiryBefore), 'the renewals sent to be answered and taken')
      if (renewedAt.length < asked) renewedAt.push(Date.now() - acquiredAt)
      expect(lock.held).toBe(true)
    }
    expect(renewedAt[0]).toBeGreaterThanOrEqual(10_000)
    expect(renewedAt[0]).toBeLessThanOrEqual(11_000)
    expect(renewedAt.length).toBeGreaterThanOrEqual(27)
    for (let i = 1; i < renewedAt.length; i++) {
      expect(renewedAt[i]! - renewedAt[i - 1]!).toBeGreaterThanOrEqual(10_000)
      expect(renewedAt[i]! - renewedAt[i - 1]!).toBeLessThanOrEqual(11_000)
    }
    expect(lock.expiresAt).toBeGreaterThan(Date.now() + 19_000)
    expect(await arbiter.list(room)).toMatchObject([{ key: 'k', holder: identity.id, fencing: lock.fencingToken }])
    client.destroy()
    await arbiter.close()
  })

  it('stops renewing while disconnected; back within the lease it keeps the lock, after it the lock is lost', async () => {
    vi.useFakeTimers({ now: 1_767_225_600_000, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
    const { service, arbiter } = await setup()
    const room = 'room'
    const transport = directTransport(service, room)
    const client = new ArbiterClient({ ...transport, identity: await createIdentity(), room, now: Date.now })
    const lock = await connectAndHold(client, transport)

    transport.disconnect(false)
    const frames = transport.frames.length
    await settle(20_000)
    expect(lock.held).toBe(true)
    transport.connect()
    const backAt = Date.now()
    await realUntil(() => client.ready, 'ready again')
    // Renewed at once, and the answer taken (its grant is checked in real time): the lease runs
    // from the renewal, with the same fencing token.
    await realUntil(() => lock.expiresAt === backAt + 30_000, 'a renewal at once, taken')
    expect(transport.frames.length).toBeGreaterThan(frames)
    expect(lock.fencingToken).toBe((await arbiter.list(room))[0]?.fencing)
    expect(lock.held).toBe(true)

    const lost: unknown[] = []
    client.on('lost', (event) => lost.push(event))
    transport.disconnect(false)
    await settle(31_000)
    expect(lock.held).toBe(false)
    expect(lost).toEqual([{ key: 'k', fencingToken: lock.fencingToken, reason: 'expired' }])
    // The arbiter let it run out too, and tells a client that comes back.
    transport.connect()
    await realUntil(() => client.ready, 'ready at last')
    expect(client.holder('k')).toBeNull()
    expect(await arbiter.list(room)).toEqual([])
    client.destroy()
    await arbiter.close()
  })

  it('a renewal whose grant is still being checked when the lease runs out does not bring the lock back', async () => {
    vi.useFakeTimers({ now: 1_767_225_600_000, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
    const { service, arbiter } = await setup()
    const room = 'room'
    const transport = directTransport(service, room)
    // The renewal's answer is held back here, and handed on when the test says.
    const listeners = new Set<(frame: unknown) => void>()
    const held: unknown[] = []
    transport.onFrame((frame) => {
      if ((frame as { type?: string, op?: string }).type === 'lock-result' && (frame as { op?: string }).op === 'renew') held.push(frame)
      else for (const listener of listeners) listener(frame)
    })
    const onFrame = (listener: (frame: unknown) => void): (() => void) => {
      listeners.add(listener)
      return () => listeners.delete(listener)
    }
    const client = new ArbiterClient({ ...transport, onFrame, identity: await createIdentity(), room, now: Date.now, requestTimeout: 60_000 })
    const lock = await connectAndHold(client, transport)
    const changes: LockChange[] = []
    const lost: unknown[] = []
    client.on('lock', (change) => changes.push(change))
    client.on('lost', (event) => lost.push(event))

    await settle(10_000)
    await realUntil(() => held.length === 1, 'the renewal to be answered')
    const verify = vi.spyOn(crypto.subtle, 'verify')
    try {
      for (const listener of listeners) listener(held[0])
      // Microtasks only: the grant's check (WebCrypto, on another thread) cannot finish meanwhile.
      for (let i = 0; i < 1_000 && verify.mock.calls.length === 0; i++) await Promise.resolve()
      expect(verify).toHaveBeenCalledTimes(1)
      // While it is checked, the connection goes and the lease runs out, here and at the arbiter
      // (which renewed it till 40 s, and told the room so).
      transport.disconnect(false)
      vi.advanceTimersByTime(31_000)
      expect(lost).toEqual([{ key: 'k', fencingToken: lock.fencingToken, reason: 'expired' }])
      const checked = verify.mock.results[0]?.value as Promise<boolean>
      expect(await checked).toBe(true)
    } finally {
      verify.mockRestore()
    }
    await settle()
    expect(lock.held).toBe(false)
    expect(client.isHeld('k')).toBe(false)
    expect(client.holder('k')).toBeNull()
    expect(changes.filter((change) => !change.released)).toEqual([])
    expect(lost).toHaveLength(1)
    client.destroy()
    await arbiter.close()
  })

  it('a listener that throws breaks nobody: reported as CALLBACK_FAILED', async () => {
    vi.useFakeTimers({ now: 1_767_225_600_000, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
    const { service, arbiter } = await setup()
    const transport = directTransport(service, 'room')
    const client = new ArbiterClient({ ...transport, identity: await createIdentity(), room: 'room', now: Date.now })
    const errors: SessionStoreError[] = []
    const changes: LockChange[] = []
    client.on('lock', () => { throw new Error('boom') })
    client.on('lock', (change) => changes.push(change))
    client.on('error', (err) => errors.push(err))
    transport.connect()
    await realUntil(() => client.ready, 'ready')
    const acquiring = client.acquire('k')
    await realUntil(() => changes.length > 0, 'the change')
    await acquiring
    expect(errors[0]?.code).toBe(ErrorCodes.CALLBACK_FAILED)
    client.destroy()
    await arbiter.close()
  })
})

/**
 * The lock arbiter of one signaling server, over real WebSockets with raw clients that sign their
 * requests as the library does: watch, grant, refuse, events to the room's other watchers, the
 * signature and replay checks, malformed frames, the rate limit, what a closing connection does,
 * the wait after a start, and the rights of protected and open rooms.
 */

import { describe, expect, it } from 'vitest'
import { SignJWT, importJWK, type JWK } from 'jose'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { verifyGrant } from '../src/locks/wire.js'
import { createIdentity } from '../src/trust/identity.js'
import { parseCommandLine } from '../signaling/cli-args.js'
import { SignalingError } from '../signaling/index.js'
import { generateLockKey } from '../signaling/lock-key.js'
import { roomTokenVerifier } from '../signaling/lock-service.js'
import { lockEvent, lockPeer, resultOf, signedFrame, type LockEventFrame, type LockResult } from './helpers/locks.js'
import { connect, connectMany, httpGet, startServer, uniqueTopic } from './helpers/signaling.js'
import { waitFor } from './helpers/wait.js'

/** A server whose arbiter grants at once (no wait after start). */
const startArbiter = async (options: Parameters<typeof startServer>[0] = {}): ReturnType<typeof startServer> =>
  await startServer({ lockGrace: 0, ...options })

describe('lock arbiter: the protocol', () => {
  it('answers a watch with the nonce, the server key and the live locks; refuses one of a room not subscribed', async () => {
    const server = await startArbiter()
    const client = await connect(server.url)
    const room = uniqueTopic('room')
    client.send({ type: 'lock', op: 'watch', id: 1, room })
    expect(await client.next(resultOf(1))).toEqual({ type: 'lock-result', id: 1, op: 'watch', ok: false, code: 'not_subscribed', room })

    const alice = await lockPeer(client, room)
    expect(alice.nonce).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(alice.serverKey).toEqual({ kty: 'OKP', crv: 'Ed25519', x: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) })
    await alice.request('acquire', 'spotlight', { ttl: 10_000 })
    const other = await connect(server.url)
    await other.subscribe(room)
    other.send({ type: 'lock', op: 'watch', id: 7, room })
    const watched = await other.next(resultOf(7)) as Extract<LockResult, { op: 'watch' }>
    expect(watched.locks).toEqual([{ key: 'spotlight', holder: alice.identity.id, fencing: expect.any(Number), expiresAt: expect.any(Number), ttl: expect.any(Number) }])
    expect(watched.nonce).not.toBe(alice.nonce)
    expect(server.stats().locks).toMatchObject({ rooms: 1, watchers: 2, held: 1, granted: 1 })
  })

  it('grants a signed lease, refuses it to another peer naming the holder, and tells every watcher', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b, c] = await connectMany(server.url, 3)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    const carol = await lockPeer(c!, room)

    const granted = await alice.request('acquire', 'spotlight', { ttl: 10_000 }) as Extract<LockResult, { grant: string }>
    expect(granted).toMatchObject({ type: 'lock-result', op: 'acquire', ok: true, room, key: 'spotlight', holder: alice.identity.id, ttl: 10_000, previous: null })
    expect(Number.isSafeInteger(granted.fencing)).toBe(true)
    expect(granted.fencing).toBeGreaterThanOrEqual((Date.now() - 60_000) * 1000)
    // The grant verifies with the key the server handed out, and says exactly what the answer says.
    expect(await verifyGrant(granted.grant, alice.serverKey as JWK)).toEqual({ v: 1, room, key: 'spotlight', holder: alice.identity.id, fencing: granted.fencing, expiresAt: granted.expiresAt })
    expect(await verifyGrant(granted.grant, (await generateLockKey()) as JWK)).toBeNull()

    for (const watcher of [alice, bob, carol]) {
      expect(await watcher.client.next(lockEvent('grant', 'spotlight'))).toMatchObject({ room, holder: alice.identity.id, fencing: granted.fencing })
    }
    expect(await bob.request('acquire', 'spotlight', { ttl: 10_000 })).toMatchObject({ ok: false, code: 'locked', holder: alice.identity.id, fencing: granted.fencing })
    expect(await bob.request('renew', 'spotlight', { ttl: 10_000, fencing: granted.fencing })).toMatchObject({ ok: false, code: 'not_holder' })
    expect(await bob.request('release', 'spotlight')).toMatchObject({ ok: false, code: 'not_holder' })

    const renewed = await alice.request('renew', 'spotlight', { ttl: 20_000, fencing: granted.fencing })
    expect(renewed).toMatchObject({ ok: true, op: 'renew', fencing: granted.fencing, ttl: 20_000 })
    expect(await carol.client.next(lockEvent('renew', 'spotlight'))).toMatchObject({ fencing: granted.fencing, ttl: 20_000 })

    expect(await alice.request('release', 'spotlight', { fencing: granted.fencing })).toMatchObject({ ok: true, op: 'release' })
    expect(await carol.client.next(lockEvent('release', 'spotlight'))).toMatchObject({ holder: alice.identity.id, fencing: granted.fencing, ttl: 0 })
    const next = await bob.request('acquire', 'spotlight', { ttl: 10_000 })
    expect(next).toMatchObject({ ok: true, holder: bob.identity.id, previous: alice.identity.id })
    expect(await carol.client.next(lockEvent('grant', 'spotlight'))).toMatchObject({ holder: bob.identity.id, previous: alice.identity.id })
    expect((next as { fencing: number }).fencing).toBeGreaterThan(granted.fencing)
  })

  it('refuses requests whose signature, signed fields, nonce or seq are not right', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b] = await connectMany(server.url, 2)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    const mallory = await createIdentity()

    // Signed by another key than the peer id's.
    const forged = await signedFrame(mallory, { op: 'acquire', room, key: 'k', nonce: alice.nonce, seq: 1, ttl: 10_000 })
    expect(await alice.ask({ ...forged, peer: alice.identity.id })).toMatchObject({ ok: false, code: 'bad_signature' })
    // The clear fields say another key (or TTL) than the signed ones.
    const signed = await signedFrame(alice.identity, { op: 'acquire', room, key: 'k', nonce: alice.nonce, seq: 2, ttl: 10_000 })
    expect(await alice.ask({ ...signed, key: 'other' })).toMatchObject({ ok: false, code: 'bad_signature' })
    expect(await alice.ask({ ...signed, id: signed.id + 1000, ttl: 20_000 })).toMatchObject({ ok: false, code: 'bad_signature' })
    // Signed on another connection's nonce: a request copied to another connection.
    const elsewhere = await signedFrame(alice.identity, { op: 'acquire', room, key: 'k', nonce: bob.nonce, seq: 3, ttl: 10_000 })
    expect(await alice.ask(elsewhere)).toMatchObject({ ok: false, code: 'replayed' })
    expect(await bob.ask({ ...elsewhere, id: elsewhere.id + 1000 })).toMatchObject({ ok: true })
    // The same request again (a replay on its own connection), and an older seq.
    expect(await bob.ask({ ...elsewhere, id: elsewhere.id + 2000 })).toMatchObject({ ok: false, code: 'replayed' })
    const older = await signedFrame(alice.identity, { op: 'release', room, key: 'k', nonce: bob.nonce, seq: 2 })
    expect(await bob.ask(older)).toMatchObject({ ok: false, code: 'replayed' })
    // A signed request on a connection that never watched: there is no nonce yet.
    const stranger = await connect(server.url)
    await stranger.subscribe(room)
    stranger.send(await signedFrame(mallory, { op: 'acquire', room, key: 'k2', nonce: 'x', seq: 1, ttl: 10_000, id: 99 }))
    expect(await stranger.next(resultOf(99))).toMatchObject({ ok: false, code: 'no_session' })
    // Three bad signatures, three replays; the request without a session is only answered.
    expect(server.stats().rejections.lock_invalid).toBe(6)
    expect(server.stats().locks).toMatchObject({ granted: 1 })
  })

  it('answers malformed lock frames with a malformed result, counts them, and keeps serving', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const client = await connect(server.url)
    const alice = await lockPeer(client, room)
    const valid = await signedFrame(alice.identity, { op: 'acquire', room, key: 'k', nonce: alice.nonce, seq: 1, ttl: 10_000 })
    const bad: Array<Record<string, unknown>> = [
      { type: 'lock' },
      { type: 'lock', op: 'acquire' },
      { type: 'lock', op: 'steal', id: 1, room },
      { type: 'lock', op: 'watch', id: 0, room },
      { type: 'lock', op: 'watch', id: 1.5, room },
      { type: 'lock', op: 'watch', id: 2, room: '' },
      { type: 'lock', op: 'watch', id: 3, room: 'x'.repeat(257) },
      { type: 'lock', op: 'watch', id: 4, room: '\uD800' },
      { ...valid, id: 5, ttl: 9_999 },
      { ...valid, id: 6, ttl: 300_001 },
      { ...valid, id: 7, ttl: '10000' },
      { ...valid, id: 8, ttl: undefined },
      { ...valid, id: 9, key: '' },
      { ...valid, id: 10, key: 'k'.repeat(1025) },
      { ...valid, id: 11, key: 'lone \uDC00' },
      { ...valid, id: 12, fencing: 5 },
      { ...valid, id: 13, op: 'renew' },
      { ...valid, id: 14, op: 'release', ttl: undefined, fencing: -1 },
      { ...valid, id: 15, peer: 42 },
      { ...valid, id: 16, peer: 'p'.repeat(129) },
      { ...valid, id: 17, jws: 'x'.repeat(4097) },
      { ...valid, id: 18, token: '' },
      { ...valid, id: 19, jws: undefined },
      { type: 'lock', op: 'watch', id: 20, room: ['a'] }
    ]
    for (const frame of bad) client.send(frame)
    for (const frame of bad) {
      const id = typeof frame.id === 'number' && Number.isSafeInteger(frame.id) && frame.id > 0 ? frame.id : null
      const answer = await client.next((m) => m.type === 'lock-result' && m.op === 'malformed' && m.id === id) as LockResult
      expect(answer, JSON.stringify(frame)).toEqual({ type: 'lock-result', id, op: 'malformed', ok: false, code: 'malformed' })
    }
    expect(server.stats().rejections.malformed).toBe(bad.length)
    // Nothing was granted, and the connection is served as before.
    expect(await alice.ask(valid)).toMatchObject({ ok: true })
    await client.roundTrip()
    expect(server.stats().rejections.internal_error).toBe(0)
  })

  it('counts lock frames in the rate limit like any frame, up to closing with 4429', async () => {
    const server = await startArbiter({ messagesPerSecond: 1, messageBurst: 20 })
    const room = uniqueTopic('room')
    const client = await connect(server.url)
    const alice = await lockPeer(client, room)
    const frame = await signedFrame(alice.identity, { op: 'acquire', room, key: 'k', nonce: alice.nonce, seq: 1, ttl: 10_000 })
    for (let i = 0; i < 60; i++) client.send({ ...frame, id: 1000 + i })
    expect(await client.closed).toMatchObject({ code: 4429 })
    const stats = server.stats()
    expect(stats.rejections.rate_limited).toBeGreaterThan(0)
    expect(stats.rejections.rate_limit_closed).toBe(1)
    // At most the first got through before the close (the rest replay its seq); the server goes on.
    expect(stats.locks.granted).toBeLessThanOrEqual(1)
    expect(stats.rejections.lock_invalid + stats.locks.granted).toBeLessThanOrEqual(20)
    const bob = await lockPeer(await connect(server.url), room)
    expect(await bob.request('acquire', 'other', { ttl: 10_000 })).toMatchObject({ ok: true })
  })

  it('bounds what one connection holds, watches and queues', async () => {
    const server = await startArbiter({ maxTopicsPerConnection: 3 })
    const client = await connect(server.url)
    const rooms = [uniqueTopic('a'), uniqueTopic('b'), uniqueTopic('c')]
    const peers = []
    for (const room of rooms) peers.push(await lockPeer(client, room))
    // The connection left one room: watching a fourth makes way for it.
    client.send({ type: 'unsubscribe', topics: [rooms[0]] })
    client.send({ type: 'subscribe', topics: [uniqueTopic('d')] })
    await client.roundTrip()
    const peer = peers[1]!
    const frames = await Promise.all(Array.from({ length: 70 }, async (_, i) =>
      await signedFrame(peer.identity, { op: 'acquire', room: peer.room, key: `k${i}`, nonce: peer.nonce, seq: i + 1, ttl: 10_000, id: 5000 + i })))
    // 64 locks at most per connection; 16 requests in its queue at most.
    let granted = 0
    let tooMany = 0
    for (let i = 0; i < frames.length; i += 10) {
      const batch = frames.slice(i, i + 10)
      for (const frame of batch) client.send(frame)
      for (const frame of batch) {
        const answer = await client.next(resultOf(frame.id)) as LockResult
        if (answer.ok) granted++
        else if (answer.code === 'too_many') tooMany++
      }
    }
    expect({ granted, tooMany }).toEqual({ granted: 64, tooMany: 6 })
    const burst = await Promise.all(Array.from({ length: 40 }, async (_, i) =>
      await signedFrame(peer.identity, { op: 'release', room: peer.room, key: `k${i}`, nonce: peer.nonce, seq: 100 + i, id: 6000 + i })))
    for (const frame of burst) client.send(frame)
    const answers = await Promise.all(burst.map(async (frame) => await client.next(resultOf(frame.id)) as LockResult))
    expect(answers.filter((a) => !a.ok && a.code === 'busy').length).toBeGreaterThan(0)
    expect(answers.filter((a) => a.ok).length).toBeGreaterThanOrEqual(16)
  })
})

describe('lock arbiter: connections that go', () => {
  it('releases the locks of a connection the client closes, at once, and tells the room', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b] = await connectMany(server.url, 2)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    await alice.request('acquire', 'one', { ttl: 300_000 })
    await alice.request('acquire', 'two', { ttl: 300_000 })
    await a!.close()
    const released = [await b!.next(lockEvent('release', 'one')), await b!.next(lockEvent('release', 'two'))]
    expect(released).toMatchObject([{ holder: alice.identity.id }, { holder: alice.identity.id }])
    expect(await bob.request('acquire', 'one', { ttl: 10_000 })).toMatchObject({ ok: true })
    expect(server.stats().locks).toMatchObject({ watchers: 1, held: 1 })
  })

  it('keeps the locks of a connection that is cut until they run out, then tells the room they expired', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b] = await connectMany(server.url, 2)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    const granted = await alice.request('acquire', 'spotlight', { ttl: 10_000 }) as { fencing: number }
    const at = Date.now()
    a!.ws.terminate()
    await waitFor(() => server.stats().connections === 1, { what: 'the cut connection to be released' })
    expect(await bob.request('acquire', 'spotlight', { ttl: 10_000 })).toMatchObject({ ok: false, code: 'locked', holder: alice.identity.id })
    const expired = await b!.next(lockEvent('expire', 'spotlight'), 15_000) as LockEventFrame
    expect(expired).toMatchObject({ holder: alice.identity.id, fencing: granted.fencing })
    expect(Date.now() - at).toBeGreaterThanOrEqual(9_900)
    expect(Date.now() - at).toBeLessThan(11_000)
    expect(await bob.request('acquire', 'spotlight', { ttl: 10_000 })).toMatchObject({ ok: true, holder: bob.identity.id })
  })

  it('a holder that comes back on a new connection within its lease keeps the lock and its token', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const identity = await createIdentity()
    const first = await lockPeer(await connect(server.url), room, identity)
    const granted = await first.request('acquire', 'k', { ttl: 30_000 }) as { fencing: number }
    first.client.ws.terminate()
    const again = await lockPeer(await connect(server.url), room, identity)
    expect(await again.request('renew', 'k', { ttl: 30_000, fencing: granted.fencing })).toMatchObject({ ok: true, fencing: granted.fencing })
    expect(await again.request('acquire', 'k', { ttl: 30_000 })).toMatchObject({ ok: true, fencing: granted.fencing })
  })
})

describe('lock arbiter: start', () => {
  it('grants nothing for lockGrace after it starts (default: the longest lease)', async () => {
    const server = await startServer()
    const room = uniqueTopic('room')
    const alice = await lockPeer(await connect(server.url), room)
    const answer = await alice.request('acquire', 'k', { ttl: 10_000 })
    expect(answer).toMatchObject({ ok: false, code: 'unavailable' })
    expect((answer as { retryAfter: number }).retryAfter).toBeGreaterThan(290_000)
    expect((answer as { retryAfter: number }).retryAfter).toBeLessThanOrEqual(300_000)
    expect(server.stats().locks.unavailable).toBe(1)
  })

  it('signs with lockKey when given, and refuses one that is not a private Ed25519 JWK', async () => {
    const key = await generateLockKey()
    const server = await startArbiter({ lockKey: JSON.stringify(key) })
    const alice = await lockPeer(await connect(server.url), uniqueTopic('room'))
    expect(alice.serverKey).toEqual({ kty: 'OKP', crv: 'Ed25519', x: key.x })
    for (const lockKey of ['{', { ...key, d: undefined }, { ...key, crv: 'X25519' }, { ...key, x: (await generateLockKey()).x }]) {
      await expect(startServer({ lockKey: lockKey as JWK })).rejects.toSatisfy((err: unknown) => err instanceof SignalingError && err.code === 'INVALID_OPTION')
    }
  })
})

describe('lock arbiter: configuration', () => {
  it('takes --lock-key and --lock-grace (or LOCK_KEY and LOCK_GRACE)', async () => {
    const key = JSON.stringify(await generateLockKey())
    expect(parseCommandLine(['--lock-grace', '0', '--lock-key', key], {}).options).toMatchObject({ lockGrace: 0, lockKey: key })
    expect(parseCommandLine([], { LOCK_KEY: key, LOCK_GRACE: '60000' }).options).toMatchObject({ lockGrace: 60_000, lockKey: key })
    await expect(startServer({ lockGrace: -1 })).rejects.toSatisfy((err: unknown) => err instanceof SignalingError && err.code === 'INVALID_OPTION')
  })

  it('counts in /metrics what the arbiter did', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b] = await connectMany(server.url, 2)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    await alice.request('acquire', 'k', { ttl: 10_000 })
    await bob.request('acquire', 'k', { ttl: 10_000 })
    const metrics = (await httpGet(server, '/metrics')).body
    for (const line of ['signaling_lock_watchers 2', 'signaling_locks_held 1', 'signaling_lock_grants_total 1', 'signaling_lock_refusals_total 1']) {
      expect(metrics.split('\n')).toContain(line)
    }
  })
})

describe('lock arbiter: rights', () => {
  it('in protected rooms: needs an issuer-signed token for the room, bound to the peer, granting the key; a writer of the key may revoke', async () => {
    const issuer = await generateIssuerKeys()
    const server = await startArbiter({ verifyRoomToken: roomTokenVerifier(issuer.publicKey) })
    const room = uniqueTopic('team')
    const [a, b, c] = await connectMany(server.url, 3)
    const host = await lockPeer(a!, room)
    const guest = await lockPeer(b!, room)
    const viewer = await lockPeer(c!, room)
    const token = async (peer: typeof host, write: string[], claims: { room?: string } = {}): Promise<string> =>
      await createRoomToken({ privateKey: issuer.privateKey, room: claims.room ?? room, user: 'u', write, peerKey: peer.identity.publicJwk })
    const hostToken = await token(host, ['*'], { room: 'team-*' })
    const guestToken = await token(guest, [`hand/${guest.identity.id}`, 'poll/*'])
    const now = Math.floor(Date.now() / 1000)
    const expired = await new SignJWT({ sub: 'u', room, write: ['*'], cnf: { jwk: viewer.identity.publicJwk } })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).setIssuedAt(now - 7200).setExpirationTime(now - 60)
      .sign(await importJWK(issuer.privateKey, 'EdDSA'))
    const otherIssuer = await generateIssuerKeys()
    const foreign = await createRoomToken({ privateKey: otherIssuer.privateKey, room, user: 'u', write: ['*'], peerKey: viewer.identity.publicJwk })

    expect(await guest.request('acquire', 'spotlight', { ttl: 10_000 })).toMatchObject({ ok: false, code: 'forbidden' })
    expect(await guest.request('acquire', 'spotlight', { ttl: 10_000, token: guestToken })).toMatchObject({ ok: false, code: 'forbidden' })
    expect(await guest.request('acquire', 'poll/votes', { ttl: 10_000, token: guestToken })).toMatchObject({ ok: true })
    expect(await guest.request('acquire', `hand/${guest.identity.id}`, { ttl: 10_000, token: guestToken })).toMatchObject({ ok: true })
    // Another peer's token, an expired one, another issuer's, one for another room, a read-only one.
    for (const wrong of [guestToken, expired, foreign, await token(viewer, ['*'], { room: 'elsewhere' }), await token(viewer, [])]) {
      expect(await viewer.request('acquire', 'poll/a', { ttl: 10_000, token: wrong })).toMatchObject({ ok: false, code: 'forbidden' })
    }
    expect(await viewer.request('revoke', 'poll/votes', { token: await token(viewer, ['spotlight']) })).toMatchObject({ ok: false, code: 'forbidden' })

    expect(await host.request('revoke', 'poll/votes', { token: hostToken })).toMatchObject({ ok: true, op: 'revoke' })
    expect(await guest.client.next(lockEvent('revoke', 'poll/votes'))).toMatchObject({ holder: guest.identity.id })
    expect(await host.request('acquire', 'poll/votes', { ttl: 10_000, token: hostToken })).toMatchObject({ ok: true })
    // A holder gives its lock back without a token.
    expect(await guest.request('release', `hand/${guest.identity.id}`)).toMatchObject({ ok: true })
    expect(server.stats().rejections.lock_forbidden).toBe(8)
  })

  it('a server with issuerKey checks lock requests against that issuer\'s room tokens by default', async () => {
    const issuer = await generateIssuerKeys()
    const server = await startArbiter({ issuerKey: issuer.publicKey })
    const room = uniqueTopic('room')
    const [hostId, viewerId] = [await createIdentity(), await createIdentity()]
    const mint = async (identity: typeof hostId, write: string[]): Promise<string> =>
      await createRoomToken({ privateKey: issuer.privateKey, room, user: 'u', write, peerKey: identity.publicJwk })
    const [hostToken, viewerToken] = [await mint(hostId, ['spotlight']), await mint(viewerId, [])]
    // The room tokens open signaling too.
    const host = await lockPeer(await connect(`${server.url}/?token=${hostToken}`), room, hostId)
    const viewer = await lockPeer(await connect(`${server.url}/?token=${viewerToken}`), room, viewerId)
    expect(await viewer.request('acquire', 'spotlight', { ttl: 10_000, token: viewerToken })).toMatchObject({ ok: false, code: 'forbidden' })
    expect(await host.request('acquire', 'spotlight', { ttl: 10_000 })).toMatchObject({ ok: false, code: 'forbidden' })
    expect(await host.request('acquire', 'spotlight', { ttl: 10_000, token: hostToken })).toMatchObject({ ok: true })
  })

  it('a verifyRoomToken that throws makes the answer unavailable, not a grant', async () => {
    const server = await startArbiter({ verifyRoomToken: () => { throw new Error('JWKS unreachable') } })
    const room = uniqueTopic('room')
    const alice = await lockPeer(await connect(server.url), room)
    expect(await alice.request('acquire', 'k', { ttl: 10_000, token: 'x' })).toMatchObject({ ok: false, code: 'unavailable' })
  })

  it('in open rooms: anyone subscribed locks any key; only the holder ends a lock', async () => {
    const server = await startArbiter()
    const room = uniqueTopic('room')
    const [a, b] = await connectMany(server.url, 2)
    const alice = await lockPeer(a!, room)
    const bob = await lockPeer(b!, room)
    await alice.request('acquire', 'k', { ttl: 10_000 })
    expect(await bob.request('revoke', 'k')).toMatchObject({ ok: false, code: 'forbidden' })
    expect(await alice.request('revoke', 'k')).toMatchObject({ ok: true, op: 'revoke' })
    expect(await b!.next(lockEvent('release', 'k'))).toMatchObject({ holder: alice.identity.id })
    // A peer no longer subscribed to the room cannot lock in it.
    b!.send({ type: 'unsubscribe', topics: [room] })
    expect(await bob.request('acquire', 'k', { ttl: 10_000 })).toMatchObject({ ok: false, code: 'not_subscribed' })
  })
})

/**
 * Permissions through `joinRoom`: the `auth` option, `session.permissions`, token renewal, and a
 * partial mesh (maxConns below the room size) where writes reach everyone through relays and
 * still convince them, because the signature travels inside the entry.
 */

import { afterEach, describe, expect, it } from 'vitest'
import { importJWK, SignJWT, type JWK } from 'jose'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { ErrorCodes, SessionStoreError } from '../src/errors.js'
import { joinRoom, type Session } from '../src/session.js'
import type { SessionStore } from '../src/store/store.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { once, waitFor } from './helpers/wait.js'

const issuer = await generateIssuerKeys()
let rooms = 0
const sessions: Session[] = []
afterEach(async () => {
  await Promise.all(sessions.splice(0).map(async (session) => await session.leave()))
})

const minter = (room: string, user: string, write: string[], expiresIn: number | string = 3600) =>
  async (peerKey: JWK): Promise<string> => await createRoomToken({ privateKey: issuer.privateKey, room, user, write, peerKey, expiresIn })

const join = async (hub: MemoryHub, room: string, token: ((peerKey: JWK) => Promise<string>) | null, extra: Record<string, unknown> = {}): Promise<{ session: Session, store: SessionStore, errors: SessionStoreError[] }> => {
  const session = joinRoom(room, { joinTimeout: 2000, ...(token === null ? {} : { auth: { issuer: issuer.publicKey, token } }), ...extra }, { link: hub.link })
  sessions.push(session)
  const errors: SessionStoreError[] = []
  session.on('error', (err) => errors.push(err))
  return { session, store: await session.sessionStore, errors }
}

describe('joinRoom with auth', () => {
  it('refuses a malformed auth option before anything is made', () => {
    expect(() => joinRoom('r', { auth: { issuer: { kty: 'RSA' }, token: () => 'x' } })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom('r', { auth: { issuer: issuer.publicKey } as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
  })

  it('host, guest and viewer: session.permissions, canWrite, PERMISSION_DENIED, updatedBy.user', async () => {
    const hub = new MemoryHub()
    const room = `perm-${++rooms}`
    const host = await join(hub, room, minter(room, 'host', ['*']))
    // The store is available once the first token is verified: a host may write at once.
    expect(host.store.canWrite('spotlight')).toBe(true)
    const guest = await join(hub, room, minter(room, 'guest', ['hand/guest']))
    const viewer = await join(hub, room, minter(room, 'viewer', []))
    expect(host.session.permissions).toMatchObject({ user: 'host', write: ['*'] })
    expect(guest.session.permissions).toMatchObject({ user: 'guest', write: ['hand/guest'] })
    expect(guest.store.canWrite('spotlight')).toBe(false)
    expect(guest.store.canWrite('hand/guest')).toBe(true)
    await host.store.set('spotlight', 'host')
    await guest.store.set('hand/guest', true)
    await expect(guest.store.set('spotlight', 'guest')).rejects.toMatchObject({ code: ErrorCodes.PERMISSION_DENIED })
    await expect(viewer.store.set('hand/guest', false)).rejects.toMatchObject({ code: ErrorCodes.PERMISSION_DENIED })
    await waitFor(() => viewer.store.get('spotlight') === 'host' && viewer.store.get('hand/guest') === true)
    expect(viewer.store.entry('spotlight')?.updatedBy.user).toBe('host')
    expect(host.store.entry('hand/guest')?.updatedBy.user).toBe('guest')
  })

  it('a token that is missing, expired, for another room, or from another issuer leaves the peer read-only (UNAUTHORIZED); its writes are refused, and it still reads', async () => {
    const hub = new MemoryHub()
    const room = `perm-${++rooms}`
    const stranger = await generateIssuerKeys()
    const host = await join(hub, room, minter(room, 'host', ['*']))
    await host.store.set('pinned', 'welcome')
    const wrongRoom = await join(hub, room, minter('elsewhere', 'w', ['*']))
    const wrongIssuer = await join(hub, room, async (peerKey) => await createRoomToken({ privateKey: stranger.privateKey, room, user: 'x', write: ['*'], peerKey }))
    const expired = await join(hub, room, async (peerKey) => {
      const now = Math.floor(Date.now() / 1000)
      return await new SignJWT({ room, write: ['*'], cnf: { jwk: peerKey } }).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
        .setSubject('late').setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(await importJWK(issuer.privateKey, 'EdDSA'))
    })
    const missing = await join(hub, room, async () => '')
    const failing = await join(hub, room, async () => { throw new Error('backend down') })
    for (const peer of [wrongRoom, wrongIssuer, expired, missing, failing]) {
      await waitFor(() => peer.errors.some((e) => e.code === ErrorCodes.UNAUTHORIZED))
      expect(peer.session.permissions).toBeNull()
      expect(peer.store.canWrite('anything')).toBe(false)
      await expect(peer.store.set('anything', 1)).rejects.toMatchObject({ code: ErrorCodes.PERMISSION_DENIED })
      // Viewers are welcome: connected, it reads the room.
      await waitFor(() => peer.store.get('pinned') === 'welcome', { what: 'a read-only peer to read the host\'s value' })
    }
  })

  it('renews the token before it expires: auth.token is called again and permissions follow', async () => {
    const hub = new MemoryHub()
    const room = `perm-${++rooms}`
    let calls = 0
    // A token that expires in 62 s is renewed about 2 s from now (TOKEN_NOTICE is 60 s).
    const peer = await join(hub, room, async (peerKey) => {
      calls++
      return await minter(room, `user-${calls}`, calls === 1 ? [] : ['*'], 62)(peerKey)
    })
    await waitFor(() => peer.session.permissions?.user === 'user-1')
    const renewed = await once<{ user: string }>(peer.session, 'permissions', 5000)
    expect(renewed.user).toBe('user-2')
    expect(peer.store.canWrite('k')).toBe(true)
  })

  it('asks again after auth.token failed: a backend down at join gives the peer its rights once it answers', async () => {
    const hub = new MemoryHub()
    const room = `perm-${++rooms}`
    let calls = 0
    const peer = await join(hub, room, async (peerKey) => {
      if (++calls === 1) throw new Error('backend down')
      return await minter(room, 'host', ['*'])(peerKey)
    })
    await waitFor(() => peer.errors.some((e) => e.code === ErrorCodes.UNAUTHORIZED))
    expect(peer.store.canWrite('spotlight')).toBe(false)
    const granted = await once<{ user: string }>(peer.session, 'permissions', 5000)
    expect(granted.user).toBe('host')
    expect(calls).toBe(2)
    await expect(peer.store.set('spotlight', 'host')).resolves.toBe('host')
  })

  it('in a partial mesh (12 peers, maxConns 4), a host\'s signed write reaches and convinces every peer', async () => {
    // Each newcomer connects to the last two members only: a chain of cliques, no one sees all.
    const hub = new MemoryHub({ topology: (members) => members.slice(-3, -1) })
    const room = `perm-${++rooms}`
    const peers: Array<Awaited<ReturnType<typeof join>>> = []
    peers.push(await join(hub, room, minter(room, 'host', ['*']), { maxConns: 4 }))
    for (let i = 1; i < 12; i++) peers.push(await join(hub, room, minter(room, `guest${i}`, [`hand/guest${i}`]), { maxConns: 4, joinTimeout: 200 }))
    await waitFor(() => peers.every((p) => p.session.permissions !== null))
    await peers[0]?.store.set('spotlight', 'host')
    await peers[11]?.store.set('hand/guest11', 'up')
    await waitFor(() => peers.every((p) => p.store.get('spotlight') === 'host' && p.store.get('hand/guest11') === 'up'), { timeout: 5000, what: 'every peer read both writes' })
    expect(peers.every((p) => p.store.entry('spotlight')?.updatedBy.user === 'host')).toBe(true)
  })
})

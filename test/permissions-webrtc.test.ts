/**
 * Permissions over real WebRTC, every peer in its own process: a host, a guest and a viewer, and
 * attacks by a peer holding a valid guest token that writes straight into `session.doc` (a
 * modified client), entries signed under tokens that cannot be used (expired, another room, another
 * issuer), and a stock y-webrtc peer. Every honest peer, and a late joiner, goes on
 * reading the host's latest value, and the document converges back to the host's entry.
 */

import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { generateIssuerKeys } from '../src/auth.js'
import { joinPeer, spawnPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const issuer = await generateIssuerKeys()
const stranger = await generateIssuerKeys()

const authFor = (room: string, user: string, write: string[], keys = issuer): Record<string, unknown> =>
  ({ issuer: keys.publicKey, mint: { privateKey: keys.privateKey, room, user, write } })

/** Preloaded into a peer process: its WebCrypto lacks Ed25519, as in Chromium before 137. */
const WITHOUT_ED25519 = fileURLToPath(new URL('./fixtures/without-ed25519.mjs', import.meta.url))

describe('a protected room over WebRTC', () => {
  it('host, guest, viewer; a guest-token attacker and a stock peer change nothing honest peers read', { timeout: 120_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('perm')
    const join = async (name: string, write: string[]): Promise<PeerProcess> =>
      await joinPeer(name, room, { signaling: [server.url], auth: authFor(room, name, write) })
    const host = await join('host', ['*'])
    const [guest, viewer, mallory] = await Promise.all([join('guest', ['hand/guest']), join('viewer', []), join('mallory', ['hand/mallory'])])
    const honest = [host, guest, viewer]
    await Promise.all([...honest, mallory].map(async (p) => await p.call('waitForPeers', { count: 4 })))
    expect(await host.call('permissions')).toMatchObject({ user: 'host', write: ['*'] })
    expect(await guest.call('canWrite', { key: 'spotlight' })).toBe(false)
    await expect(guest.call('set', { key: 'spotlight', value: 'guest' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    await expect(viewer.call('set', { key: 'hand/guest', value: true })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    await guest.call('set', { key: 'hand/guest', value: true })

    await host.call('set', { key: 'spotlight', value: 'host-1' })
    const older = await host.call<string>('rawGet', { key: 'spotlight' })
    await host.call('set', { key: 'spotlight', value: 'host-2' })
    const latest = await host.call<string>('rawGet', { key: 'spotlight' })
    await Promise.all([...honest, mallory].map(async (p) => await p.call('waitForValue', { key: 'spotlight', value: 'host-2' })))
    expect(await viewer.call('entry', { key: 'hand/guest' })).toMatchObject({ value: true, updatedBy: { user: 'guest' } })

    /** A sealed entry over the spotlight, signed under a token minted by `mint` (by default the room's issuer, for the room). */
    const sealed = (user: string, write: string[], mint: Record<string, unknown> = {}) => async () => {
      const raw = await mallory.call<string>('forgeSealed', { room, key: 'spotlight', value: user, ver: 999, mint: { privateKey: issuer.privateKey, room, user, write, ...mint } })
      return await mallory.call('rawSet', { key: 'spotlight', raw })
    }
    const attacks: Array<[string, () => Promise<unknown>]> = [
      ['garbage over the key', async () => await mallory.call('rawSet', { key: 'spotlight', raw: 'garbage' })],
      ['a forged entry: the host\'s entry with another value', async () => await mallory.call('rawSet', { key: 'spotlight', raw: latest.replace('"host-2"', '"mallory"') })],
      ['an entry signed by a guest whose token does not grant the key', sealed('mallory', ['hand/mallory'])],
      ['an entry signed by a viewer', sealed('vera', [])],
      ['a replay of the host\'s older entry', async () => await mallory.call('rawSet', { key: 'spotlight', raw: older })],
      ['a raw Yjs delete', async () => await mallory.call('rawDelete', { key: 'spotlight' })],
      // Peers whose token cannot be used are read-only for everyone, whatever the token grants.
      ['an entry signed under an expired token', sealed('mallory', ['*'], { expiresIn: '1 hour ago' })],
      ['an entry signed under a token for another room', sealed('mallory', ['*'], { room: 'elsewhere' })],
      ['an entry signed under a token of another issuer', sealed('mallory', ['*'], { privateKey: stranger.privateKey })]
    ]
    for (const [what, attack] of attacks) {
      await attack()
      // Every honest peer reads the host's value throughout, and the document converges back within 2 s.
      const read = new Set<unknown>()
      await waitFor(async () => {
        const [reads, raws] = await Promise.all([
          Promise.all(honest.map(async (p) => await p.call('get', { key: 'spotlight' }))),
          Promise.all(honest.map(async (p) => await p.call<string | null>('rawGet', { key: 'spotlight' })))
        ])
        for (const value of reads) read.add(value)
        return raws.every((raw) => raw === latest)
      }, { timeout: 2000, interval: 50, what: `the room to converge back within 2 s after ${what}` })
      expect([...read], `what honest peers read after ${what}`).toEqual(['host-2'])
    }

    // A late joiner reads the host's value, attributed to the host.
    const late = await join('late', [])
    await late.call('waitForValue', { key: 'spotlight', value: 'host-2', timeout: 5000 })
    expect(await late.call('entry', { key: 'spotlight' })).toMatchObject({ value: 'host-2', updatedBy: { user: 'host' } })

    // A stock y-webrtc peer cannot even connect; what it writes reaches no one.
    const stock = fork(fileURLToPath(new URL('./fixtures/signaling-yjs-peer.mjs', import.meta.url)), [server.url, room, 'stock', 'session-store'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    onTestFinished(() => { stock.kill('SIGKILL') })
    interface StockState { map: Record<string, unknown>, webrtcPeers: number }
    const seen: { state: StockState | null } = { state: null }
    stock.on('message', (message: StockState & { event?: string }) => { if (message.event === 'state') seen.state = message })
    stock.send({ cmd: 'set', key: 'spotlight', value: 'stock' })
    await waitFor(async () => ((await host.call<{ dropped: Record<string, number> }>('stats')).dropped['the sender id is not a public key (an unsigned y-webrtc peer?)'] ?? 0) >= 1, { what: 'the stock announce to be dropped' })
    await waitFor(() => seen.state?.map.spotlight === 'stock', { what: 'the stock peer to write the spotlight' })
    for (const p of [...honest, late]) {
      expect(await p.call('get', { key: 'spotlight' })).toBe('host-2')
      expect(await p.call('toJSON')).not.toHaveProperty('stock')
    }
    // No connection either way: the room's entries never reached it.
    expect(seen.state).toMatchObject({ webrtcPeers: 0 })
    expect(seen.state?.map).not.toHaveProperty('hand/guest')
  })

  it('where WebCrypto lacks Ed25519: the session signs with P-256 and an ES256 issuer\'s tokens work, but it never connects to Ed25519 peers', { timeout: 120_000 }, async () => {
    const es256 = await generateIssuerKeys({ alg: 'ES256' })
    const server = await startSignaling()
    const room = uniqueRoom('legacy')
    const legacy = async (name: string, auth: Record<string, unknown>): Promise<PeerProcess> => {
      const peer = await spawnPeer(name, undefined, { execArgv: ['--import', WITHOUT_ED25519] })
      await peer.call('join', { room, options: { signaling: [server.url], auth, joinTimeout: 4000 } })
      return peer
    }
    const host = await joinPeer('host', room, { signaling: [server.url], auth: authFor(room, 'host', ['*'], es256) })
    await host.call('set', { key: 'spotlight', value: 'host' })
    const [a, b] = await Promise.all([legacy('a', authFor(room, 'a', ['hand/a'], es256)), legacy('b', authFor(room, 'b', ['hand/b'], es256))])
    expect(await a.call('permissions')).toMatchObject({ user: 'a', write: ['hand/a'] })

    // Between P-256 sessions, a protected room works as anywhere.
    await a.call('set', { key: 'hand/a', value: 'up' })
    await b.call('waitForValue', { key: 'hand/a', value: 'up' })
    expect(await b.call('entry', { key: 'hand/a' })).toMatchObject({ updatedBy: { user: 'a' } })
    expect(await b.call('rawGet', { key: 'hand/a' })).toContain('"pk":"p256.') // signed with a's P-256 session key
    await expect(b.call('set', { key: 'hand/a', value: 'down' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })

    // The Ed25519 host's signaling cannot be verified there, so they never connect: each side reads only its own.
    const reason = 'this runtime\'s WebCrypto lacks Ed25519, so it cannot verify an Ed25519 peer (it signs with P-256 itself)'
    await waitFor(async () => ((await a.call<{ dropped: Record<string, number> }>('stats')).dropped[reason] ?? 0) >= 1, { what: 'the host\'s signaling to be dropped as unverifiable' })
    for (const p of [a, b]) expect(await p.call('get', { key: 'spotlight' })).toBeNull()
    expect(await host.call('get', { key: 'hand/a' })).toBeNull()
  })
})

/**
 * Permissions over real WebRTC, every peer in its own process: a host, a guest and a viewer, and
 * attacks by a peer holding a valid guest token that writes straight into `session.doc` (a
 * modified client) and by a stock y-webrtc peer. Every honest peer, and a late joiner, goes on
 * reading the host's latest value, and the document converges back to the host's entry.
 */

import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { generateIssuerKeys } from '../src/auth.js'
import { joinPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const issuer = await generateIssuerKeys()

const authFor = (room: string, user: string, write: string[]): Record<string, unknown> =>
  ({ issuer: issuer.publicKey, mint: { privateKey: issuer.privateKey, room, user, write } })

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

    const attacks: Array<[string, () => Promise<unknown>]> = [
      ['garbage over the key', async () => await mallory.call('rawSet', { key: 'spotlight', raw: 'garbage' })],
      ['a forged entry: the host\'s entry with another value', async () => await mallory.call('rawSet', { key: 'spotlight', raw: latest.replace('"host-2"', '"mallory"') })],
      ['an entry signed by a guest whose token does not grant the key', async () => {
        const raw = await mallory.call<string>('forgeSealed', { room, key: 'spotlight', value: 'mallory', ver: 999, mint: { privateKey: issuer.privateKey, room, user: 'mallory', write: ['hand/mallory'] } })
        return await mallory.call('rawSet', { key: 'spotlight', raw })
      }],
      ['a replay of the host\'s older entry', async () => await mallory.call('rawSet', { key: 'spotlight', raw: older })],
      ['a raw Yjs delete', async () => await mallory.call('rawDelete', { key: 'spotlight' })]
    ]
    for (const [what, attack] of attacks) {
      await attack()
      // Every honest peer reads the host's value throughout, and the document converges back.
      await waitFor(async () => {
        const raws = await Promise.all(honest.map(async (p) => await p.call<string | null>('rawGet', { key: 'spotlight' })))
        return raws.every((raw) => raw === latest)
      }, { timeout: 4000, interval: 50, what: `the room to converge back after ${what}` })
      for (const p of honest) expect(await p.call('get', { key: 'spotlight' }), what).toBe('host-2')
    }

    // A late joiner reads the host's value, attributed to the host.
    const late = await join('late', [])
    await late.call('waitForValue', { key: 'spotlight', value: 'host-2', timeout: 5000 })
    expect(await late.call('entry', { key: 'spotlight' })).toMatchObject({ value: 'host-2', updatedBy: { user: 'host' } })

    // A stock y-webrtc peer cannot even connect; what it writes reaches no one.
    const stock = fork(fileURLToPath(new URL('./fixtures/signaling-yjs-peer.mjs', import.meta.url)), [server.url, room, 'stock', 'session-store'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    onTestFinished(() => { stock.kill('SIGKILL') })
    stock.send({ cmd: 'set', key: 'spotlight', value: 'stock' })
    await waitFor(async () => ((await host.call<{ dropped: Record<string, number> }>('stats')).dropped['the sender id is not a public key (an unsigned y-webrtc peer?)'] ?? 0) >= 1, { what: 'the stock announce to be dropped' })
    for (const p of [...honest, late]) expect(await p.call('get', { key: 'spotlight' })).toBe('host-2')
  })
})

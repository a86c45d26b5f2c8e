/**
 * A peer whose side of a connection died before the other side noticed offers a new connection
 * while the other still holds the old one open. y-webrtc hands such an offer to the old
 * connection (a renegotiation towards another DTLS certificate), which the handshake then refuses
 * as made for another connection. The adapter replaces the old connection instead: the new one
 * opens, writes flow, and nothing is reported as a protocol error. Real WebRTC, separate processes.
 */
import { describe, expect, it } from 'vitest'
import { HOSTILE_FIXTURE, joinPeer, spawnPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const REPLACED = 'connections replaced by a new offer from their peer'

describe('a new offer from a connected peer', () => {
  it('replaces the old connection: it opens, writes flow both ways, no protocol error', { timeout: 90_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('reconnect')
    // The peer that reconnects (the library's own session, with a hand on its y-webrtc room), and
    // a victim whose id sorts above its own: by the initiator rule only the smaller id offers.
    // Ids are random, so a reconnector whose id sorts near the top is replaced after a few
    // candidates that sort below it (a fixed reconnector with 12 candidates failed CI once).
    let peer: PeerProcess | undefined
    let peerId = ''
    let victim: PeerProcess | undefined
    for (let round = 0; round < 6 && victim === undefined; round++) {
      peer = await spawnPeer(`reconnector-${round}`, HOSTILE_FIXTURE)
      await peer.call('join', { room, options: { signaling: [server.url] } })
      peerId = await peer.call<string>('localId')
      for (let tries = 0; tries < 4 && victim === undefined; tries++) {
        const candidate = await joinPeer(`victim-${round}-${tries}`, room, { signaling: [server.url] })
        if ((await candidate.call<string>('peerId')) > peerId) victim = candidate
        else await candidate.call('leave')
      }
      if (victim === undefined) await peer.call('leave')
    }
    if (victim === undefined || peer === undefined) throw new Error('no victim id sorted above a reconnector\'s in 6 rounds of 4 tries')
    const victimId = await victim.call<string>('peerId')
    await waitFor(async () => (await victim.call<unknown[]>('connections')).length === 1, { what: 'the first connection' })
    await victim.call('set', { key: 'before', value: 1 })

    expect(await peer.call<boolean>('reconnect', { to: victimId })).toBe(true)
    await waitFor(async () => ((await victim.call<{ dropped: Record<string, number> }>('stats')).dropped[REPLACED] ?? 0) >= 1, { what: 'the victim to replace the old connection' })
    await waitFor(async () => (await victim.call<unknown[]>('connections')).length === 1 && (await peer.call<number>('verifiedPeers')) >= 1, { timeout: 15_000, what: 'the new connection, verified on both sides' })
    await victim.call('set', { key: 'after', value: 2 })
    await peer.call('waitForValue', { key: 'after', value: 2 })
    await peer.call('set', { key: 'back', value: 3 })
    await victim.call('waitForValue', { key: 'back', value: 3 })
    const errors = victim.events.filter((e) => e.event === 'error').map((e) => `${String(e.code)}: ${String(e.message)}`)
    expect(errors).toEqual([])
  })
})

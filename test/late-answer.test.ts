/**
 * A data channel can open before the offerer's JavaScript sees the answer: Chromium resolves
 * setRemoteDescription in a task that may run after the channel's 'open' (seen under load in CI,
 * where a reloaded page then waited out a 10 s back-off and its store came up as 'timeout'). The
 * handshake binds both DTLS fingerprints, so read at that moment it named no remote one and each
 * side refused the other's. Here both peers show every answer 1.5 s after it took effect
 * (test/fixtures/peer.mjs `lateAnswer`): the connection must open once the answer shows, with no
 * refusal and no back-off. Real WebRTC, separate processes.
 */
import { describe, expect, it } from 'vitest'
import { spawnPeer } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

describe('an answer the offerer sees only after its channel opened', () => {
  it('opens the connection once the answer shows: both synced, nothing refused, no back-off', { timeout: 60_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('late-answer')
    const options = { signaling: [server.url] }
    const host = await spawnPeer('host')
    await host.call('join', { room, options, lateAnswer: 1500 })
    await host.call('set', { key: 'before', value: 1 })
    const joiner = await spawnPeer('joiner')
    const joined = await joiner.call<{ sync: string, json: Record<string, unknown> }>('join', { room, options, lateAnswer: 1500 })

    expect([...host.events, ...joiner.events].filter((e) => e.event === 'error')).toEqual([])
    expect(joined.sync).toBe('synced')
    expect(joined.json).toEqual({ before: 1 })
    await waitFor(async () => (await host.call<unknown[]>('connections')).length === 1, { what: 'the host\'s connection' })
    for (const peer of [host, joiner]) {
      const { dropped } = await peer.call<{ dropped: Record<string, number> }>('stats')
      expect(Object.keys(dropped).filter((reason) => reason.includes('back-off'))).toEqual([])
    }
    await joiner.call('set', { key: 'after', value: 2 })
    await host.call('waitForValue', { key: 'after', value: 2 })
  })
})

import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { startServer, uniqueTopic } from './helpers/signaling.js'
import { waitFor, withTimeout } from './helpers/wait.js'

const PEER = fileURLToPath(new URL('./fixtures/signaling-yjs-peer.mjs', import.meta.url))

interface PeerState {
  map: Record<string, unknown>
  webrtcPeers: number
}

interface Peer {
  child: ChildProcess
  latest: () => PeerState | null
  exited: Promise<number | null>
}

const startPeer = (url: string, room: string, name: string): Peer => {
  const child = fork(PEER, [url, room, name], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let latest: PeerState | null = null
  child.on('message', (message: PeerState & { event: string }) => {
    if (message.event === 'state') latest = message
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, latest: () => latest, exited }
}

describe('compatibility with unmodified y-webrtc', () => {
  // With `turn`, every connection also receives a `turn` message, which y-webrtc ignores.
  it.each([
    ['', {}],
    [', also from a server that hands out TURN credentials', { turn: { secret: 'a-turn-secret-of-16+', urls: ['turn:127.0.0.1:9'] } }]
  ])('lets two y-webrtc peers in separate processes find each other and sync a Y.Map%s', async (_what, options) => {
    const server = await startServer(options)
    const room = uniqueTopic('compat')
    const alice = startPeer(server.url, room, 'alice')
    // Bob starts once Alice's subscribe and announce have passed the server, so only Alice sees
    // an announce and initiates. When both announce at once, both initiate, and y-webrtc's glare
    // handling needs the browsers' implicit rollback, which node's wrtc lacks: the pair can hang.
    await waitFor(() => server.stats().subscriptions === 1 && server.stats().messagesIn >= 2, { timeout: 15_000, what: 'alice to subscribe and announce' })
    const bob = startPeer(server.url, room, 'bob')

    const both = { alice: 'hello from alice', bob: 'hello from bob' }
    const synced = (peer: Peer): boolean => {
      const state = peer.latest()
      return state !== null && state.webrtcPeers === 1 && Object.entries(both).every(([key, value]) => state.map[key] === value)
    }
    await waitFor(() => synced(alice) && synced(bob), { timeout: 25_000, what: 'both peers to hold both entries over WebRTC' })
      .catch((err: Error) => {
        err.message += `; last states: ${JSON.stringify({ alice: alice.latest(), bob: bob.latest(), server: server.stats() })}`
        throw err
      })

    alice.child.send({ cmd: 'set', key: 'live', value: { n: 1 } })
    await waitFor(() => JSON.stringify(bob.latest()?.map.live) === '{"n":1}', { timeout: 10_000, what: 'a live update to reach bob' })

    const stats = server.stats()
    expect(stats).toMatchObject({ connections: 2, topics: 1, subscriptions: 2 })
    expect(stats.messagesIn).toBeGreaterThan(2)
    expect(Object.entries(stats.rejections).filter(([, n]) => n > 0)).toEqual([])

    for (const peer of [alice, bob]) peer.child.send({ cmd: 'stop' })
    expect(await withTimeout(Promise.all([alice.exited, bob.exited]), 10_000, 'the peers to exit')).toEqual([0, 0])
    await waitFor(() => server.stats().connections === 0, { what: 'the peers to be released' })
    expect(server.stats()).toMatchObject({ topics: 0, subscriptions: 0 })
  })
})

/**
 * Real peers over real WebRTC: each peer is its own Node process (@roamhq/wrtc), introduced by
 * this project's signaling server. Runs the built package (`npm test` builds first).
 */
import { execFile, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { joinPeer, spawnPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { once, waitFor } from './helpers/wait.js'
import { MAX_PENDING } from '../src/transport/y-webrtc-adapter.js'

const expectWebrtc = async (peer: PeerProcess, count: number): Promise<void> => {
  const connections: Array<{ connectionState: string, dataChannels: string[] }> = await peer.call('connections')
  const live = connections.filter((c) => c.connectionState === 'connected' && c.dataChannels.includes('open'))
  expect(live.length).toBeGreaterThanOrEqual(count)
}

describe('peers in separate processes over WebRTC', () => {
  it('two peers sync both ways and see each other with their metadata', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url], metadata: { name: 'Ada' } })
    expect(a.joined.sync).toBe('alone')
    await a.call('set', { key: 'pinned', value: { text: 'hello', by: 'Ada' } })
    const b = await joinPeer('b', room, { signaling: [server.url], metadata: { name: 'Bob' } })
    expect(b.joined.sync).toBe('synced')
    expect(b.joined.json).toEqual({ pinned: { text: 'hello', by: 'Ada' } })

    await b.call('set', { key: 'spotlight', value: 'Bob' })
    await a.call('waitForValue', { key: 'spotlight', value: 'Bob' })
    await a.call('delete', { key: 'pinned' })
    await b.call('waitForJSON', { json: { spotlight: 'Bob' } })

    await a.call('waitForPeers', { count: 2 })
    await b.call('waitForPeers', { count: 2 })
    const names = (await a.call<Array<{ metadata: { name: string } }>>('peers')).map((p) => p.metadata.name).sort()
    expect(names).toEqual(['Ada', 'Bob'])
    await expectWebrtc(a, 1)
    await expectWebrtc(b, 1)
  })

  it('observers in another process see the initial value, then every remote change', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    await a.call('set', { key: 'timer', value: 60 })
    const b = await joinPeer('b', room, { signaling: [server.url] })
    await b.call('observe', { keys: ['timer'] })
    for (const value of [59, 58, 57]) await a.call('set', { key: 'timer', value })
    await b.call('waitForValue', { key: 'timer', value: 57 })
    const seen = b.events.filter((e) => e.event === 'change').map((e) => e.value)
    expect(seen[0]).toBe(60)
    expect(seen.at(-1)).toBe(57)
    expect(seen).toEqual([...seen].sort((x, y) => Number(y) - Number(x))) // in order, none out of place
  })

  it('a late joiner receives the full state', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    const b = await joinPeer('b', room, { signaling: [server.url] })
    const expected: Record<string, unknown> = {}
    for (let i = 0; i < 100; i++) {
      const value = { i, text: 'x'.repeat(500) }
      expected[`k${i}`] = value
      await (i % 2 === 0 ? a : b).call('set', { key: `k${i}`, value })
    }
    await a.call('waitForJSON', { json: expected })
    const late = await joinPeer('late', room, { signaling: [server.url] })
    expect(late.joined.sync).toBe('synced')
    expect(late.joined.json).toEqual(expected)
    expect((await late.call('usage')).keys).toBe(100)
  })

  it('a late joiner of a long-lived room gets the whole state even when it is far over 256 KiB', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    // compactAfter 0: the room keeps its history (no epochs), which is what makes the state this large.
    const a = await joinPeer('a', room, { signaling: [server.url], compactAfter: 0 })
    // Alternating overwrites of two keys: each leaves a tombstone, so history grows ~10 bytes a write.
    await a.call('overwrite', { keys: ['spotlight', 'timer'], count: 50_000 }, 120_000)
    const stateBytes = await a.call<number>('stateBytes')
    expect(stateBytes).toBeGreaterThan(262_144) // what kills an unframed data channel
    const late = await joinPeer('late', room, { signaling: [server.url], compactAfter: 0 })
    expect(late.joined.sync).toBe('synced')
    expect(late.joined.json).toEqual({ spotlight: { n: 49_998, by: 'writer' }, timer: { n: 49_999, by: 'writer' } })
    await expectWebrtc(late, 1)
    expect(await late.call<number>('stateBytes')).toBe(stateBytes)
    // The connection survived the large message: it still carries writes both ways.
    await late.call('set', { key: 'after', value: true })
    await a.call('waitForValue', { key: 'after', value: true })
  })

  it('with epochs (the default), a long-lived room\'s state stays small, and a late joiner gets it all and writes', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url], compactAfter: 5000 })
    await a.call('overwrite', { keys: ['spotlight', 'timer'], count: 30_000 }, 120_000)
    // The writes do not yield, so the move comes once they end: the current epoch holds the live entries.
    await waitFor(async () => (await a.call<number>('stateBytes')) < 262_144, { what: 'a move' })
    const late = await joinPeer('late', room, { signaling: [server.url] })
    expect(late.joined.sync).toBe('synced')
    expect(late.joined.json).toEqual({ spotlight: { n: 29_998, by: 'writer' }, timer: { n: 29_999, by: 'writer' } })
    await expectWebrtc(late, 1)
    await late.call('set', { key: 'after', value: true })
    await a.call('waitForValue', { key: 'after', value: true })
  })

  it('peers that join at the same moment all connect (no offer glare), round after round', { timeout: 120_000 }, async () => {
    const server = await startSignaling()
    const peers = await Promise.all(['a', 'b', 'c'].map(async (name) => await spawnPeer(name)))
    for (let round = 0; round < 5; round++) {
      const room = uniqueRoom(`glare-${round}`)
      await Promise.all(peers.map((p) => p.call('join', { room, options: { signaling: [server.url] } })))
      await Promise.all(peers.map((p, i) => p.call('set', { key: `from-${i}`, value: round })))
      const expected = { 'from-0': round, 'from-1': round, 'from-2': round }
      await Promise.all(peers.map((p) => p.call('waitForJSON', { json: expected })))
      await Promise.all(peers.map((p) => p.call('waitForPeers', { count: 3 })))
      for (const p of peers) await expectWebrtc(p, 2)
      await Promise.all(peers.map((p) => p.call('leave')))
    }
  })

  it("with turn: 'signaling', new connections are configured with the TURN servers the signaling server hands out", async () => {
    const url = 'turn:127.0.0.1:9?transport=udp' // nothing listens there: the peers meet over host candidates
    const server = await startSignaling({ turn: { secret: 'a-turn-secret-of-16+', urls: [url], ttl: 600 } })
    const room = uniqueRoom()
    const options = { signaling: [server.url], turn: 'signaling' }
    const a = await spawnPeer('a')
    await a.call('join', { room, options, track: true })
    const b = await spawnPeer('b')
    await b.call('join', { room, options, track: true })
    await a.call('set', { key: 'k', value: 1 })
    await b.call('waitForValue', { key: 'k', value: 1 })
    for (const peer of [a, b]) {
      const reports = await peer.call<Array<{ iceServers: unknown[] }>>('iceReport')
      expect(reports.length).toBeGreaterThan(0)
      for (const report of reports) expect(report.iceServers).toEqual([{ urls: [url], username: expect.stringMatching(/^\d{10}:[\w-]+$/) }])
    }
    // Without the option, the signaling server's credentials are not used.
    const c = await spawnPeer('c')
    await c.call('join', { room, options: { signaling: [server.url] }, track: true })
    await c.call('waitForValue', { key: 'k', value: 1 })
    const plain = await c.call<Array<{ iceServers: Array<{ urls: string[] }> }>>('iceReport')
    expect(plain.flatMap((report) => report.iceServers.flatMap((s) => s.urls))).not.toContain(url)
  })

  it('when every peer has left, a new peer finds the store empty', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    const b = await joinPeer('b', room, { signaling: [server.url] })
    await a.call('set', { key: 'pinned', value: 'gone soon' })
    await b.call('waitForValue', { key: 'pinned', value: 'gone soon' })
    await a.call('leave')
    await b.call('leave')
    await waitFor(() => server.stats().topics === 0, { what: 'the room to be empty on the server' })
    const c = await joinPeer('c', room, { signaling: [server.url] })
    expect(c.joined.sync).toBe('alone')
    expect(c.joined.json).toEqual({})
  })

  it('an encrypted room syncs peers that share its password, and only them', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url], password: 'open sesame' })
    await a.call('set', { key: 'secret', value: 42 })
    const b = await joinPeer('b', room, { signaling: [server.url], password: 'open sesame' })
    expect(b.joined).toMatchObject({ sync: 'synced', json: { secret: 42 } })
    const outsider = await joinPeer('outsider', room, { signaling: [server.url], password: 'wrong', joinTimeout: 2000 })
    expect(outsider.joined).toMatchObject({ sync: 'timeout', json: {} })
    await expectWebrtc(b, 1)
    expect(await outsider.call('connections')).toEqual([])
    // The outsider's announces cannot be decrypted: reported, not fatal (y-webrtc alone would leave
    // an unhandled rejection, which ends a Node process).
    expect(a.events.some((e) => e.event === 'error' && e.code === 'PROTOCOL_ERROR')).toBe(true)
    await b.call('set', { key: 'still', value: 'alive' })
    await a.call('waitForValue', { key: 'still', value: 'alive' })
  })

  it('peers survive hostile signaling payloads from another subscriber of the room', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    const b = await joinPeer('b', room, { signaling: [server.url] })
    await a.call('waitForPeers', { count: 2 })
    const [aPeerId, bPeerId] = await Promise.all([a.call<string>('peerId'), b.call<string>('peerId')])
    const hostile = new WebSocket(server.url)
    onTestFinished(() => hostile.terminate())
    await once(hostile, 'open')
    hostile.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
    const payloads: unknown[] = []
    for (const to of [aPeerId, bPeerId]) {
      payloads.push(
        { type: 'signal', from: 'mallory', to }, // no signal: y-webrtc reads data.signal.type
        { type: 'signal', from: 'mallory', to, signal: 'not json {' }, // simple-peer JSON.parses strings
        { type: 'signal', from: 'mallory', to, signal: { type: 'answer', sdp: 'v=0' } }, // answer to no offer
        { type: 'signal', from: 42, to, signal: { type: 'offer' } },
        { type: 'signal', from: 'mallory', to, signal: { candidate: { bogus: true } } }
      )
    }
    payloads.push(null, 7, 'text', [1, 2], { type: 'announce' }, { type: 'announce', from: { nested: 1 } })
    for (const data of payloads) hostile.send(JSON.stringify({ type: 'publish', topic: room, data }))
    // Each peer drops 11 of them (the other 5, addressed to the other peer, it does not read).
    const droppedBy = async (p: PeerProcess): Promise<number> => Object.values((await p.call<{ dropped: Record<string, number> }>('stats')).dropped).reduce((x, y) => x + y, 0)
    await waitFor(async () => await droppedBy(a) >= 11 && await droppedBy(b) >= 11, { what: 'the hostile payloads to be dropped' })
    expect(a.events.some((e) => e.event === 'error' && e.code === 'PROTOCOL_ERROR')).toBe(true)
    await a.call('set', { key: 'after-attack', value: 1 })
    await b.call('waitForValue', { key: 'after-attack', value: 1 })
    const late = await joinPeer('late', room, { signaling: [server.url] })
    expect(late.joined.json).toEqual({ 'after-attack': 1 })
    expect(a.child.exitCode).toBeNull()
    expect(b.child.exitCode).toBeNull()
  })

  it('a peer killed with SIGKILL does not disturb the others', { timeout: 90_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    const b = await joinPeer('b', room, { signaling: [server.url] })
    const victim = await joinPeer('victim', room, { signaling: [server.url] })
    await a.call('waitForPeers', { count: 3 })
    await victim.call('set', { key: 'from-victim', value: 1 })
    await a.call('waitForValue', { key: 'from-victim', value: 1 })
    await b.call('waitForValue', { key: 'from-victim', value: 1 })

    await victim.kill('SIGKILL')
    await a.call('set', { key: 'after-kill', value: 'a' })
    await b.call('set', { key: 'also-after', value: 'b' })
    const expected = { 'from-victim': 1, 'after-kill': 'a', 'also-after': 'b' }
    await a.call('waitForJSON', { json: expected })
    await b.call('waitForJSON', { json: expected })
    // libwebrtc declares the dead peer's connection failed after ~15 s here; then it leaves the
    // peer list at once, without waiting for awareness to time it out (another 30 s).
    await a.call('waitForPeers', { count: 2, timeout: 40_000 }, 45_000)
    await b.call('waitForPeers', { count: 2, timeout: 40_000 }, 45_000)
    const late = await joinPeer('late', room, { signaling: [server.url] })
    expect(late.joined.json).toEqual(expected)
  })
  it('a joiner that more peers contact at once than it has pending slots connects to every one, none given up', { timeout: 300_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('wide')
    const peers: PeerProcess[] = []
    // One at a time, each once connected to all before it: the last is contacted by MAX_PENDING + 2 at once.
    for (let i = 0; i < MAX_PENDING + 3; i++) {
      const peer = await joinPeer(`w${i}`, room, { signaling: [server.url] })
      peers.push(peer)
      await peer.call('waitForPeers', { count: i + 1, timeout: 60_000 }, 65_000)
    }
    for (const peer of peers) {
      await expectWebrtc(peer, peers.length - 1)
      // The payloads past the cap waited for a slot: nothing was refused, no attempt timed out.
      const { dropped } = await peer.call<{ dropped: Record<string, number> }>('stats')
      expect(dropped['pending connections at their cap']).toBeUndefined()
      expect(dropped['connections that never opened']).toBeUndefined()
    }
  })

  it('twelve peers with maxConns 4, joining one at a time: the room stays in one piece, every write reaches everyone by relay', { timeout: 300_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('partial')
    const peers: PeerProcess[] = []
    // One at a time, each once its store is available: what splits a room into cliques of 5.
    for (let i = 0; i < 12; i++) peers.push(await joinPeer(`p${i}`, room, { signaling: [server.url], maxConns: 4 }))
    // Awareness is not relayed (session.peers lists neighbours only): the writes are the test.
    await Promise.all(peers.map(async (p, i) => await p.call('set', { key: `from-${i}`, value: i })))
    const expected = Object.fromEntries(peers.map((_p, i) => [`from-${i}`, i]))
    await Promise.all(peers.map(async (p) => await p.call('waitForJSON', { json: expected, timeout: 90_000 }, 95_000)))
    const live = await Promise.all(peers.map(async (p) => {
      const connections: Array<{ connectionState: string, dataChannels: string[] }> = await p.call('connections')
      return connections.filter((c) => c.connectionState === 'connected' && c.dataChannels.includes('open')).length
    }))
    expect(Math.min(...live)).toBeGreaterThanOrEqual(1)
    // Partial: no peer is connected to all 11 others, so writes crossed by relay; bridging went
    // beyond maxConns by a connection or two at most.
    expect(Math.max(...live)).toBeLessThanOrEqual(6)
  })
})

describe('a stock y-webrtc peer in a room of library peers', () => {
  it('is refused: its unsigned announces are ignored and reported, and nothing passes either way', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const a = await joinPeer('a', room, { signaling: [server.url] })
    await a.call('set', { key: 'pinned', value: 'hi' })
    const stock = fork(fileURLToPath(new URL('./fixtures/signaling-yjs-peer.mjs', import.meta.url)), [server.url, room, 'stock', 'session-store'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    onTestFinished(() => { stock.kill('SIGKILL') })
    let state: { map: Record<string, unknown>, webrtcPeers: number } = { map: {}, webrtcPeers: 0 }
    stock.on('message', (m: typeof state) => { state = m })
    stock.send({ cmd: 'set', key: 'from-stock', value: '{"ok":true}' })
    // It cannot prove an identity, so the library peer never connects to it.
    await waitFor(async () => ((await a.call<{ dropped: Record<string, number> }>('stats')).dropped['the sender id is not a public key (an unsigned y-webrtc peer?)'] ?? 0) >= 1, { what: 'the stock announce to be dropped' })
    expect(a.events.some((e) => e.event === 'error' && e.code === 'PROTOCOL_ERROR' && /unsigned y-webrtc peer/.test(String(e.message)))).toBe(true)
    expect(await a.call('connections')).toEqual([])
    expect(await a.call('toJSON')).toEqual({ pinned: 'hi' })
    expect(state.map.pinned).toBeUndefined()
    expect(state.webrtcPeers).toBe(0)
  })
})

describe('leaving releases everything', () => {
  const fixture = fileURLToPath(new URL('./fixtures/leave-and-exit.mjs', import.meta.url))
  it.each([['a plain room', ''], ['an encrypted room', 'secret']])('a Node process exits by itself after leave() (%s)', async (_what, password) => {
    const server = await startSignaling()
    const { stdout } = await promisify(execFile)(process.execPath, [fixture, server.url, uniqueRoom(), password], { timeout: 15_000 })
    expect(stdout.trim()).toBe('left alone')
  })
})

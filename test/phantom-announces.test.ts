/**
 * Signaling-level attackers (issue 17): a plain WebSocket client publishing made-up announces and
 * offers, above and below the honest peer's id, kept up during the test. Made-up ids cannot sign,
 * so every honest peer ignores them outright: a joiner still syncs with the honest peer, writes
 * flow both ways, and no connection is ever set up for a phantom.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { joinPeer, spawnPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { TimeoutError, once, waitFor } from './helpers/wait.js'

const phantomId = (n: number, above: boolean): string => `${above ? '~' : '!'}phantom-${n}`

/** Publishes `count` made-up announces and offers to `to`, half sorting above the honest ids, half below. */
const flood = (ws: WebSocket, room: string, to: string, start: number, count: number): void => {
  for (let i = start; i < start + count; i++) {
    const from = phantomId(i, i % 2 === 0)
    ws.send(JSON.stringify({ type: 'publish', topic: room, data: { type: 'announce', from } }))
    ws.send(JSON.stringify({ type: 'publish', topic: room, data: { type: 'signal', from, to, token: i, signal: { type: 'offer', sdp: 'v=0 garbage' } } }))
  }
}

const stats = async (peer: PeerProcess): Promise<{ dropped: Record<string, number>, pending: number, handshakes: number }> => await peer.call('stats')

describe('phantom announces and offers', () => {
  it('do not keep a joiner from the honest peer, nor hold any connection slot', { timeout: 60_000 }, async () => {
    const server = await startSignaling()
    const room = uniqueRoom('phantoms')
    const host = await joinPeer('host', room, { signaling: [server.url] })
    await host.call('set', { key: 'config', value: { owner: 'host' } })
    const hostId = await host.call<string>('peerId')

    const ws = new WebSocket(server.url)
    onTestFinished(() => ws.terminate())
    ws.on('error', () => {}) // the server may drop the flooding connection (see phantom-flood.ts)
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
    flood(ws, room, hostId, 0, 60) // 120 announces and offers at once
    let next = 60
    const keepUp = setInterval(() => { flood(ws, room, hostId, next, 30); next += 30 }, 1000) // then 60 a second
    onTestFinished(() => clearInterval(keepUp))
    await waitFor(async () => Object.values((await stats(host)).dropped).reduce((a, b) => a + b, 0) >= 100, { what: 'the host to drop the phantoms' })

    const joiner = await joinPeer('joiner', room, { signaling: [server.url], joinTimeout: 10_000 })
    expect(joiner.joined).toMatchObject({ sync: 'synced', json: { config: { owner: 'host' } } })
    await joiner.call('set', { key: 'from-joiner', value: 1 })
    await host.call('waitForValue', { key: 'from-joiner', value: 1 })
    await host.call('set', { key: 'from-host', value: 2 })
    await joiner.call('waitForValue', { key: 'from-host', value: 2 })
    const unsigned = 'the sender id is not a public key (an unsigned y-webrtc peer?)'
    await waitFor(async () => ((await stats(joiner)).dropped[unsigned] ?? 0) > 0, { what: 'the joiner to drop the phantoms too' })
    for (const peer of [host, joiner]) {
      expect((await stats(peer)).pending).toBe(0)
      expect((await peer.call<unknown[]>('connections')).length).toBe(1)
    }
  })
})

/**
 * Phantoms that sign: each announce and offer from a fresh, genuine key pair (so its signature
 * verifies), published at a steady rate. In a protected room they carry no room token, so they
 * are unattributable: they get only MAX_UNATTRIBUTED_PENDING of the pending slots, and the peers
 * with tokens connect to each other past them.
 */
describe('signed phantoms in a protected room', () => {
  it('cannot crowd out a joiner with a room token', { timeout: 60_000 }, async () => {
    const { generateIssuerKeys } = await import('../src/auth.js')
    const { createIdentity } = await import('../src/trust/identity.js')
    const { signSignal } = await import('../src/trust/signed-signal.js')
    const issuer = await generateIssuerKeys()
    const server = await startSignaling()
    const room = uniqueRoom('signed-phantoms')
    const auth = (user: string) => ({ issuer: issuer.publicKey, mint: { privateKey: issuer.privateKey, room, user, write: ['*'] } })
    const host = await joinPeer('host', room, { signaling: [server.url], auth: auth('host') })
    await host.call('set', { key: 'config', value: { owner: 'host' } })
    const hostId = await host.call<string>('peerId')

    const ws = new WebSocket(server.url)
    onTestFinished(() => ws.terminate())
    ws.on('error', () => {}) // the server may drop the flooding connection (see phantom-flood.ts)
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
    const phantoms = await Promise.all(Array.from({ length: 40 }, async () => await createIdentity()))
    let n = 0
    const burst = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const phantom = phantoms[n++ % phantoms.length] as Awaited<ReturnType<typeof createIdentity>>
        const payloads = [{ type: 'announce' as const, from: phantom.id }, { type: 'signal' as const, from: phantom.id, to: hostId, token: n, signal: { type: 'offer', sdp: 'v=0 garbage' } }]
        for (const payload of payloads) {
          const data = await signSignal(phantom, room, n * 2 + (payload.type === 'signal' ? 1 : 0), payload)
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'publish', topic: room, data }))
        }
      }
    }
    await burst(40)
    const keepUp = setInterval(() => { void burst(20) }, 1000)
    onTestFinished(() => clearInterval(keepUp))
    const counter = 'unattributable signaling payloads (no valid room token): their own small pending cap'
    await waitFor(async () => ((await stats(host)).dropped[counter] ?? 0) >= 20, { what: 'the host to see the phantoms as unattributable' })

    const started = Date.now()
    const joiner = await joinPeer('joiner', room, { signaling: [server.url], joinTimeout: 10_000, auth: auth('joiner') })
    expect(joiner.joined).toMatchObject({ sync: 'synced', json: { config: { owner: 'host' } } })
    const joinMs = Date.now() - started
    await joiner.call('set', { key: 'from-joiner', value: 1 })
    await host.call('waitForValue', { key: 'from-joiner', value: 1 })
    for (const peer of [host, joiner]) {
      const { pending, handshakes } = await stats(peer)
      expect(pending - handshakes).toBeLessThanOrEqual(6)
      expect(handshakes).toBeLessThanOrEqual(1)
    }
    console.log(`signed-phantom flood, protected room: joined in ${joinMs} ms`)
  })
})

/**
 * Phantoms that sign, in an open room: the attacker of test/attacks/phantom-flood.ts (fresh key
 * pairs, announces and garbage offers above and below the host's id, garbage answers to the
 * host's offers, 60 messages a second in all), from loopback addresses of its own (127.0.0.2 and
 * up; the honest peers are on 127.0.0.1), so the signaling server tags its publishes with other
 * sender handles than theirs. From one address the phantoms get the pending slots nobody else
 * wants, and give them up to a live peer's payload (the fair share); from six, one per slot, the
 * senders that keep asking, or whose connections never open, are demoted and give theirs up
 * (pending-slots.ts). A joiner before the flood gives the join time to compare.
 */
describe('signed phantoms in an open room', () => {
  it.each([1, 6])('cannot keep a joiner from the honest host, above and below its id, with garbage answers (from %i addresses)', { timeout: 90_000 }, async (addresses) => {
    const { startPhantomFlood } = await import('./attacks/phantom-flood.js')
    const server = await startSignaling()
    const room = uniqueRoom('open-phantoms')
    const host = await joinPeer('host', room, { signaling: [server.url] })
    await host.call('set', { key: 'config', value: { owner: 'host' } })
    const hostId = await host.call<string>('peerId')
    /** Joins a peer already running; resolves with its join and how long the join took. */
    const timedJoin = async (name: string): Promise<{ peer: PeerProcess, joined: unknown, ms: number }> => {
      const peer = await spawnPeer(name)
      const started = Date.now()
      const joined = await peer.call('join', { room, options: { signaling: [server.url], joinTimeout: 10_000 } })
      return { peer, joined, ms: Date.now() - started }
    }

    const quiet = await timedJoin('joiner-before')
    expect(quiet.joined).toMatchObject({ sync: 'synced', json: { config: { owner: 'host' } } })
    await quiet.peer.call('leave')
    await waitFor(async () => (await host.call<unknown[]>('connections')).length === 0, { what: 'the host to see the first joiner leave' })

    const floods = await Promise.all(Array.from({ length: addresses }, async (_, i) =>
      await startPhantomFlood({ url: server.url, room, pivot: hostId, localAddress: `127.0.0.${i + 2}`, rate: 30 / addresses, burst: Math.ceil(60 / addresses) })))
    const total = (what: keyof (typeof floods)[number]['counts']): number => floods.reduce((sum, flood) => sum + flood.counts[what], 0)
    const watched: PeerProcess[] = [host]
    // Unopened connections (the phantoms can hold those) apart from handshakes: a connection that
    // opened is in its handshake for a moment, and under load its slot meanwhile goes to a phantom.
    // Only a peer that completed WebRTC holds a handshake: here the host and the joiner, one each.
    let maxPending = 0
    let maxHandshakes = 0
    const sample = setInterval(() => {
      void Promise.all(watched.map(async (peer) => await stats(peer))).then((all) => {
        for (const { pending, handshakes } of all) {
          maxPending = Math.max(maxPending, pending - handshakes)
          maxHandshakes = Math.max(maxHandshakes, handshakes)
        }
      }, () => {})
    }, 200)
    onTestFinished(() => clearInterval(sample))
    const share = 'pending connections at their cap, and this sender holds its share'
    // Filling the host's slots took longer than waitFor's default 10 s once, under a full test run's load (19 s for the whole test alone).
    // Timing out, it says how far the flood got and what the host did with it (the once-seen
    // failure under load left no trace of which of the two it was).
    await waitFor(async () => total('answers') >= 1 && ((await stats(host)).dropped[share] ?? 0) >= 20, { what: 'the flood to fill the host\'s pending slots', timeout: 30_000 })
      .catch(async (err: unknown) => {
        if (err instanceof TimeoutError) err.message += ` (flood: ${JSON.stringify(floods.map((flood) => ({ ...flood.counts, closedWith: flood.closedWith })))}; host: ${JSON.stringify(await stats(host).catch(String))})`
        throw err
      })

    const attacked = await timedJoin('joiner')
    const joiner = attacked.peer
    watched.push(joiner)
    expect(attacked.joined).toMatchObject({ sync: 'synced', json: { config: { owner: 'host' } } })
    await joiner.call('set', { key: 'from-joiner', value: 1 })
    await host.call('waitForValue', { key: 'from-joiner', value: 1 })
    await host.call('set', { key: 'from-host', value: 2 })
    await joiner.call('waitForValue', { key: 'from-host', value: 2 })
    // The joiner was flooded too: its slots filled with phantoms, and the host's payloads took one.
    await waitFor(async () => ((await stats(joiner)).dropped[share] ?? 0) >= 1, { what: 'the joiner to refuse phantoms past their share' })
    expect(total('above')).toBeGreaterThan(30)
    expect(total('below')).toBeGreaterThan(30)
    for (const flood of floods) expect(flood.counts.honest).toBeGreaterThanOrEqual(2)
    for (const flood of floods) expect(flood.counts.honest).toBeLessThanOrEqual(3)
    for (const peer of [host, joiner]) {
      const { pending, handshakes } = await stats(peer)
      expect(pending - handshakes).toBeLessThanOrEqual(6)
      expect((await peer.call<unknown[]>('connections')).length).toBeGreaterThanOrEqual(1)
    }
    expect(maxPending).toBeLessThanOrEqual(6)
    expect(maxHandshakes).toBeLessThanOrEqual(1)
    const counts = Object.fromEntries((['announces', 'offers', 'answers'] as const).map((what) => [what, total(what)]))
    console.log(`signed-phantom flood, open room, ${addresses} address(es): joined in ${attacked.ms} ms (${quiet.ms} ms before the flood); flood ${JSON.stringify(counts)}; host dropped ${JSON.stringify((await stats(host)).dropped)}`)
  })
})

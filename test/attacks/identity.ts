/**
 * Attacks on identity and on an honest join, one row each: what the attacker does, what it did to
 * honest peers before this library bound identities (measured), and a check of the guarantee.
 * test/identity-attacks.test.ts runs every row over real WebRTC, each peer its own process.
 * Adding a case is adding a row.
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import type { SignalingServer } from '../../signaling/index.js'
import { createIdentity } from '../../src/trust/identity.js'
import { signSignal } from '../../src/trust/signed-signal.js'
import { HOSTILE_FIXTURE, joinPeer, spawnPeer, type PeerProcess } from '../helpers/peers.js'
import { once, waitFor } from '../helpers/wait.js'

export interface AttackContext {
  server: SignalingServer
  room: string
}

export interface Attack {
  name: string
  /** What it did to honest peers before identities were bound (measured here). */
  before: string
  run: (ctx: AttackContext) => Promise<void>
}

const HIJACKER = fileURLToPath(new URL('../fixtures/hijacker.mjs', import.meta.url))

type Joined = PeerProcess & { joined: { sync: string, json: Record<string, unknown> } }

const join = async (name: string, ctx: AttackContext, options: Record<string, unknown> = {}): Promise<Joined> =>
  await joinPeer(name, ctx.room, { signaling: [ctx.server.url], ...options }) as Joined

const hostile = async (name: string, ctx: AttackContext, options: { deaf?: boolean } = {}): Promise<PeerProcess> => {
  const peer = await spawnPeer(name, HOSTILE_FIXTURE)
  await peer.call('join', { room: ctx.room, options: { signaling: [ctx.server.url] }, deaf: options.deaf ?? false })
  return peer
}

const signalingId = async (peer: PeerProcess): Promise<string> => await peer.call<string>('peerId')
const clientId = async (peer: PeerProcess): Promise<number> => Number((await peer.call<Array<{ id: string, local: boolean }>>('peers')).find((p) => p.local)?.id)
const dropped = async (peer: PeerProcess): Promise<Record<string, number>> => (await peer.call<{ dropped: Record<string, number> }>('stats')).dropped
const metadataSeen = async (peer: PeerProcess): Promise<unknown[]> => (await peer.call<Array<{ metadata: unknown }>>('peers')).map((p) => p.metadata).sort()

/** A raw signaling client subscribed to the room, closed when the test ends. */
const rawClient = async (ctx: AttackContext): Promise<WebSocket> => {
  const ws = new WebSocket(ctx.server.url)
  onTestFinished(() => ws.terminate())
  await once(ws, 'open')
  ws.send(JSON.stringify({ type: 'subscribe', topics: [ctx.room] }))
  ws.send(JSON.stringify({ type: 'publish', topic: ctx.room, data: { type: 'hello' } }))
  await new Promise<void>((resolve) => ws.on('message', (raw) => { if ((JSON.parse(String(raw)) as { topic?: string }).topic === ctx.room) resolve() }))
  return ws
}

export const IDENTITY_ATTACKS: Attack[] = [
  {
    name: 'signaling impersonation: offers "from" the host to every joiner',
    before: '10 of 12 joins hijacked: the joiner synced with the attacker\'s fake state, or timed out, and never reached the host',
    run: async (ctx) => {
      const host = await join('host', ctx)
      await host.call('set', { key: 'config', value: { owner: 'host' } })
      const hijacker = fork(HIJACKER, [ctx.server.url, ctx.room, await signalingId(host)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      onTestFinished(() => { hijacker.kill('SIGKILL') })
      await once(hijacker, 'message')
      let offers = 0
      hijacker.on('message', (m: { event: string }) => { if (m.event === 'offered') offers++ })
      for (let i = 0; i < 4; i++) {
        const joiner = await join(`joiner-${i}`, ctx)
        expect(joiner.joined).toMatchObject({ sync: 'synced', json: { config: { owner: 'host' } } })
        await joiner.call('set', { key: `from-${i}`, value: i })
        await host.call('waitForValue', { key: `from-${i}`, value: i })
      }
      // The forgeries were sent, and refused: unsigned, or not signed by the host's key.
      expect(offers).toBeGreaterThanOrEqual(4)
      const drops = await dropped(host)
      expect(Object.keys(drops).some((reason) => /not a public key|does not verify/.test(reason)) || offers > 0).toBe(true)
    }
  },
  {
    name: 'awareness spoofing: entries for other peers\' client ids at clock 2^53',
    before: 'the host shown as "Mallory (host)" to everyone, its own setMetadata never winning again; Bob gone from every list',
    run: async (ctx) => {
      const host = await join('host', ctx, { metadata: 'Host' })
      const bob = await join('bob', ctx, { metadata: 'Bob' })
      const mallory = await hostile('mallory', ctx)
      await mallory.call('waitForPeers', { count: 2 })
      await bob.call('waitForPeers', { count: 3 })
      const [hostClient, bobClient] = [await clientId(host), await clientId(bob)]
      await mallory.call('spoofAwareness', {
        entries: [
          { client: hostClient, clock: 2 ** 53, state: { metadata: 'Mallory (host)', peerId: await signalingId(host) } },
          { client: bobClient, clock: 2 ** 53, state: null },
          { client: hostClient + 1, clock: 5, state: { metadata: 'a peer that does not exist' } }
        ]
      })
      await waitFor(async () => ((await dropped(bob))['awareness entries for another peer, or with an absurd clock'] ?? 0) >= 1, { what: 'bob to drop the spoofed entries' })
      expect(await metadataSeen(bob)).toEqual([null, 'Bob', 'Host'].sort((a, b) => String(a).localeCompare(String(b))).sort())
      expect(await metadataSeen(host)).toContain('Bob')
      await host.call('setMetadata', { metadata: 'Host, renamed' })
      await waitFor(async () => (await metadataSeen(bob)).includes('Host, renamed'), { what: 'bob to see the host\'s own rename' })
      await mallory.call('leave')
      await host.call('waitForPeers', { count: 2 })
      expect((await metadataSeen(host)).filter((m) => m !== null)).toEqual(['Bob', 'Host, renamed'])
    }
  },
  {
    name: 'Yjs client-id collision: the victim\'s id and next clock, a different value to each of two peers',
    before: 'two honest peers diverged for good with identical state vectors; a late joiner inherited one version; no error anywhere',
    run: async (ctx) => {
      const a = await join('a', ctx)
      const b = await join('b', ctx)
      const victim = await join('victim', ctx)
      await victim.call('set', { key: 'plan', value: 'Retro at 4pm' })
      const mallory = await hostile('mallory', ctx)
      await mallory.call('waitForPeers', { count: 3 })
      await a.call('waitForValue', { key: 'plan', value: 'Retro at 4pm' })
      await b.call('waitForValue', { key: 'plan', value: 'Retro at 4pm' })
      const victimClient = await clientId(victim)
      await mallory.call('forge', { victim: victimClient, key: 'plan', value: 'Retro moved to 5pm', to: await signalingId(a) })
      await mallory.call('forge', { victim: victimClient, key: 'plan', value: 'Retro cancelled', to: await signalingId(b) })
      await waitFor(async () => ((await dropped(a))['structs of another connected peer, sent by a third party'] ?? 0) >= 1 &&
        ((await dropped(b))['structs of another connected peer, sent by a third party'] ?? 0) >= 1, { what: 'both peers to strip the forgery' })
      // The victim's own next write still lands everywhere, under its id.
      await victim.call('set', { key: 'plan', value: 'Retro at 4:30pm' })
      for (const p of [a, b]) await p.call('waitForValue', { key: 'plan', value: 'Retro at 4:30pm' })
      expect(await a.call('stateVector')).toEqual(await b.call('stateVector'))
      expect(await a.call('toJSON')).toEqual(await b.call('toJSON'))
      const late = await join('late', ctx)
      expect(late.joined.json).toEqual({ plan: 'Retro at 4:30pm' })
    }
  },
  {
    name: 'fake "synced": an empty state sent the moment a connection opens',
    before: '6 of 6 joiners reported synced with 0 of 11 keys; "set defaults if missing" then overwrote the host\'s config in 3 of 6',
    run: async (ctx) => {
      const host = await join('host', ctx)
      const expected: Record<string, unknown> = {}
      for (let i = 0; i < 11; i++) {
        expected[`k${i}`] = i
        await host.call('set', { key: `k${i}`, value: i })
      }
      // A peer whose replica stays empty: it answers every joiner with an empty state.
      const empty = await hostile('empty', ctx, { deaf: true })
      await empty.call('waitForPeers', { count: 1 })
      for (let i = 0; i < 4; i++) {
        const joiner = await join(`joiner-${i}`, ctx)
        expect(joiner.joined).toEqual({ sync: 'synced', json: expected, peers: expect.any(Number) })
      }
    }
  },
  {
    name: 're-announce amplification: 8 connections announcing fresh signed ids at 90/s each',
    before: '2.5x honest re-announces; the server rate-limited the honest peers (19,755 messages dropped, 17 disconnects with 4429)',
    run: async (ctx) => {
      const a = await join('a', ctx)
      const b = await join('b', ctx)
      const identities = await Promise.all(Array.from({ length: 300 }, async () => await createIdentity()))
      const sockets = await Promise.all(Array.from({ length: 8 }, async () => await rawClient(ctx)))
      const before = ctx.server.stats().rejections
      let next = 0
      const deadline = Date.now() + 4000
      while (Date.now() < deadline) {
        // 8 sockets x 9 announces every 100 ms: 90/s each, under the server's 100/s per connection.
        await Promise.all(sockets.map(async (ws) => {
          for (let i = 0; i < 9; i++) {
            const identity = identities[next++ % identities.length]!
            ws.send(JSON.stringify({ type: 'publish', topic: ctx.room, data: await signSignal(identity, ctx.room, next, { type: 'announce', from: identity.id }) }))
          }
        }))
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await a.call('set', { key: 'during', value: 'the flood' })
      await b.call('waitForValue', { key: 'during', value: 'the flood' })
      const after = ctx.server.stats().rejections
      expect((after.rate_limited ?? 0) - (before.rate_limited ?? 0)).toBe(0)
      expect((after.rate_limit_closed ?? 0) - (before.rate_limit_closed ?? 0)).toBe(0)
      for (const p of [a, b]) expect((await p.call<{ signaling: boolean }>('status')).signaling).toBe(true)
      // The phantoms' connection attempts were capped and time out: then the room is joinable again.
      for (const p of [a, b]) expect((await p.call<{ pending: number }>('stats')).pending).toBeLessThanOrEqual(12)
      await waitFor(async () => (await a.call<{ pending: number }>('stats')).pending === 0 && (await b.call<{ pending: number }>('stats')).pending === 0, { timeout: 15_000, what: 'the phantom connections to time out' })
      const joiner = await join('joiner', ctx)
      expect(joiner.joined.sync).toBe('synced')
    }
  },
  {
    name: 'awareness query amplifier: 20 one-byte awareness queries',
    before: 'the victim sent 241 MB in 15 s, RSS 201 -> 404 MB, its event loop stalled up to 6.7 s',
    run: async (ctx) => {
      const victim = await join('victim', ctx, { metadata: 'x'.repeat(900) })
      const mallory = await hostile('mallory', ctx)
      await mallory.call('waitForPeers', { count: 1 })
      const received = async (): Promise<number> => (await mallory.call<Record<string, number>>('received'))['1'] ?? 0
      const start = await received()
      await mallory.call('queryAwareness', { to: await signalingId(victim), count: 20 })
      await waitFor(async () => ((await dropped(victim))['awareness queries over budget'] ?? 0) >= 18, { what: 'the victim to refuse the queries over budget' })
      await victim.call('set', { key: 'still', value: 'fine' })
      // At most the budget's burst of replies, each only the victim's own state.
      expect(await received() - start).toBeLessThanOrEqual(2)
    }
  },
  {
    name: 'silent subscriber: subscribes to an empty room and never answers',
    before: 'the next joiner got timeout after 10 s instead of alone in 22 ms',
    run: async (ctx) => {
      await rawClient(ctx)
      const joiner = await join('joiner', ctx, { joinTimeout: 10_000 })
      expect(joiner.joined.sync).toBe('alone')
    }
  }
]

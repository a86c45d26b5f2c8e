/**
 * Bounded history (src/epochs.ts, src/store/epochs.ts): moves between epochs over the in-memory
 * link. A move triggered by the threshold; concurrent moves converging to one epoch; writes
 * concurrent with a move carried over; a peer that slept through several moves catching up;
 * locks' fences and signed entries surviving moves; bad moves refused; older peers refused.
 */

import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { Awareness } from 'y-protocols/awareness'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { Epochs } from '../src/epochs.js'
import { joinRoom, type Session } from '../src/session.js'
import { decodeEnvelope, encodeEnvelope } from '../src/store/envelope.js'
import { applyCarries, carryId, compareEpochs, FIRST_EPOCH, historyOf, itemOf, seedId, SESSION_CLIENTS, sessionClientId, writeSeed, type EpochId } from '../src/store/epochs.js'
import { DEFAULT_LIMITS } from '../src/store/limits.js'
import { SessionStore, type LockRules } from '../src/store/store.js'
import { checkHello, HANDSHAKE_VERSION } from '../src/transport/authenticated-link.js'
import { encodeEpochData, encodeMove, readEpochData } from '../src/transport/epoch-wire.js'
import type { Link, LinkConnection } from '../src/transport/link.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { Replication } from '../src/transport/replication.js'
import { createIdentity } from '../src/trust/identity.js'
import { waitFor } from './helpers/wait.js'

const ROOT = 'session-store'
let rooms = 0

interface Peer {
  name: string
  link: ReturnType<MemoryHub['link']>
  epochs: Epochs
  store: SessionStore
  refused: string[]
  leave: () => Promise<void>
}

const peers: Peer[] = []
const sessions: Session[] = []
afterEach(async () => {
  await Promise.all(peers.splice(0).map(async (peer) => await peer.leave()))
  await Promise.all(sessions.splice(0).map(async (session) => await session.leave()))
})

/** One peer of `room`: its epochs over the hub's link, a store over them (without the handshake). */
const peer = async (hub: MemoryHub, room: string, name: string, { compactAfter = 0, locks }: { compactAfter?: number, locks?: LockRules } = {}): Promise<Peer> => {
  const link = hub.link(room, { signaling: [], peerOpts: {}, identity: createIdentity() })
  await link.ready
  const base = new Y.Doc()
  base.clientID = sessionClientId(base.clientID)
  const awareness = new Awareness(base)
  const epochs = new Epochs({
    link,
    root: ROOT,
    limits: DEFAULT_LIMITS,
    clientId: base.clientID,
    replicate: (doc, view) => new Replication(doc, awareness, view as unknown as Link, { antiEntropyInterval: 0, bridge: false }),
    protected: false,
    compactAfter
  })
  const store = new SessionStore(epochs.doc.getMap(ROOT), { inherited: (client, key, text) => epochs.inherited(client, key, text), epochs: (controls) => epochs.attach(controls), ...(locks === undefined ? {} : { locks, restoreDelay: 20 }) })
  const refused: string[] = []
  epochs.on('refused', ({ reason }) => refused.push(reason))
  const p: Peer = {
    name,
    link,
    epochs,
    store,
    refused,
    leave: async () => {
      store.close()
      epochs.destroy()
      await link.leave()
      base.destroy()
    }
  }
  peers.push(p)
  return p
}

const sameEpochs = (...ps: Peer[]): boolean => ps.every((p) => compareEpochs(p.epochs.epoch, (ps[0] as Peer).epochs.epoch) === 0)
const sameStores = (...ps: Peer[]): boolean => ps.every((p) => JSON.stringify(p.store.toJSON()) === JSON.stringify((ps[0] as Peer).store.toJSON()))
const mapOf = (p: Peer): string => JSON.stringify(Array.from(p.epochs.doc.getMap(ROOT).entries()).sort(([a], [b]) => a < b ? -1 : 1))
const settled = async (...ps: Peer[]): Promise<void> => {
  await waitFor(() => sameEpochs(...ps) && sameStores(...ps) && ps.every((p) => mapOf(p) === mapOf(ps[0] as Peer)), { what: 'one epoch and one state on every peer' })
}
const connected = async (...ps: Peer[]): Promise<void> => {
  await waitFor(() => ps.every((p) => p.link.connections.length === ps.length - 1), { what: 'every peer connected' })
}

/** Delivers every waiting message of a manual hub, in rounds, until nothing moves. */
const drain = async (hub: MemoryHub): Promise<void> => {
  for (let quiet = 0; quiet < 3;) {
    await new Promise((resolve) => setImmediate(resolve))
    if (hub.waiting.size === 0) {
      quiet++
      continue
    }
    quiet = 0
    for (const connection of Array.from(hub.waiting)) while (hub.deliver(connection));
  }
}

/** A new hub (manual: messages wait for `drain`) and a fresh room of peers `names`, all in it (a manual hub drained once). */
const roomOf = async (names: string[], { manual = false, ...options }: { manual?: boolean, compactAfter?: number } = {}): Promise<{ hub: MemoryHub, peers: Peer[] }> => {
  const hub = new MemoryHub({ manual })
  const room = `epochs-${++rooms}`
  const ps: Peer[] = []
  for (const name of names) ps.push(await peer(hub, room, name, options))
  if (manual) await drain(hub)
  return { hub, peers: ps }
}

describe('epochs', () => {
  it('an answer written in an observer of a remote write is sent before the rest of that write\'s cleanup, once', async () => {
    const [a, b] = (await roomOf(['a', 'b'])).peers as [Peer, Peer]
    await connected(a, b)
    const connection = b.link.connections[0] as LinkConnection
    const send = connection.send.bind(connection)
    let sent = 0
    // Update messages only (35, inside an epoch's data message), not the epochs' own traffic.
    connection.send = (message: Uint8Array) => {
      const decoder = decoding.createDecoder(message)
      if (decoding.readVarUint(decoder) === 44 && readEpochData(decoder)?.message[0] === 35) sent++
      return send(message)
    }
    b.store.observeChanges(['ping'], (_key, value) => { b.store.set('pong', value as number) })
    // An observer after the store's: the rest of the ping transaction's cleanup.
    const sentAtPing: number[] = []
    b.epochs.doc.getMap(ROOT).observe((event) => {
      if (event.keysChanged.has('ping')) sentAtPing.push(sent)
    })
    await a.store.set('ping', 7)
    await waitFor(() => a.store.get('pong') === 7, { what: 'the answer at a' })
    expect(sentAtPing).toEqual([1])
    await settled(a, b)
    // Sent early, so not again once Yjs cleans the answer's transaction up.
    expect(sent).toBe(1)
  })

  it('a peer moves the room when the history passes compactAfter; every peer follows, the history stays bounded', async () => {
    const [a, b, c] = (await roomOf(['a', 'b', 'c'], { compactAfter: 200 })).peers as [Peer, Peer, Peer]
    await connected(a, b, c)
    for (let round = 0; round < 30; round++) {
      for (let k = 0; k < 20; k++) await [a, b, c][k % 3]?.store.set(`k${k}`, { round, pad: 'x'.repeat(50) })
      await new Promise((resolve) => setImmediate(resolve))
    }
    await settled(a, b, c)
    expect(a.epochs.epoch.n).toBeGreaterThanOrEqual(2)
    for (const p of [a, b, c]) {
      expect(p.store.get('k7')).toEqual({ round: 29, pad: 'x'.repeat(50) })
      expect(p.store.keys()).toHaveLength(20)
      expect(historyOf(p.epochs.doc, ROOT)).toBeLessThan(1.5 * 200 + 3 * 20)
      expect(p.refused).toEqual([])
    }
  })

  it('history is what the document holds: overwrites that Yjs merges (each peer its own key) never move the room', async () => {
    const [a, b] = (await roomOf(['a', 'b'], { compactAfter: 200 })).peers as [Peer, Peer]
    await connected(a, b)
    // The latency bench's ping-pong: 300 writes, 300 clock units (1.5 x compactAfter), four structs.
    for (let i = 0; i < 150; i++) {
      await a.store.set('ping', i)
      await waitFor(() => b.store.get('ping') === i)
      await b.store.set('pong', i)
      await waitFor(() => a.store.get('pong') === i)
    }
    await settled(a, b)
    for (const p of [a, b]) {
      expect(p.epochs.epoch.n).toBe(0)
      expect(historyOf(p.epochs.doc, ROOT)).toBeLessThan(10)
    }
    // One writer, two keys in turns: its overwrites do not merge, and the room moves.
    for (let i = 0; i < 300; i++) await a.store.set(`k${i % 2}`, i)
    await settled(a, b)
    await waitFor(() => a.epochs.epoch.n >= 1 && b.epochs.epoch.n === a.epochs.epoch.n, { what: 'a move, followed' })
    expect(b.store.toJSON()).toEqual({ ping: 149, pong: 149, k0: 298, k1: 299 })
  })

  it('the previous epoch is held while a neighbour may still write to it, and dropped once every neighbour moved', async () => {
    const { hub, peers } = await roomOf(['a', 'b', 'c'], { manual: true })
    const [a, b, c] = peers as [Peer, Peer, Peer]
    await a.store.set('k', 1)
    await drain(hub)
    a.epochs.move()
    // a has moved; b and c have not heard of it yet: they may still write to epoch 0.
    expect(a.epochs.held).toHaveLength(2)
    await c.store.set('k', 2)
    await drain(hub)
    await settled(a, b, c)
    for (const p of [a, b, c]) {
      expect(p.epochs.held).toEqual([a.epochs.epoch])
      expect(p.store.get('k')).toBe(2)
    }
  })

  it('two peers that move at once from different snapshots end in one epoch, with both snapshots\' writes', async () => {
    const { hub, peers: [a, b] } = await roomOf(['a', 'b'], { manual: true }) as { hub: MemoryHub, peers: [Peer, Peer] }
    await a.store.set('from-a', 1)
    await b.store.set('from-b', 2)
    await a.store.set('shared', 'a')
    // Neither has the other's writes when it moves: two epochs 1, from different snapshots.
    a.epochs.move()
    b.epochs.move()
    expect(a.epochs.epoch.n).toBe(1)
    expect(b.epochs.epoch.n).toBe(1)
    expect(a.epochs.epoch.s).not.toBe(b.epochs.epoch.s)
    await drain(hub)
    await settled(a, b)
    const winner = compareEpochs(a.epochs.epoch, b.epochs.epoch) === 0 ? a.epochs.epoch : null
    expect(winner).not.toBeNull()
    for (const p of [a, b]) expect(p.store.toJSON()).toEqual({ 'from-a': 1, 'from-b': 2, shared: 'a' })
  })

  it('a move tells observers nothing when no value changed', async () => {
    const [a, b] = (await roomOf(['a', 'b'])).peers as [Peer, Peer]
    await connected(a, b)
    await a.store.set('slide', 3)
    await settled(a, b)
    const seen: unknown[] = []
    b.store.observeAllChanges((key, value) => seen.push([key, value]))
    expect(seen).toEqual([['slide', 3]])
    a.epochs.move()
    await settled(a, b)
    expect(b.epochs.epoch.n).toBe(1)
    expect(seen).toEqual([['slide', 3]])
  })

  it('two peers with the same snapshot make the same epoch, struct for struct', async () => {
    const { hub, peers: [a, b] } = await roomOf(['a', 'b'], { manual: true }) as { hub: MemoryHub, peers: [Peer, Peer] }
    await a.store.set('x', 1)
    await drain(hub)
    a.epochs.move()
    b.epochs.move()
    expect(a.epochs.epoch).toEqual(b.epochs.epoch)
    expect(Y.encodeStateAsUpdateV2(a.epochs.doc)).toEqual(Y.encodeStateAsUpdateV2(b.epochs.doc))
    await drain(hub)
    await settled(a, b)
    expect(a.epochs.epoch.n).toBe(1)
  })

  it('a seed written in place is the structs a standalone document of client s makes (so peers of every version agree)', () => {
    const entries: Array<readonly [string, string]> = [['a', '"1"'], ['b', 'x'.repeat(900)], ['z', '{}']]
    for (const s of [1, 2 ** 30 + 5, 2 ** 31 - 1]) {
      const epoch = { n: 3, s }
      const standalone = new Y.Doc()
      standalone.clientID = s
      const map = standalone.getMap('store')
      standalone.transact(() => { for (const [key, text] of entries) map.set(key, text) })
      const doc = new Y.Doc()
      let transactions = 0
      doc.on('afterTransaction', (transaction: Y.Transaction) => { transactions++; expect(transaction.origin).toBe('move') })
      writeSeed(doc, epoch, 'store', entries, 'move')
      expect(transactions).toBe(1)
      expect(Y.encodeStateAsUpdateV2(doc)).toEqual(Y.encodeStateAsUpdateV2(standalone))
      expect(Y.encodeStateVector(doc)).toEqual(Y.encodeStateVector(standalone))
    }
  })

  it('writes made concurrently with a move are carried over; a write made after seeing a carry is not undone', async () => {
    const { hub, peers: [a, b, c] } = await roomOf(['a', 'b', 'c'], { manual: true }) as { hub: MemoryHub, peers: [Peer, Peer, Peer] }
    await a.store.set('title', 'draft')
    await drain(hub)
    // b and c write to epoch 0 while a moves without having their writes.
    await b.store.set('title', 'final')
    await c.store.set('cursor', 3)
    a.epochs.move()
    await a.store.set('slide', 1)
    await drain(hub)
    await settled(a, b, c)
    expect(a.epochs.epoch.n).toBe(1)
    for (const p of [a, b, c]) expect(p.store.toJSON()).toEqual({ title: 'final', cursor: 3, slide: 1 })
    // The carried entry is a struct every carrier makes alike; an overwrite after it stands.
    const carried = a.epochs.doc.getMap(ROOT).get('title') as string
    const item = (a.epochs.doc.getMap(ROOT) as unknown as { _map: Map<string, { id: { client: number }, origin: { client: number, clock: number } | null }> })._map.get('title')
    expect(item?.id.client).toBe(carryId(a.epochs.epoch.s, 'title', carried, item?.origin ?? null))
    expect(item?.origin?.client).toBe(a.epochs.epoch.s) // after the seed's entry, which it is later than
    await c.store.set('title', 'final, edited')
    await drain(hub)
    await settled(a, b, c)
    for (const p of [a, b, c]) expect(p.store.get('title')).toBe('final, edited')
  })

  it('a late copy of a carried write does not undo the write made after it; a delete concurrent with a move is not undone', async () => {
    const { hub, peers: [a, b] } = await roomOf(['a', 'b'], { manual: true }) as { hub: MemoryHub, peers: [Peer, Peer] }
    await a.store.set('title', 'draft')
    await a.store.set('gone', 'soon')
    await drain(hub)
    // b writes and deletes in epoch 0 while a moves without having seen either.
    await b.store.set('title', 'final')
    await b.store.delete('gone')
    a.epochs.move()
    await drain(hub)
    await settled(a, b)
    for (const p of [a, b]) expect(p.store.toJSON()).toEqual({ title: 'final' })
    const carried = a.epochs.doc.getMap(ROOT).get('title') as string
    await a.store.set('title', 'final, edited')
    await drain(hub)
    // A copy of the carried write placed after the edit, as a peer that had not seen the edit would
    // place its carry after what it held: Yjs makes it the map's entry; the peers that saw the edit put it back.
    const map = b.epochs.doc.getMap<unknown>(ROOT)
    applyCarries(b.epochs.doc, ROOT, b.epochs.epoch, [['title', carried, itemOf(map, 'title') ?? null]], 'late')
    await drain(hub)
    await settled(a, b)
    for (const p of [a, b]) expect(p.store.get('title')).toBe('final, edited')
  })

  it('a peer that slept through several moves catches up: its offline writes carried, what others overwrote meanwhile not undone', async () => {
    const [a, b, c] = (await roomOf(['a', 'b', 'c'])).peers as [Peer, Peer, Peer]
    await connected(a, b, c)
    await a.store.set('agenda', 'v1')
    await a.store.set('timer', 0)
    await settled(a, b, c)
    for (const connection of [...c.link.connections]) connection.close()
    await waitFor(() => c.link.connections.length === 0 && a.link.connections.length === 1)
    await c.store.set('note', 'written offline')
    for (let move = 1; move <= 3; move++) {
      await a.store.set('agenda', `v${move + 1}`)
      await b.store.set('timer', move)
      await settled(a, b)
      a.epochs.move()
      await settled(a, b)
    }
    expect(a.epochs.epoch.n).toBe(3)
    expect(c.epochs.epoch.n).toBe(0)
    c.link.connect(a.link.localId as string)
    c.link.connect(b.link.localId as string)
    await settled(a, b, c)
    expect(c.epochs.epoch).toEqual(a.epochs.epoch)
    for (const p of [a, b, c]) expect(p.store.toJSON()).toEqual({ agenda: 'v4', timer: 3, note: 'written offline' })
  })

  it('a lock\'s fence survives moves: an entry under an older fencing token still does not count', async () => {
    const hub = new MemoryHub()
    const room = `epochs-${++rooms}`
    const table = new Map<string, { holder: string, fencingToken: number }>()
    const rules = (self: string): LockRules => ({ holder: (key) => table.get(key) ?? null, self: () => self, clientOf: () => undefined })
    const a = await peer(hub, room, 'a', { locks: rules('a') })
    const b = await peer(hub, room, 'b', { locks: rules('b') })
    await connected(a, b)
    table.set('votes', { holder: 'a', fencingToken: 5 })
    await a.store.set('votes', 1)
    await settled(a, b)
    table.delete('votes')
    a.epochs.move()
    await settled(a, b)
    const text = b.epochs.doc.getMap(ROOT).get('votes') as string
    expect((decodeEnvelope('votes', text, DEFAULT_LIMITS) as { lock?: number }).lock).toBe(5)
    // A stale holder's late write under token 4, straight into the new epoch: fenced off, put back.
    b.epochs.doc.getMap(ROOT).set('votes', encodeEnvelope('mallory', 1, 1, 'null', '99', { lock: 4 }))
    await waitFor(() => a.epochs.doc.getMap(ROOT).get('votes') === text && b.epochs.doc.getMap(ROOT).get('votes') === text, { what: 'the fenced entry put back' })
    for (const p of [a, b]) expect(p.store.get('votes')).toBe(1)
  })

  it('refuses moves that do not hold: a seed id that is not its content\'s, an invalid seed entry', async () => {
    const [a, b] = (await roomOf(['a', 'b'])).peers as [Peer, Peer]
    await connected(a, b)
    const connection = b.link.connections[0] as LinkConnection
    const entries = [['k', encodeEnvelope('1', 1, 1, 'null', '1')] as const]
    connection.send(encodeMove({ epoch: { n: 1, s: 12345 }, parent: FIRST_EPOCH, cover: [], entries, seeded: true }))
    await waitFor(() => a.refused.length === 1)
    expect(a.refused[0]).toMatch(/seed id does not match/)
    expect(a.epochs.epoch).toEqual(FIRST_EPOCH)
    await waitFor(() => a.link.connections.length === 0)
    a.link.connect(b.link.localId as string)
    await connected(a, b)
    const bad = [['k', 'not an envelope'] as const]
    const epoch: EpochId = { n: 1, s: seedId(1, FIRST_EPOCH, bad) }
    ;(b.link.connections[0] as LinkConnection).send(encodeMove({ epoch, parent: FIRST_EPOCH, cover: [], entries: bad, seeded: true }))
    await waitFor(() => a.refused.length === 2)
    expect(a.refused[1]).toMatch(/seed entry 'k' is invalid/)
    expect(a.epochs.epoch).toEqual(FIRST_EPOCH)
  })

  it('data for an epoch this peer does not hold counts against admission\'s message rate: a flood of it is refused', async () => {
    const [a, b] = (await roomOf(['a', 'b'])).peers as [Peer, Peer]
    await connected(a, b)
    const connection = b.link.connections[0] as LinkConnection
    const stale = encodeEpochData({ n: 7, s: 12345 }, new Uint8Array([35, 0]))
    for (let i = 0; i < 7000 && connection.writable; i++) connection.send(stale)
    await waitFor(() => a.refused.length > 0)
    expect(a.refused[0]).toMatch(/messages at a rate over 1250\/s/)
  })

  it('a peer of an earlier data plane (handshake version 3) is refused, and told why; session client ids are at or above 2^31', () => {
    expect(HANDSHAKE_VERSION).toBe(4)
    const binding = { local: 'l', remote: 'r' }
    const hello = { v: 3, room: 'r', from: 'x', to: 'y', binding: ['r', 'l'], client: SESSION_CLIENTS + 7 }
    const expected = { room: 'r', from: 'x', to: 'y', binding, ownClient: SESSION_CLIENTS + 8 }
    expect(checkHello(hello, expected)).toBe('handshake version 3 (this peer speaks 4)')
    expect(checkHello({ ...hello, v: 4, client: SESSION_CLIENTS - 1 }, expected)).toMatch(/from 2\^31 to 2\^32 - 1/)
    expect(checkHello({ ...hello, v: 4, client: 2 ** 32 }, expected)).toMatch(/from 2\^31 to 2\^32 - 1/)
    expect(checkHello({ ...hello, v: 4 }, expected)).toBeNull()
  })
})

const issuer = await generateIssuerKeys()

describe('epochs through joinRoom', () => {
  const minter = (room: string, user: string, write: string[]) => async (peerKey: Parameters<typeof createRoomToken>[0]['peerKey']): Promise<string> =>
    await createRoomToken({ privateKey: issuer.privateKey, room, user, write, peerKey, expiresIn: 3600 })

  it('a protected room: signed entries cross moves verbatim and still convince; a joiner receives the epoch', async () => {
    const hub = new MemoryHub()
    const room = `epochs-${++rooms}`
    const join = async (user: string, write: string[]): Promise<{ session: Session, store: SessionStore }> => {
      const session = joinRoom(room, { joinTimeout: 2000, compactAfter: 40, auth: { issuer: issuer.publicKey, token: minter(room, user, write) } }, { link: hub.link })
      sessions.push(session)
      return { session, store: await session.sessionStore }
    }
    const host = await join('host', ['*'])
    const guest = await join('guest', ['hand/guest'])
    await waitFor(() => host.session.permissions !== null && guest.session.permissions !== null)
    await guest.store.set('hand/guest', true)
    // Two keys in turns: one key's overwrites by one writer merge in Yjs and make no history.
    for (let i = 0; i < 60; i++) {
      await host.store.set('slide', i)
      await host.store.set('notes', i)
    }
    await waitFor(() => host.session.epoch.n >= 1 && guest.session.epoch.n === host.session.epoch.n && guest.store.get('slide') === 59, { what: 'a move, followed' })
    const sealed = host.session.doc.getMap(ROOT).get('hand/guest') as string
    expect(decodeEnvelope('hand/guest', sealed, DEFAULT_LIMITS)).toMatchObject({ seal: { signer: expect.any(String) } })
    expect(host.store.entry('hand/guest')?.updatedBy.user).toBe('guest')
    // The guest may not write 'slide': its write straight into the new epoch's document is put back.
    const best = host.session.doc.getMap(ROOT).get('slide') as string
    guest.session.doc.getMap(ROOT).set('slide', encodeEnvelope('guest', Date.now(), 1, 'null', '"hijacked"'))
    await waitFor(() => host.session.doc.getMap(ROOT).get('slide') === best && guest.session.doc.getMap(ROOT).get('slide') === best, { what: 'the best entry put back' })
    const viewer = await join('viewer', [])
    expect(viewer.session.epoch).toEqual(host.session.epoch)
    expect(viewer.store.toJSON()).toEqual({ 'hand/guest': true, slide: 59, notes: 59 })
    expect(viewer.store.entry('slide')?.updatedBy.user).toBe('host')
  })
})

describe('epoch data messages', () => {
  it('wrap a message as lib0 writes [44, n, s, ...message], and read back, for epoch ids of every size', () => {
    const message = new Uint8Array([0, 1, 2, 250])
    for (const n of [0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      for (const s of [0, 1, 300, 2 ** 31 - 1, 4_294_967_295]) {
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, 44)
        encoding.writeVarUint(encoder, n)
        encoding.writeVarUint(encoder, s)
        encoding.writeUint8Array(encoder, message)
        const wrapped = encodeEpochData({ n, s }, message)
        expect(wrapped).toEqual(encoding.toUint8Array(encoder))
        const decoder = decoding.createDecoder(wrapped)
        expect(decoding.readVarUint(decoder)).toBe(44)
        expect(readEpochData(decoder)).toEqual({ epoch: { n, s }, message })
      }
    }
  })
})

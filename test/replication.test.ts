/**
 * The data plane over the in-memory link: what goes out on a new connection, V2 sync, the flush
 * rule, the relay rule in full and partial meshes, anti-entropy, the message hooks (the one place
 * every message passes, with its connection known) and refusals.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { Awareness } from 'y-protocols/awareness'
import { MemoryHub } from '../src/transport/memory-link.js'
import { createIdentity } from '../src/trust/identity.js'
import type { Link, LinkConnection } from '../src/transport/link.js'
import { MESSAGE_AWARENESS, Replication, type MessageHook, type RemoteOrigin, type ReplicationOptions } from '../src/transport/replication.js'
import {
  MESSAGE_NEIGHBORS, MESSAGE_REPAIR_V2, MESSAGE_STATE_CHECK, MESSAGE_SYNC_STEP1_V2, MESSAGE_SYNC_STEP2_V2,
  MESSAGE_UPDATE, encodeBytesMessage, readBytes
} from '../src/transport/sync-v2.js'
import { encodeNeighbors } from '../src/transport/relay.js'
import { once, waitFor } from './helpers/wait.js'

interface Node {
  link: Link
  doc: Y.Doc
  map: Y.Map<unknown>
  replication: Replication
  awareness: Awareness
  refused: string[]
  /** Kinds of the messages this node received, in order, with the id of the sender. */
  received: Array<{ from: string, kind: string, message: Uint8Array }>
}

const node = (hub: MemoryHub, room: string, { hooks = [], maxConns, ...options }: { hooks?: MessageHook[], maxConns?: number } & ReplicationOptions = {}): Node => {
  const link = hub.link(room, { signaling: [], peerOpts: {}, identity: createIdentity(), ...(maxConns === undefined ? {} : { maxConns }) })
  const doc = new Y.Doc()
  const received: Node['received'] = []
  const recorder: MessageHook = { incoming: (c, m) => { received.push({ from: c.remoteId, kind: kind(m), message: m }); return m } }
  const awareness = new Awareness(doc)
  awareness.setLocalState({ node: link.localId }) // clock 1: y-protocols ignores a remote's clock 0
  const replication = new Replication(doc, awareness, link, { hooks: [recorder, ...hooks], ...options })
  const refused: string[] = []
  replication.on('refused', ({ reason }) => refused.push(reason))
  return { link, doc, map: doc.getMap('m'), replication, awareness, refused, received }
}

const KINDS: Record<number, string> = {
  [MESSAGE_AWARENESS]: 'awareness',
  [MESSAGE_NEIGHBORS]: 'neighbors',
  [MESSAGE_SYNC_STEP1_V2]: 'step1',
  [MESSAGE_SYNC_STEP2_V2]: 'step2',
  [MESSAGE_UPDATE]: 'update',
  [MESSAGE_STATE_CHECK]: 'check',
  [MESSAGE_REPAIR_V2]: 'repair'
}

/** The message type's name. */
const kind = (message: Uint8Array): string => {
  if (message.length === 0) return 'empty'
  const type = decoding.readVarUint(decoding.createDecoder(message))
  return KINDS[type] ?? `type ${type}`
}

const kinds = (n: Node, wanted: string): Node['received'] => n.received.filter((r) => r.kind === wanted)
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const pad = 'x'.repeat(100)

/** Nodes joined one at a time, each once connected as `topology` says (all, by default). */
const mesh = async (hub: MemoryHub, room: string, count: number, options: Parameters<typeof node>[2] = {}): Promise<Node[]> => {
  const nodes: Node[] = []
  for (let i = 0; i < count; i++) {
    const n = node(hub, room, options)
    nodes.push(n)
    // Each joins the hub before the next starts: the hub's order is the order of the array.
    if (i === 0) await n.link.ready
    else await once(n.replication, 'synced')
  }
  return nodes
}

/** Resolves once no connection has anything in flight (a few quiet turns of the event loop). */
const settle = async (hub: MemoryHub): Promise<void> => {
  let last = -1
  while (hub.wire.messages !== last) {
    last = hub.wire.messages
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0))
  }
}

describe('replication: connecting and syncing', () => {
  it('lists its neighbours on a new connection, sends V2 sync step 1 and its awareness state; answers step 1 with step 2', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    a.map.set('k', 'v')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    expect(b.map.get('k')).toBe('v')
    expect(b.received.map((r) => r.kind).slice(0, 4)).toEqual(['neighbors', 'step1', 'awareness', 'step2'])
  })

  it('gives a joiner the V2 state, not the V1 history: after 20,000 overwrites, far less than V1', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
    for (let n = 0; n < 20_000; n++) a.map.set(keys[n % keys.length] as string, `${n}:${pad}`)
    const v1 = Y.encodeStateAsUpdate(a.doc).length
    const v2 = Y.encodeStateAsUpdateV2(a.doc).length
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    const [step2] = kinds(b, 'step2')
    expect(step2?.message.length).toBeLessThanOrEqual(v2 + 8)
    expect(step2?.message.length).toBeLessThan(v1 / 5)
    expect(b.map.toJSON()).toEqual(a.map.toJSON())
    expect(Y.encodeStateVector(b.doc)).toEqual(Y.encodeStateVector(a.doc))
  })

  it('applies remote updates with an origin that names the connection', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    const origins: unknown[] = []
    b.doc.on('update', (_u: Uint8Array, origin: unknown) => origins.push(origin))
    a.map.set('x', 1)
    await waitFor(() => b.map.get('x') === 1, { what: 'the update' })
    const origin = origins.at(-1) as RemoteOrigin
    expect(origin.source).toBe('remote')
    expect(origin.sync).toBe(false)
    expect(origin.connection.remoteId).toBe(a.link.localId)
  })
})

describe('replication: the flush rule', () => {
  it('sends the first write of a turn at once and the rest of the turn as one message per connection, in order', async () => {
    const hub = new MemoryHub()
    const [a, b, c] = await mesh(hub, 'r', 3) as [Node, Node, Node]
    await settle(hub)
    const clocks: number[] = []
    for (let n = 0; n < 120; n++) {
      a.map.set(`k${n % 30}`, n)
      clocks.push(Y.getState(a.doc.store, a.doc.clientID))
    }
    await waitFor(() => b.map.get('k29') === 119 && c.map.get('k29') === 119, { what: 'the burst everywhere' })
    for (const receiver of [b, c]) {
      const batches = kinds(receiver, 'update').map((m) => readBytes(skipType(m.message)) as Uint8Array)
      // The first write alone, then the rest of the turn as one state diff: the 30 keys' last values.
      expect(batches).toHaveLength(2)
      expect(Y.parseUpdateMeta(batches[0] as Uint8Array).to.get(a.doc.clientID)).toBe(clocks[0])
      expect(Y.parseUpdateMeta(batches[1] as Uint8Array).from.get(a.doc.clientID)).toBe(clocks[0])
      expect(Y.parseUpdateMeta(batches[1] as Uint8Array).to.get(a.doc.clientID)).toBe(clocks.at(-1))
      const live = Y.decodeUpdate(batches[1] as Uint8Array).structs.filter((s) => s instanceof Y.Item && !(s.content instanceof Y.ContentDeleted))
      expect(live).toHaveLength(30)
      expect(receiver.map.toJSON()).toEqual(a.map.toJSON())
    }
  })

  it('sends a lone write inside the call that made it, and writes in separate turns separately', async () => {
    const hub = new MemoryHub()
    const sent: string[] = []
    const a = node(hub, 'r', { hooks: [{ outgoing: (_c, m) => { sent.push(kind(m)); return m } }] })
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    await settle(hub)
    sent.length = 0
    a.map.set('one', 1)
    expect(sent).toEqual(['update']) // no timer, no turn of the event loop
    await nextTurn()
    a.map.set('two', 2)
    await nextTurn()
    a.map.set('three', 3)
    a.map.set('four', 4)
    expect(sent).toEqual(['update', 'update', 'update'])
    await nextTurn()
    expect(sent).toEqual(['update', 'update', 'update', 'update'])
    await waitFor(() => b.map.get('four') === 4, { what: 'the writes at b' })
  })

  it('flushes a connection before it holds more than maxBatchUnits', async () => {
    const hub = new MemoryHub()
    const sent: number[] = []
    const a = node(hub, 'r', { maxBatchUnits: 20, hooks: [{ outgoing: (_c, m) => { if (kind(m) === 'update') sent.push(m.length); return m } }] })
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    for (let n = 0; n < 100; n++) a.map.set(`k${n}`, pad)
    expect(sent).toHaveLength(5) // the first write, then 4 of 20, already inside the burst
    await waitFor(() => b.map.get('k99') === pad, { what: 'the burst at b' })
    expect(sent).toHaveLength(6)
  })

  it('keeps a turn of 10,000 overwrites of 100 keys one update within admission\'s per-update bounds', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r', { maxBatchUnits: Infinity })
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    for (let n = 0; n < 10_000; n++) a.map.set(`k${n % 100}`, `${n}`)
    await waitFor(() => b.map.get('k99') === '9999', { what: 'the burst at b' })
    const [, batch] = kinds(b, 'update')
    const live = Y.decodeUpdate(readBytes(skipType(batch?.message as Uint8Array)) as Uint8Array).structs.filter((s) => s instanceof Y.Item && !(s.content instanceof Y.ContentDeleted))
    expect(live).toHaveLength(100)
  })

  it('frames a flush larger than 16 KiB, and it arrives whole', async () => {
    const hub = new MemoryHub({ frameBytes: 16 * 1024 })
    const a = node(hub, 'r')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    await settle(hub)
    const before = hub.wire.messages
    for (let n = 0; n < 200; n++) a.map.set(`k${n % 100}`, `${n}:${pad.repeat(3)}`)
    await waitFor(() => b.map.get('k99') === `199:${pad.repeat(3)}`, { what: 'the burst at b' })
    const [first, batch] = kinds(b, 'update')
    expect(first?.message.length).toBeLessThan(16 * 1024)
    expect(batch?.message.length).toBeGreaterThan(16 * 1024)
    expect(hub.wire.messages - before).toBe(1 + Math.ceil((batch?.message.length ?? 0) / (16 * 1024)))
    expect(b.map.toJSON()).toEqual(a.map.toJSON())
  })

  it('loses nothing when a peer leaves right after a write', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    for (let n = 0; n < 10; n++) a.map.set(`k${n}`, n)
    a.replication.destroy()
    await a.link.leave()
    await waitFor(() => b.map.get('k9') === 9, { what: 'the last writes at b' })
    expect(b.link.connections).toHaveLength(0)
  })
})

describe('replication: the relay rule', () => {
  it('costs N-1 messages per write in a full mesh of 5', async () => {
    const hub = new MemoryHub()
    const nodes = await mesh(hub, 'r', 5)
    await settle(hub)
    const before = nodes.map((n) => kinds(n, 'update').length)
    ;(nodes[2] as Node).map.set('x', 1)
    await waitFor(() => nodes.every((n) => n.map.get('x') === 1), { what: 'the write everywhere' })
    await settle(hub)
    const after = nodes.map((n) => kinds(n, 'update').length)
    expect(after.map((n, i) => n - (before[i] as number))).toEqual([1, 1, 0, 1, 1])
  })

  it('carries writes across a partial mesh (a chain: each peer relays what its other neighbour lacks)', async () => {
    const hub = new MemoryHub({ topology: (members) => members.slice(-1) })
    const nodes = await mesh(hub, 'chain', 6)
    expect(nodes.map((n) => n.link.connections.length)).toEqual([1, 2, 2, 2, 2, 1])
    nodes[0]?.map.set('from-first', true)
    nodes[5]?.map.set('from-last', true)
    await waitFor(() => nodes.every((n) => n.map.get('from-first') === true && n.map.get('from-last') === true), { what: 'both writes everywhere' })
  })

  it('carries writes across a ring of 8 with maxConns 2; awareness only between neighbours', async () => {
    const hub = new MemoryHub({ topology: (members) => members.length === 7 ? [members[6], members[0]] as typeof members : members.slice(-1) })
    const nodes = await mesh(hub, 'ring', 8, { maxConns: 2 })
    expect(nodes.map((n) => n.link.connections.length)).toEqual([2, 2, 2, 2, 2, 2, 2, 2])
    for (const [i, n] of nodes.entries()) n.map.set(`from-${i}`, i)
    await waitFor(() => nodes.every((n) => n.map.size === 8), { what: 'every write everywhere' })
    await waitFor(() => nodes.every((n) => n.awareness.getStates().size === 3), { what: 'each neighbour\'s awareness state' })
    const expected = nodes[0]?.map.toJSON()
    for (const n of nodes) expect(n.map.toJSON()).toEqual(expected)
  })

  it('sends what a sync brought to the neighbours that may lack it as a repair, not the whole update', async () => {
    // c and b are connected; a holds data, and connects to b only.
    let joined = 0
    const hub = new MemoryHub({ topology: (members) => ++joined === 3 ? members.slice(-1) : members })
    const c = node(hub, 'r')
    await c.link.ready // c joins the hub first, so that b is the last member when a joins
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    const a = node(hub, 'r')
    for (let n = 0; n < 50; n++) a.map.set(`k${n}`, n)
    await waitFor(() => c.map.get('k49') === 49, { what: 'a\'s data at c, through b' })
    expect(c.link.connections.map((x) => x.remoteId)).toEqual([b.link.localId])
    expect(kinds(c, 'repair').length).toBeGreaterThan(0)
    expect(c.map.toJSON()).toEqual(a.map.toJSON())
  })
})

describe('replication: anti-entropy', () => {
  it('repairs a live update a connection lost, and a lost delete (state vectors do not show it)', async () => {
    const hub = new MemoryHub()
    let dropping = false
    const a = node(hub, 'r', { antiEntropyInterval: 30 })
    const b = node(hub, 'r', { antiEntropyInterval: 30, hooks: [{ incoming: (_c, m) => dropping && kind(m) === 'update' ? null : m }] })
    await once(b.replication, 'synced')
    a.map.set('keep', 1)
    a.map.set('gone', 1)
    await waitFor(() => b.map.get('gone') === 1, { what: 'both keys at b' })
    dropping = true
    a.map.set('lost', 'then repaired')
    a.map.delete('gone')
    await settle(hub)
    dropping = false
    await waitFor(() => b.map.get('lost') === 'then repaired' && !b.map.has('gone'), { timeout: 5_000, what: 'b repaired' })
    expect(kinds(b, 'repair').length).toBeGreaterThan(0)
    expect(b.map.toJSON()).toEqual(a.map.toJSON())
  })

  it('repairs nothing when the peers agree, however often they check', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r', { antiEntropyInterval: 20 })
    const b = node(hub, 'r', { antiEntropyInterval: 20 })
    await once(b.replication, 'synced')
    for (let n = 0; n < 20; n++) a.map.set(`k${n}`, n)
    b.map.delete('k3')
    await waitFor(() => kinds(a, 'check').length >= 5 && kinds(b, 'check').length >= 5, { what: 'several checks each way' })
    expect(kinds(a, 'repair')).toEqual([])
    expect(kinds(b, 'repair')).toEqual([])
    expect(b.map.toJSON()).toEqual(a.map.toJSON())
  })
})

describe('replication: hooks and refusals', () => {
  it('lets a hook see, replace and drop messages per connection, both ways', async () => {
    const hub = new MemoryHub()
    const outgoing: Array<[string, string]> = []
    const a = node(hub, 'r', {
      antiEntropyInterval: 0,
      hooks: [{
        outgoing: (connection: LinkConnection, message) => {
          outgoing.push([connection.remoteId, kind(message)])
          return message
        }
      }]
    })
    // b drops every update it receives, but not the sync handshake.
    const b = node(hub, 'r', { antiEntropyInterval: 0, hooks: [{ incoming: (_c, m) => kind(m) === 'update' ? null : m }] })
    await once(b.replication, 'synced')
    a.map.set('dropped', 1)
    await waitFor(() => outgoing.some(([, k]) => k === 'update'), { what: 'the update to go out' })
    expect(outgoing.every(([to]) => to === b.link.localId)).toBe(true)
    // A later sync (a new connection) still brings it: only the live message was dropped.
    expect(b.map.get('dropped')).toBeUndefined()
    const c = node(hub, 'r')
    await once(c.replication, 'synced')
    await waitFor(() => c.map.get('dropped') === 1, { what: 'c to get the write through sync' })
  })

  it('closes a connection that sends an unknown message type or an unreadable one, and reports it', async () => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    const [bToA] = b.link.connections
    const aToB = a.link.connections[0] as LinkConnection
    const closed = once(b.link, 'close')
    aToB.send(new Uint8Array([42]))
    await closed
    expect(b.refused[0]).toMatch(/unknown message type 42/)
    expect(bToA?.writable).toBe(false)

    const d = node(hub, 'r2')
    const e = node(hub, 'r2')
    await once(e.replication, 'synced')
    const toD = e.link.connections[0] as LinkConnection
    toD.send(encodeBytesMessage(MESSAGE_UPDATE, new Uint8Array([255, 255, 255, 1, 2])))
    await waitFor(() => d.refused.length > 0, { what: 'd to refuse the unreadable update' })
    expect(d.refused[0]).toMatch(/cannot read/)
  })

  it.each([
    ['an update whose length is a lie', (): Uint8Array => new Uint8Array([MESSAGE_UPDATE, 50, 1, 0])],
    ['an update followed by more bytes', (): Uint8Array => new Uint8Array([MESSAGE_UPDATE, 2, 0, 0, 7])],
    ['a message of y-webrtc\'s sync (type 0), which this data plane does not speak', (): Uint8Array => new Uint8Array([0, 0, 1, 0])],
    ['a neighbour list with an empty origin', (): Uint8Array => new Uint8Array([MESSAGE_NEIGHBORS, 1, 0, 1, 0])],
    ['a neighbour list over the bound', (): Uint8Array => encodeNeighbors([{ origin: 'x', seq: 1, ids: Array.from({ length: 300 }, (_, i) => `peer-${i}`) }])],
    ['a V2 step 2 that is not a V2 update', (): Uint8Array => encodeBytesMessage(MESSAGE_SYNC_STEP2_V2, new Uint8Array([9, 9, 9]))],
    ['a state check cut short', (): Uint8Array => new Uint8Array([MESSAGE_STATE_CHECK, 1])]
  ])('closes a connection that sends %s', async (_what, message) => {
    const hub = new MemoryHub()
    const a = node(hub, 'r')
    const b = node(hub, 'r')
    await once(b.replication, 'synced')
    const closed = once(b.link, 'close')
    ;(a.link.connections[0] as LinkConnection).send(message())
    await closed
    expect(b.refused).toHaveLength(1)
    expect(b.refused[0]).toMatch(/cannot read/)
  })
})

const skipType = (message: Uint8Array): decoding.Decoder => {
  const decoder = decoding.createDecoder(message)
  decoding.readVarUint(decoder)
  return decoder
}

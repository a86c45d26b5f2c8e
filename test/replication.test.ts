/**
 * The data plane over the in-memory link: what goes out on a new connection, the message hooks
 * (the one place every message passes, with its connection known), refusals, and partial meshes.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { Awareness } from 'y-protocols/awareness'
import * as syncProtocol from 'y-protocols/sync'
import { MemoryHub } from '../src/transport/memory-link.js'
import { createIdentity } from '../src/trust/identity.js'
import type { Link, LinkConnection } from '../src/transport/link.js'
import { MESSAGE_AWARENESS, MESSAGE_SYNC, Replication, type MessageHook, type RemoteOrigin } from '../src/transport/replication.js'
import { once, waitFor } from './helpers/wait.js'

interface Node {
  link: Link
  doc: Y.Doc
  map: Y.Map<unknown>
  replication: Replication
  refused: string[]
}

const node = (hub: MemoryHub, room: string, { hooks = [], maxConns }: { hooks?: MessageHook[], maxConns?: number } = {}): Node => {
  const link = hub.link(room, { signaling: [], peerOpts: {}, identity: createIdentity(), ...(maxConns === undefined ? {} : { maxConns }) })
  const doc = new Y.Doc()
  const replication = new Replication(doc, new Awareness(doc), link, { hooks })
  const refused: string[] = []
  replication.on('refused', ({ reason }) => refused.push(reason))
  return { link, doc, map: doc.getMap('m'), replication, refused }
}

/** The message type and, for sync messages, the y-protocols sync message type. */
const kind = (message: Uint8Array): string => {
  const decoder = decoding.createDecoder(message)
  const type = decoding.readVarUint(decoder)
  if (type !== MESSAGE_SYNC) return type === MESSAGE_AWARENESS ? 'awareness' : `type ${type}`
  return ['step1', 'step2', 'update'][decoding.readVarUint(decoder)] ?? 'sync?'
}

describe('replication', () => {
  it('sends sync step 1 and the awareness states on a new connection, and answers step 1 with step 2', async () => {
    const hub = new MemoryHub()
    const seenByB: string[] = []
    const a = node(hub, 'r')
    a.map.set('k', 'v')
    const b = node(hub, 'r', { hooks: [{ incoming: (_c, m) => { seenByB.push(kind(m)); return m } }] })
    await once(b.replication, 'synced')
    expect(b.map.get('k')).toBe('v')
    expect(seenByB.slice(0, 3)).toEqual(['step1', 'awareness', 'step2'])
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
    expect(origin.connection.remoteId).toBe(a.link.localId)
  })

  it('lets a hook see, replace and drop messages per connection, both ways', async () => {
    const hub = new MemoryHub()
    const outgoing: Array<[string, string]> = []
    const a = node(hub, 'r', {
      hooks: [{
        outgoing: (connection: LinkConnection, message) => {
          outgoing.push([connection.remoteId, kind(message)])
          return message
        }
      }]
    })
    // b drops every update it receives, but not the sync handshake.
    const b = node(hub, 'r', { hooks: [{ incoming: (_c, m) => kind(m) === 'update' ? null : m }] })
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
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_SYNC)
    encoding.writeVarUint(encoder, syncProtocol.messageYjsUpdate)
    encoding.writeVarUint8Array(encoder, new Uint8Array([255, 255, 255, 1, 2]))
    toD.send(encoding.toUint8Array(encoder))
    await waitFor(() => d.refused.length > 0, { what: 'd to refuse the unreadable update' })
    expect(d.refused[0]).toMatch(/cannot read/)
  })

  it('carries writes across a partial mesh (each peer relays what it did not write)', async () => {
    // A chain: each newcomer connects to the one before it only.
    const hub = new MemoryHub({ topology: (members) => members.slice(-1) })
    const nodes: Node[] = []
    for (let i = 0; i < 6; i++) {
      nodes.push(node(hub, 'chain'))
      await waitFor(() => i === 0 || (nodes[i]?.link.connections.length ?? 0) === 1, { what: `node ${i} to join the chain` })
    }
    expect(nodes.map((n) => n.link.connections.length)).toEqual([1, 2, 2, 2, 2, 1])
    nodes[0]?.map.set('from-first', true)
    nodes[5]?.map.set('from-last', true)
    await waitFor(() => nodes.every((n) => n.map.get('from-first') === true && n.map.get('from-last') === true), { what: 'both writes everywhere' })
  })
})

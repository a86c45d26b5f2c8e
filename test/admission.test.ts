/**
 * Admission control as pure screening, and the hook over messages: each thing no honest peer
 * produces is refused with its reason, and what honest peers produce passes.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { DEFAULT_LIMITS } from '../src/store/limits.js'
import { admissionControl, ENTRY_SLACK, maxUpdateBytes, MESSAGE_RATE, PENDING_GRACE, screenUpdate, screenUpdateWith } from '../src/transport/admission.js'
import { SEND_RATE } from '../src/transport/coalescer.js'
import { MESSAGE_SYNC_STEP2_V2, MESSAGE_UPDATE, encodeBytesMessage } from '../src/transport/sync-v2.js'
import type { LinkConnection } from '../src/transport/link.js'

const ROOT = 'session-store'
const limits = { ...DEFAULT_LIMITS }
const context = (doc = new Y.Doc()) => ({ doc, root: ROOT, limits })
const updateOf = (fn: (doc: Y.Doc) => void, base?: Y.Doc): Uint8Array => {
  const doc = new Y.Doc()
  if (base !== undefined) Y.applyUpdate(doc, Y.encodeStateAsUpdate(base))
  const before = Y.encodeStateVector(doc)
  fn(doc)
  return Y.encodeStateAsUpdate(doc, before)
}
const connection = { remoteId: 'r', binding: { local: '', remote: '' }, writable: true, send: () => true, close: () => {} } satisfies LinkConnection

describe('screenUpdate', () => {
  it('passes what honest peers write: entries of the store, overwrites, deletes, a full state', () => {
    const honest = new Y.Doc()
    const map = honest.getMap(ROOT)
    for (let i = 0; i < 100; i++) map.set(`k${i}`, JSON.stringify({ i, text: 'x'.repeat(500) }))
    for (let i = 0; i < 1000; i++) map.set(`k${i % 100}`, JSON.stringify(i))
    map.delete('k1')
    expect(screenUpdate(Y.encodeStateAsUpdate(honest), context())).toBeNull()
    expect(screenUpdate(Y.encodeStateAsUpdateV2(honest), context(), { v2: true })).toBeNull()
  })

  it('refuses more entries, or more bytes, than the limits allow one update', () => {
    const many = updateOf((doc) => { for (let i = 0; i <= ENTRY_SLACK * limits.maxKeys; i++) doc.getMap(ROOT).set(`k${i}`, '1') })
    expect(screenUpdate(many, context())).toMatch(/more than 400 entries/)
    const large = updateOf((doc) => { for (let i = 0; i < 390; i++) doc.getMap(ROOT).set(`k${i}`, 'x'.repeat(2000)) })
    expect(screenUpdate(large, context())).toMatch(/bytes of entries/)
  })

  it('refuses structs for other root types, nested types, and undecodable bytes', () => {
    expect(screenUpdate(updateOf((doc) => doc.getMap('other').set('k', '1')), context())).toMatch(/another root type \('other'\)/)
    expect(screenUpdate(updateOf((doc) => doc.getText('t').insert(0, 'hi')), context())).toMatch(/another root type/)
    expect(screenUpdate(updateOf((doc) => doc.getMap(ROOT).set('k', new Y.Map())), context())).toMatch(/nested types/)
    expect(screenUpdate(new Uint8Array([1, 2, 3, 200, 200]), context())).toMatch(/undecodable/)
  })

  it('refuses structs that start past what this peer has of their writer', () => {
    const writer = new Y.Doc()
    writer.getMap(ROOT).set('a', '1')
    const first = Y.encodeStateAsUpdate(writer)
    const before = Y.encodeStateVector(writer)
    writer.getMap(ROOT).set('b', '2')
    const second = Y.encodeStateAsUpdate(writer, before)
    expect(screenUpdate(second, context())).toMatch(/missing dependencies/)
    const receiver = new Y.Doc()
    Y.applyUpdate(receiver, first)
    expect(screenUpdate(second, context(receiver))).toBeNull()
  })
})

describe('who speaks for whom, in the same pass', () => {
  const writes = (client: number, key: string, base?: Y.Doc): { doc: Y.Doc, update: Uint8Array } => {
    const doc = new Y.Doc()
    if (base !== undefined) Y.applyUpdate(doc, Y.encodeStateAsUpdate(base))
    doc.clientID = client
    const before = Y.encodeStateVector(doc)
    doc.getMap(ROOT).set(key, '"v"')
    return { doc, update: Y.encodeStateAsUpdate(doc, before) }
  }

  it('refuses new structs under this peer\'s own client id, strips a connected peer\'s, and keeps a relayed writer\'s', () => {
    const receiver = new Y.Doc()
    receiver.clientID = 1
    const claims = (client: number): 'own' | 'other' | null => client === 1 ? 'own' : client === 2 ? 'other' : null
    expect(screenUpdateWith(writes(1, 'forged').update, context(receiver), { claims }).problem).toMatch(/own client id/)
    // Client 2 is another connection's: left out of the bounds, even with a gap, and stripped.
    const gap = writes(2, 'b', writes(2, 'a').doc)
    expect(screenUpdateWith(gap.update, context(receiver), { claims })).toEqual({ problem: null, strip: [2] })
    // Client 3 is no connection's (a relay brings its writes): judged, and kept.
    expect(screenUpdateWith(writes(3, 'c').update, context(receiver), { claims })).toEqual({ problem: null, strip: [] })
    expect(screenUpdateWith(writes(3, 'd', writes(3, 'c').doc).update, context(receiver), { claims }).problem).toMatch(/missing dependencies/)
  })

  it('strips in the hook, which passes on what is left', () => {
    const receiver = new Y.Doc()
    const hook = admissionControl({ ...context(receiver), claims: () => (client) => client === 2 ? 'other' : null })
    const mixed = new Y.Doc()
    mixed.clientID = 2
    mixed.getMap(ROOT).set('theirs', '"2"')
    mixed.clientID = 3
    mixed.getMap(ROOT).set('relayed', '"3"')
    const out = hook.incoming(connection, encodeBytesMessage(MESSAGE_UPDATE, Y.encodeStateAsUpdate(mixed))) as Uint8Array
    const decoder = decoding.createDecoder(out)
    expect(decoding.readVarUint(decoder)).toBe(MESSAGE_UPDATE)
    Y.applyUpdate(receiver, decoding.readVarUint8Array(decoder))
    expect(receiver.getMap(ROOT).toJSON()).toEqual({ relayed: '"3"' })
  })
})

describe('the admission hook', () => {
  it('lets through what the data plane sends at its pace (coalescer.ts SEND_RATE)', () => {
    expect(SEND_RATE.rate).toBeLessThan(MESSAGE_RATE.rate)
    expect(SEND_RATE.burst).toBeLessThan(MESSAGE_RATE.burst)
  })

  it('refuses a connection over the message rate, and awareness states over the metadata limit', () => {
    let now = 0
    const hook = admissionControl({ ...context(), now: () => now })
    const ok = new Uint8Array([3])
    for (let i = 0; i < MESSAGE_RATE.burst; i++) hook.incoming(connection, ok)
    expect(() => hook.incoming(connection, ok)).toThrow(/rate over/)
    now += 1000
    expect(hook.incoming(connection, ok)).toBe(ok)
    const e = encoding.createEncoder()
    encoding.writeVarUint(e, 1)
    encoding.writeVarUint8Array(e, new Uint8Array(limits.maxValueBytes + 4096))
    expect(() => hook.incoming(connection, encoding.toUint8Array(e))).toThrow(/awareness state over/)
  })

  it('lets updates wait for their dependencies while they stay small, then refuses the connection and drops them', () => {
    const doc = new Y.Doc()
    // The clock stands still: this is about the bound, not the grace period (the next test).
    const hook = admissionControl({ ...context(doc), now: () => 0 })
    // Writes that build on another writer's, which never arrives: Yjs holds them pending.
    const other = new Y.Doc()
    other.getMap(ROOT).set('k', '"a"')
    const dependent = new Y.Doc()
    Y.applyUpdate(dependent, Y.encodeStateAsUpdate(other))
    let refused: Error | null = null
    for (let i = 0; i < 5000 && refused === null; i++) {
      const before = Y.encodeStateVector(dependent)
      dependent.getMap(ROOT).set('k', JSON.stringify({ i, pad: 'y'.repeat(limits.maxValueBytes - 40) }))
      const update = Y.encodeStateAsUpdate(dependent, before)
      Y.applyUpdate(doc, update)
      try {
        hook.afterApply(connection)
      } catch (err) {
        refused = err as Error
      }
    }
    expect(refused?.message).toMatch(new RegExp(`over ${maxUpdateBytes(limits)} bytes`))
    expect(doc.store.pendingStructs).toBeNull()
    expect(doc.store.pendingDs).toBeNull()
  })

  it('holds a joiner\'s syncs from writers who took turns until each has arrived (each peer\'s share waits for the others\')', () => {
    // Three peers overwrote the same 100 keys in turn; a joiner connected to all three gets each
    // one's state with the other two's writes stripped (they deliver their own), so the first two
    // syncs wait, mostly, for the third. Once all are in, the joiner holds the room's state.
    const writers = [1, 2, 3].map((client) => Object.assign(new Y.Doc(), { clientID: client }))
    for (let round = 0; round < 30; round++) {
      writers.forEach((writer, w) => {
        for (let k = 0; k < 100; k++) if ((k + round) % 3 === w) writer.getMap(ROOT).set(`k${k}`, JSON.stringify({ round, pad: 'v'.repeat(900) }))
        for (const other of writers) if (other !== writer) Y.applyUpdate(other, Y.encodeStateAsUpdate(writer, Y.encodeStateVector(other)))
      })
    }
    const joiner = new Y.Doc()
    const peers = writers.map((writer) => ({ remoteId: `peer-${writer.clientID}`, client: writer.clientID }) as unknown as LinkConnection & { client: number })
    const hook = admissionControl({ ...context(joiner), claims: (connection) => (client) => client === (connection as { client?: number }).client ? null : peers.some((peer) => peer.client === client) ? 'other' : null })
    let waited = 0
    writers.forEach((writer, i) => {
      const message = hook.incoming(peers[i] as LinkConnection, encodeBytesMessage(MESSAGE_SYNC_STEP2_V2, Y.encodeStateAsUpdateV2(writer))) as Uint8Array
      const decoder = decoding.createDecoder(message)
      decoding.readVarUint(decoder)
      Y.applyUpdateV2(joiner, decoding.readVarUint8Array(decoder))
      waited = Math.max(waited, joiner.store.pendingStructs?.update.length ?? 0)
      hook.afterApply(peers[i] as LinkConnection)
    })
    expect(waited).toBeGreaterThan(32 * 1024)
    expect(joiner.store.pendingStructs).toBeNull()
    expect(joiner.getMap(ROOT).toJSON()).toEqual(writers[0]?.getMap(ROOT).toJSON())
    expect(Y.encodeStateVector(joiner)).toEqual(Y.encodeStateVector(writers[0] as Y.Doc))
  })

  it('drops pending structs that wait past the grace period, and asks for the state again', () => {
    let now = 0
    let resyncs = 0
    const doc = new Y.Doc()
    const hook = admissionControl({ ...context(doc), now: () => now, onStalePending: () => { resyncs++ } })
    const other = new Y.Doc()
    other.getMap(ROOT).set('k', '"a"')
    const dependent = new Y.Doc()
    Y.applyUpdate(dependent, Y.encodeStateAsUpdate(other))
    const write = (value: string): void => {
      const before = Y.encodeStateVector(dependent)
      dependent.getMap(ROOT).set('k', value)
      Y.applyUpdate(doc, Y.encodeStateAsUpdate(dependent, before))
      hook.afterApply(connection)
    }
    write('"b"')
    expect(doc.store.pendingDs).not.toBeNull()
    now += PENDING_GRACE + 1
    write('"c"')
    expect(resyncs).toBe(1)
    expect(doc.store.pendingDs).toBeNull()
  })
})

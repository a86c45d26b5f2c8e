/**
 * The data plane's message codec (pure functions): live updates as state diffs, state checks,
 * and the digest of a document's deletions that anti-entropy compares.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as prng from 'lib0/prng'
import {
  CHECK_REPLY, MESSAGE_STATE_CHECK, MESSAGE_UPDATE, addDeletions, digestOf, encodeBytesMessage, encodeDiff, encodeDiffMessage, encodeStateCheck, lacking,
  readBytes, readStateCheck, stillLacking, type DeleteDigest
} from '../src/transport/sync-v2.js'

const body = (message: Uint8Array, type: number): decoding.Decoder => {
  const decoder = decoding.createDecoder(message)
  expect(decoding.readVarUint(decoder)).toBe(type)
  return decoder
}

/** A document whose digest follows its transactions, as the data plane keeps it. */
const tracked = (): { doc: Y.Doc, digest: DeleteDigest } => {
  const doc = new Y.Doc()
  const digest = { count: 0, sum: 0 }
  doc.on('update', (_u: Uint8Array, _o: unknown, _d: Y.Doc, tr: Y.Transaction) => addDeletions(digest, tr.deleteSet as never))
  return { doc, digest }
}

describe('live updates', () => {
  it('encodeDiff writes what Y.encodeStateAsUpdate writes for the changed clients, with the given deletions (seeded)', () => {
    const gen = prng.create(11)
    for (let round = 0; round < 20; round++) {
      const doc = new Y.Doc()
      const other = new Y.Doc()
      const map = doc.getMap('m')
      for (let i = 0; i < prng.uint32(gen, 0, 50); i++) map.set(`k${prng.uint32(gen, 0, 20)}`, `${i}`)
      Y.applyUpdate(other, Y.encodeStateAsUpdate(doc))
      const before = Y.decodeStateVector(Y.encodeStateVector(doc))
      const deleteSets: unknown[] = []
      doc.on('afterTransactionCleanup', (tr: Y.Transaction) => deleteSets.push(tr.deleteSet))
      for (let i = 0; i < prng.uint32(gen, 1, 300); i++) {
        const key = `k${prng.uint32(gen, 0, 20)}`
        if (prng.bool(gen)) map.set(key, `${round}:${i}`)
        else map.delete(key)
      }
      const from = new Map([[doc.clientID, before.get(doc.clientID) ?? 0]])
      const diff = encodeDiff(doc, from, Y.mergeDeleteSets(deleteSets as never) as never)
      Y.applyUpdate(other, diff)
      expect(other.getMap('m').toJSON()).toEqual(map.toJSON())
      expect(Y.encodeStateVector(other)).toEqual(Y.encodeStateVector(doc))
      expect(Y.parseUpdateMeta(diff).from.get(doc.clientID) ?? before.get(doc.clientID)).toBe(before.get(doc.clientID) ?? 0)
    }
  })

  it('encodeDiffMessage is encodeDiff behind its header, whatever its size, and never shares its bytes', () => {
    const doc = new Y.Doc()
    const map = doc.getMap('m')
    const messages: Array<[Uint8Array, Uint8Array]> = []
    let before = 0
    // 100 bytes to 200 KiB: within the scratch buffer, and past it.
    for (const size of [100, 16 * 1024 - 40, 40 * 1024, 200 * 1024, 100]) {
      const deleteSets: unknown[] = []
      const collect = (tr: Y.Transaction): void => { deleteSets.push(tr.deleteSet) }
      doc.on('afterTransactionCleanup', collect)
      map.set('k', 'x'.repeat(size))
      doc.off('afterTransactionCleanup', collect)
      const from = new Map([[doc.clientID, before]])
      const deleteSet = Y.mergeDeleteSets(deleteSets as never) as never
      messages.push([encodeDiffMessage(MESSAGE_UPDATE, doc, from, deleteSet), encodeBytesMessage(MESSAGE_UPDATE, encodeDiff(doc, from, deleteSet))])
      before = Y.getState(doc.store, doc.clientID)
    }
    for (const [message, expected] of messages) expect(message).toEqual(expected)
  })

  it('reads one byte string and nothing after it', () => {
    expect(readBytes(decoding.createDecoder(new Uint8Array([2, 5, 6])))).toEqual(new Uint8Array([5, 6]))
    expect(readBytes(decoding.createDecoder(new Uint8Array([2, 5, 6, 7])))).toBeNull()
    expect(readBytes(decoding.createDecoder(new Uint8Array([9, 5])))).toBeNull()
  })
})

describe('the deletion digest', () => {
  it('is the same for documents holding the same deletions, however they came by them', () => {
    const a = tracked()
    const updates: Uint8Array[] = []
    a.doc.on('update', (u: Uint8Array) => updates.push(u))
    const map = a.doc.getMap('m')
    for (let n = 0; n < 300; n++) map.set(`k${n % 7}`, n)
    map.delete('k3')
    // b gets a's transactions one by one in reverse order (Yjs holds them until they fit), c all at once.
    const b = tracked()
    for (const update of [...updates].reverse()) Y.applyUpdate(b.doc, update)
    const c = tracked()
    Y.applyUpdate(c.doc, Y.encodeStateAsUpdate(a.doc))
    expect(b.doc.getMap('m').toJSON()).toEqual(map.toJSON())
    expect(b.digest).toEqual(a.digest)
    expect(c.digest).toEqual(a.digest)
    expect(digestOf(a.doc)).toEqual(a.digest)
    expect(a.digest.count).toBeGreaterThan(290)
  })

  it('differs when one document lacks a deletion its state vector does not show', () => {
    const a = tracked()
    const b = tracked()
    a.doc.getMap('m').set('x', 1)
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc))
    expect(b.digest).toEqual(a.digest)
    a.doc.getMap('m').delete('x')
    expect(Y.encodeStateVector(a.doc)).toEqual(Y.encodeStateVector(b.doc))
    expect(b.digest).not.toEqual(a.digest)
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc)))
    expect(b.digest).toEqual(a.digest)
  })
})

describe('state checks', () => {
  it('round-trip the state vector, the digest and the flags', () => {
    const { doc, digest } = tracked()
    doc.getMap('m').set('x', 1)
    doc.getMap('m').delete('x')
    const check = readStateCheck(body(encodeStateCheck(doc, digest, CHECK_REPLY), MESSAGE_STATE_CHECK))
    expect(check?.stateVector).toEqual(Y.decodeStateVector(Y.encodeStateVector(doc)))
    expect(check?.digest).toEqual(digest)
    expect(check?.flags).toBe(CHECK_REPLY)
  })

  it('say what a peer lacks, and whether it still lacks what it lacked before', () => {
    const local = new Map([[1, 10], [2, 5], [3, 7]])
    const remote = new Map([[1, 10], [2, 3]])
    const behind = lacking(local, remote)
    expect(behind).toEqual(new Map([[2, 5], [3, 7]]))
    expect(stillLacking(behind, new Map([[2, 5], [3, 6]]))).toBe(true)
    expect(stillLacking(behind, new Map([[2, 9], [3, 7]]))).toBe(false)
  })

  it('read as null when cut short or followed by more', () => {
    const { doc, digest } = tracked()
    const message = encodeStateCheck(doc, digest, 0)
    expect(readStateCheck(body(message.subarray(0, message.length - 1), MESSAGE_STATE_CHECK))).toBeNull()
    const longer = new Uint8Array([...message, 0])
    expect(readStateCheck(body(longer, MESSAGE_STATE_CHECK))).toBeNull()
  })
})

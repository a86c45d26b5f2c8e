/**
 * The lazy struct reader against Yjs's own decoder: for random updates of every content kind,
 * V1 and V2, it sees the same structs in the same order, with the same ids, lengths and parents.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { scanUpdate, type ScannedStruct } from '../src/transport/update-scan.js'

const randomDoc = (seed: number): Y.Doc => {
  const gen = prng.create(seed)
  const doc = new Y.Doc()
  const map = doc.getMap('m')
  const text = doc.getText('t')
  const array = doc.getArray('a')
  for (let i = 0; i < 60; i++) {
    switch (prng.uint32(gen, 0, 7)) {
      case 0: map.set(`k${prng.uint32(gen, 0, 5)}`, prng.word(gen)); break
      case 1: map.set(`n${i}`, { nested: [1, 'x', null], i }); break
      case 2: text.insert(prng.uint32(gen, 0, text.length), prng.word(gen)); break
      case 3: array.push([new Uint8Array([i, 2, 3])]); break
      case 4: map.set(`y${i}`, new Y.Map()); break
      case 5: text.format(0, Math.min(2, text.length), { bold: true }); break
      case 6: map.delete(`k${prng.uint32(gen, 0, 5)}`); break
      default: array.insert(0, [new Y.XmlElement('p')])
    }
  }
  return doc
}

const expected = (update: Uint8Array, v2: boolean): Array<Partial<ScannedStruct>> =>
  (v2 ? Y.decodeUpdateV2(update) : Y.decodeUpdate(update)).structs.map((s) => ({
    kind: s instanceof Y.Item ? 'item' : s instanceof Y.GC ? 'gc' : 'skip',
    client: s.id.client,
    clock: s.id.clock,
    length: s.length,
    parentKey: s instanceof Y.Item && typeof s.parent === 'string' ? s.parent : null,
    parentSub: s instanceof Y.Item && s.origin === null && s.rightOrigin === null ? s.parentSub : null
  }))

describe('scanUpdate', () => {
  for (const v2 of [false, true]) {
    it(`reads the structs Yjs reads, in order (${v2 ? 'V2' : 'V1'}, 20 seeds)`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const doc = randomDoc(seed)
        const update = v2 ? Y.encodeStateAsUpdateV2(doc) : Y.encodeStateAsUpdate(doc)
        const seen: Array<Partial<ScannedStruct>> = []
        scanUpdate(update, (s) => { seen.push({ kind: s.kind, client: s.client, clock: s.clock, length: s.length, parentKey: s.parentKey, parentSub: s.parentSub }); return true }, { v2 })
        expect(seen, `seed ${seed}`).toEqual(expected(update, v2))
      }
    })
  }

  it('stops when the visitor says so, and throws on bytes that are not an update', () => {
    const update = Y.encodeStateAsUpdate(randomDoc(3))
    let n = 0
    scanUpdate(update, () => ++n < 3)
    expect(n).toBe(3)
    expect(() => scanUpdate(new Uint8Array([5, 200, 1]), () => true)).toThrow()
  })

  it('measures a string value by its encoded bytes without decoding it; one that is not UTF-8 is refused by Yjs before anything is integrated', () => {
    const doc = new Y.Doc()
    doc.getMap('m').set('k', 'aéb')
    for (const v2 of [false, true]) {
      const update = v2 ? Y.encodeStateAsUpdateV2(doc) : Y.encodeStateAsUpdate(doc)
      const at = update.findIndex((byte, i) => byte === 0xc3 && update[i + 1] === 0xa9)
      const bad = update.slice()
      bad[at + 1] = 0x28 // 0xc3 0x28: not UTF-8
      const sizes = (u: Uint8Array): number[] => {
        const out: number[] = []
        scanUpdate(u, (struct) => { out.push(struct.contentBytes); return true }, { v2 })
        return out
      }
      // lib0's tag, length and the four UTF-8 bytes of 'aéb'
      expect(sizes(update)).toEqual([6])
      expect(sizes(bad)).toEqual([6])
      const fresh = new Y.Doc()
      expect(() => { if (v2) Y.applyUpdateV2(fresh, bad); else Y.applyUpdate(fresh, bad) }).toThrow()
      expect(fresh.getMap('m').size).toBe(0)
      expect(fresh.store.clients.size).toBe(0)
    }
  })
})

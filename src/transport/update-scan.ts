/**
 * Reads the structs of a Yjs update one at a time, without integrating them and without holding
 * them all: what admission control needs to judge an update before Yjs applies it (how many
 * entries it adds, for which root types, how large), stopping at the first struct that settles it.
 *
 * It follows Yjs's own reader (yjs `lazyStructReaderGenerator` and `readItemContent`, which Yjs
 * does not export) over Yjs's exported UpdateDecoderV1/V2, and is tested against `Y.decodeUpdate`.
 */

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'

const BITS5 = 31
const BIT6 = 32
const BIT7 = 64
const BIT8 = 128
const SKIP = 10

/** Yjs content refs (the low five bits of a struct's info byte). */
export const ContentRef = {
  DELETED: 1,
  JSON: 2,
  BINARY: 3,
  STRING: 4,
  EMBED: 5,
  FORMAT: 6,
  TYPE: 7,
  ANY: 8,
  DOC: 9
} as const

export interface ScannedStruct {
  kind: 'item' | 'gc' | 'skip'
  client: number
  clock: number
  length: number
  /** The root type's name when the item names it; null when it follows its origin's parent. */
  parentKey: string | null
  /** The item names a parent item (a nested type). */
  nestedParent: boolean
  /** The map key, for map entries that carry it. */
  parentSub: string | null
  /** The content ref (ContentRef), for items. */
  content: number
  /** About how many bytes the content holds (UTF-8 of strings, JSON of values; encoded size of `any` values). */
  contentBytes: number
}

const utf8 = new TextEncoder()

const sizeOf = (value: unknown): number => {
  if (typeof value === 'string') return utf8.encode(value).length
  if (value instanceof Uint8Array) return value.length
  try {
    return JSON.stringify(value)?.length ?? 0
  } catch {
    return 0
  }
}

type Decoder = Y.UpdateDecoderV1 | Y.UpdateDecoderV2

/** lib0's `any` type tag of a string (lib0/encoding writeAny: 127 - 8). */
const ANY_STRING = 119

/**
 * Moves `decoder` past one lib0 `any` value. A string (every store entry is one) is skipped by its
 * length, undecoded; anything else is read by lib0 (which checks it).
 */
const skipAny = (decoder: decoding.Decoder): void => {
  if (decoder.arr[decoder.pos] === ANY_STRING) {
    decoder.pos++
    const length = decoding.readVarUint(decoder)
    if (decoder.pos + length > decoder.arr.length) throw new Error('unexpected end of an update')
    decoder.pos += length
    return
  }
  decoding.readAny(decoder)
}

/** Reads one item's content; returns its length (in Yjs clock units) and its size in bytes. */
const readContent = (decoder: Decoder, ref: number): { length: number, bytes: number } => {
  switch (ref) {
    case ContentRef.DELETED: return { length: decoder.readLen(), bytes: 0 }
    case ContentRef.JSON: {
      const len = decoder.readLen()
      let bytes = 0
      for (let i = 0; i < len; i++) bytes += decoder.readString().length
      return { length: len, bytes }
    }
    case ContentRef.BINARY: return { length: 1, bytes: decoder.readBuf().length }
    case ContentRef.STRING: {
      const s = decoder.readString()
      return { length: s.length, bytes: sizeOf(s) }
    }
    case ContentRef.EMBED: return { length: 1, bytes: sizeOf(decoder.readJSON()) }
    case ContentRef.FORMAT: {
      const key = decoder.readKey()
      return { length: 1, bytes: key.length + sizeOf(decoder.readJSON()) }
    }
    case ContentRef.TYPE: {
      const typeRef = decoder.readTypeRef()
      // YXmlElement (3) and YXmlHook (5) carry a name.
      if (typeRef === 3 || typeRef === 5) decoder.readKey()
      else if (typeRef > 6) throw new Error(`unknown type ref ${typeRef}`)
      return { length: 1, bytes: 0 }
    }
    case ContentRef.ANY: {
      // The values' encoded size, read off the decoder (both encodings keep them in restDecoder):
      // a store entry's JSON text, with a byte or two of lib0's own. Measuring each value again
      // (TextEncoder) cost an allocation per entry on every live update.
      const len = decoder.readLen()
      const rest = decoder.restDecoder
      const start = rest.pos
      for (let i = 0; i < len; i++) skipAny(rest)
      return { length: len, bytes: rest.pos - start }
    }
    case ContentRef.DOC: {
      const guid = decoder.readString()
      return { length: 1, bytes: guid.length + sizeOf(decoder.readAny()) }
    }
    default: throw new Error(`unknown content ref ${ref}`)
  }
}

/**
 * Calls `visit` with each struct of `update` (V1, or V2 with `v2`), in order; stops when it
 * returns false. Throws on an update that cannot be read. The delete set is not read.
 */
export const scanUpdate = (update: Uint8Array, visit: (struct: ScannedStruct) => boolean, { v2 = false } = {}): void => {
  const decoder: Decoder = v2 ? new Y.UpdateDecoderV2(decoding.createDecoder(update)) : new Y.UpdateDecoderV1(decoding.createDecoder(update))
  const clients = decoding.readVarUint(decoder.restDecoder)
  for (let i = 0; i < clients; i++) {
    const structs = decoding.readVarUint(decoder.restDecoder)
    const client = decoder.readClient()
    let clock = decoding.readVarUint(decoder.restDecoder)
    for (let j = 0; j < structs; j++) {
      const info = decoder.readInfo()
      let struct: ScannedStruct
      if (info === SKIP) {
        const length = decoding.readVarUint(decoder.restDecoder)
        struct = { kind: 'skip', client, clock, length, parentKey: null, nestedParent: false, parentSub: null, content: 0, contentBytes: 0 }
      } else if ((info & BITS5) !== 0) {
        const hasOrigin = (info & BIT8) === BIT8
        const hasRightOrigin = (info & BIT7) === BIT7
        if (hasOrigin) decoder.readLeftID()
        if (hasRightOrigin) decoder.readRightID()
        let parentKey: string | null = null
        let nestedParent = false
        let parentSub: string | null = null
        if (!hasOrigin && !hasRightOrigin) {
          if (decoder.readParentInfo()) parentKey = decoder.readString()
          else {
            decoder.readLeftID()
            nestedParent = true
          }
          if ((info & BIT6) === BIT6) parentSub = decoder.readString()
        }
        const ref = info & BITS5
        const { length, bytes } = readContent(decoder, ref)
        struct = { kind: 'item', client, clock, length, parentKey, nestedParent, parentSub, content: ref, contentBytes: bytes }
      } else {
        struct = { kind: 'gc', client, clock, length: decoder.readLen(), parentKey: null, nestedParent: false, parentSub: null, content: 0, contentBytes: 0 }
      }
      if (!visit(struct)) return
      clock += struct.length
    }
  }
}

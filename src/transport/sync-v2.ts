/**
 * The data plane's messages (src/PROTOCOL.md, "Messages"): pure encoders and decoders, each
 * decoder returning null for what it cannot read.
 *
 * y-webrtc syncs whole states in Yjs's V1 encoding, which carries every overwritten entry's
 * metadata at full size: after 10^6 overwrites of a 64 KB store, 9.8 MiB for a joiner. The V2
 * encoding of the same state is 65 KiB (its columns compress the runs). So states (sync step 2,
 * repairs) go in V2. Live updates stay in V1: one is a turn's writes (replication.ts), encoded
 * here from the document's structs (`encodeDiff`), and a small V1 update is cheaper to encode
 * and no larger than its V2.
 *
 * Also here: the state check of anti-entropy, and the digest of a document's deletions it
 * compares (state vectors do not move when entries are only deleted).
 */

import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as Y from 'yjs'

/**
 * Message types of the data plane beside y-webrtc's awareness ones (1, 3, 4) and the handshake
 * (16); each is a one-byte varuint. 32 is not used (a draft's hello; the handshake says it now).
 */
export const MESSAGE_SYNC_STEP1_V2 = 33
export const MESSAGE_SYNC_STEP2_V2 = 34
export const MESSAGE_UPDATE = 35
export const MESSAGE_NEIGHBORS = 36
export const MESSAGE_STATE_CHECK = 37
export const MESSAGE_REPAIR_V2 = 38
/** [39, nonce]: "answer when you have sent me everything you had before this"; [40, nonce] is the answer. */
export const MESSAGE_BARRIER = 39
export const MESSAGE_BARRIER_ACK = 40

/** Messages up to this size are cut from a shared slab (`allocate`). */
const SLAB_MESSAGE_BYTES = 4096
const SLAB_BYTES = 64 * 1024
let slab = new ArrayBuffer(SLAB_BYTES)
let slabOffset = 0

/**
 * A zeroed Uint8Array of `length` bytes for an outgoing message. A typed array over 64 bytes has
 * its own buffer outside V8's heap, about 0.6 µs to allocate (measured: 60 ns for a view), on
 * every live write: small messages are views into a shared 64 KiB slab instead, as Node's
 * Buffer pool does, and a slab is let go once its last message is. Every consumer of a message
 * reads it through its byteOffset (data channels, framing, the memory link's copy).
 */
export const allocate = (length: number): Uint8Array => {
  if (length > SLAB_MESSAGE_BYTES) return new Uint8Array(length)
  if (slabOffset + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES)
    slabOffset = 0
  }
  const out = new Uint8Array(slab, slabOffset, length)
  slabOffset += (length + 7) & ~7
  return out
}

/** A message of `type` carrying one byte string (a state vector or an update). */
export const encodeBytesMessage = (type: number, bytes: Uint8Array): Uint8Array => {
  // Written by hand into one buffer of the exact size: this runs on every live write.
  const out = allocate(varUintLength(type) + varUintLength(bytes.length) + bytes.length)
  const pos = writeVarUintAt(out, writeVarUintAt(out, 0, type), bytes.length)
  out.set(bytes, pos)
  return out
}

/** Sync step 1 in V2: this peer's state vector, answered with the V2 update it lacks. */
export const encodeSyncStep1V2 = (doc: Y.Doc): Uint8Array => encodeBytesMessage(MESSAGE_SYNC_STEP1_V2, Y.encodeStateVector(doc))

/** The answer to a step 1: what `doc` holds beyond `stateVector`, in Yjs's V2 encoding. */
export const encodeSyncStep2V2 = (doc: Y.Doc, stateVector: Uint8Array): Uint8Array =>
  encodeBytesMessage(MESSAGE_SYNC_STEP2_V2, Y.encodeStateAsUpdateV2(doc, stateVector))

/** The bytes of `n` (a non-negative safe integer) as lib0's varUint. */
export const varUintLength = (n: number): number => {
  let length = 1
  while (n > 0x7f) {
    n = Math.floor(n / 128)
    length++
  }
  return length
}

/** lib0's varUint, written at `pos`; returns the position after it. */
export const writeVarUintAt = (out: Uint8Array, pos: number, n: number): number => {
  while (n > 0x7f) {
    out[pos++] = 0x80 | (n & 0x7f)
    n = Math.floor(n / 128)
  }
  out[pos++] = n
  return pos
}

/** A Yjs delete set (Yjs does not export the type). */
export interface DeleteSet {
  clients: Map<number, Array<{ clock: number, len: number }>>
}

/** A struct of Yjs's store, as far as `encodeDiff` reads it. */
interface Struct {
  id: { clock: number }
  length: number
  write: (encoder: Y.UpdateEncoderV1, offset: number) => void
}

/**
 * A V1 update of what `doc` holds of each client of `from` from its clock there on, with the
 * deletions `deleteSet`: what Y.encodeStateAsUpdate(doc, stateVector) writes for those clients,
 * without walking the whole store for its delete set. Given the state vector before some
 * transactions and their merged delete sets, it is those transactions' update, with what they
 * overwrote already written as deleted (which a merge of their updates would still carry whole).
 * It follows Yjs's writeClientsStructs and writeDeleteSet, which Yjs does not export.
 */
export const encodeDiff = (doc: Y.Doc, from: ReadonlyMap<number, number>, deleteSet: DeleteSet): Uint8Array => {
  const encoder = new Y.UpdateEncoderV1()
  writeDiff(encoder, doc, from, deleteSet)
  return encoder.toUint8Array()
}

/**
 * The message `[type, varUint length, encodeDiff(doc, from, deleteSet)]`, with one allocation:
 * the update is written into a scratch buffer kept for the purpose, then copied once behind its
 * header (`allocate`). This runs on every live write, where encodeDiff and encodeBytesMessage
 * made four typed arrays over 64 bytes, each an allocation outside V8's heap.
 */
export const encodeDiffMessage = (type: number, doc: Y.Doc, from: ReadonlyMap<number, number>, deleteSet: DeleteSet): Uint8Array => {
  const rest = scratchEncoder.restEncoder
  rest.cbuf = scratch
  rest.cpos = 0
  rest.bufs = []
  writeDiff(scratchEncoder, doc, from, deleteSet)
  const length = encoding.length(rest)
  const out = allocate(varUintLength(type) + varUintLength(length) + length)
  let pos = writeVarUintAt(out, writeVarUintAt(out, 0, type), length)
  for (const buf of rest.bufs) {
    out.set(buf, pos)
    pos += buf.length
  }
  out.set(rest.cbuf.subarray(0, rest.cpos), pos)
  // A larger update grew the encoder past the scratch: let its buffers go.
  rest.bufs = []
  rest.cbuf = scratch
  return out
}

/** What encodeDiffMessage writes into first (lib0 grows past it by itself when an update is larger). */
const scratch = new Uint8Array(16 * 1024)
const scratchEncoder = new Y.UpdateEncoderV1()

const writeDiff = (encoder: Y.UpdateEncoderV1, doc: Y.Doc, from: ReadonlyMap<number, number>, deleteSet: DeleteSet): void => {
  const store = doc.store as unknown as { clients: Map<number, Struct[]> }
  const clients: Array<[number, number]> = []
  for (const [client, clock] of from) if (Y.getState(doc.store, client) > clock) clients.push([client, clock])
  clients.sort((a, b) => b[0] - a[0])
  encoding.writeVarUint(encoder.restEncoder, clients.length)
  for (const [client, start] of clients) {
    const structs = store.clients.get(client) as Struct[]
    const clock = Math.max(start, (structs[0] as Struct).id.clock)
    const first = Y.findIndexSS(structs as never, clock)
    encoding.writeVarUint(encoder.restEncoder, structs.length - first)
    encoder.writeClient(client)
    encoding.writeVarUint(encoder.restEncoder, clock)
    const firstStruct = structs[first] as Struct
    firstStruct.write(encoder, clock - firstStruct.id.clock)
    for (let i = first + 1; i < structs.length; i++) (structs[i] as Struct).write(encoder, 0)
  }
  const deletes = Array.from(deleteSet.clients).sort((a, b) => b[0] - a[0])
  encoding.writeVarUint(encoder.restEncoder, deletes.length)
  for (const [client, ranges] of deletes) {
    encoder.resetDsCurVal()
    encoding.writeVarUint(encoder.restEncoder, client)
    encoding.writeVarUint(encoder.restEncoder, ranges.length)
    for (const { clock, len } of ranges) {
      encoder.writeDsClock(clock)
      encoder.writeDsLen(len)
    }
  }
}

/** Reads the one byte string of a message body; null when malformed or followed by more. */
export const readBytes = (decoder: decoding.Decoder): Uint8Array | null => {
  try {
    const bytes = decoding.readVarUint8Array(decoder)
    return decoder.pos === decoder.arr.length ? bytes : null
  } catch {
    return null
  }
}

/**
 * A digest of a document's deletions, kept up to date from each transaction's delete set. Two
 * documents holding the same deletions have the same digest; the converse fails only by
 * coincidence. Each deleted clock unit (client, clock) adds `mix(client) + clock` to `sum` and
 * one to `count` (both modulo 2^32), so a range's share does not depend on how it was split.
 */
export interface DeleteDigest {
  count: number
  sum: number
}

const mix = (client: number): number => {
  let h = Math.imul((client ^ (client >>> 16)) >>> 0, 0x45d9f3b)
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b)
  return (h ^ (h >>> 16)) >>> 0
}

/** The sum over clock units clock .. clock+len-1 of (mix(client) + unit), modulo 2^32. */
const rangeSum = (client: number, clock: number, len: number): number => {
  const triangle = len % 2 === 0 ? Math.imul(len / 2, len - 1) : Math.imul(len, (len - 1) / 2)
  return (Math.imul(len, mix(client)) + Math.imul(len, clock) + triangle) >>> 0
}

/** Adds a delete set's ranges to `digest`. Only deletions new to the document may be added. */
export const addDeletions = (digest: DeleteDigest, deleteSet: DeleteSet): void => {
  deleteSet.clients.forEach((ranges, client) => {
    for (const { clock, len } of ranges) {
      digest.count = (digest.count + len) >>> 0
      digest.sum = (digest.sum + rangeSum(client, clock, len)) >>> 0
    }
  })
}

/** The digest of every deletion a document holds (walks its whole history: once, at the start). */
export const digestOf = (doc: Y.Doc): DeleteDigest => {
  const digest = { count: 0, sum: 0 }
  addDeletions(digest, Y.createDeleteSetFromStructStore(doc.store) as unknown as DeleteSet)
  return digest
}

/**
 * Anti-entropy: "this is what I hold"; the receiver sends what the sender lacks.
 * `[MESSAGE_STATE_CHECK, varUint8Array stateVector, varUint count, varUint sum, varUint flags]`.
 */
export interface StateCheck {
  stateVector: Map<number, number>
  digest: DeleteDigest
  /** CHECK_REPLY: answer with a check of your own; CHECK_URGENT: repair at once, this is an answer. */
  flags: number
}

export const CHECK_REPLY = 1
export const CHECK_URGENT = 2

export const encodeStateCheck = (doc: Y.Doc, digest: DeleteDigest, flags: number): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_STATE_CHECK)
  encoding.writeVarUint8Array(encoder, Y.encodeStateVector(doc))
  encoding.writeVarUint(encoder, digest.count)
  encoding.writeVarUint(encoder, digest.sum)
  encoding.writeVarUint(encoder, flags)
  return encoding.toUint8Array(encoder)
}

export const readStateCheck = (decoder: decoding.Decoder): (StateCheck & { encodedStateVector: Uint8Array }) | null => {
  try {
    const encodedStateVector = decoding.readVarUint8Array(decoder)
    const stateVector = Y.decodeStateVector(encodedStateVector)
    const count = decoding.readVarUint(decoder)
    const sum = decoding.readVarUint(decoder)
    const flags = decoding.readVarUint(decoder)
    if (decoder.pos !== decoder.arr.length || count > 0xffffffff || sum > 0xffffffff) return null
    return { encodedStateVector, stateVector, digest: { count, sum }, flags }
  } catch {
    return null
  }
}

/**
 * The clients for which `remote` is behind `local`, with the clock `local` had: what the remote
 * peer lacks of what this peer holds.
 */
export const lacking = (local: Map<number, number>, remote: Map<number, number>): Map<number, number> => {
  const behind = new Map<number, number>()
  local.forEach((clock, client) => {
    if ((remote.get(client) ?? 0) < clock) behind.set(client, clock)
  })
  return behind
}

/** Whether `remote` still lacks anything of `before` (what it lacked at the previous check). */
export const stillLacking = (before: Map<number, number>, remote: Map<number, number>): boolean => {
  for (const [client, clock] of before) if ((remote.get(client) ?? 0) < clock) return true
  return false
}

/**
 * The messages of epochs (src/PROTOCOL.md "Bounded history: epochs"): which epochs a peer holds
 * (42), a move's descriptor (43), and one data-plane message of one epoch's document (44). Pure
 * encoders and decoders; each decoder returns null for what it cannot read.
 */

import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { CoverEntry, EpochId, Move } from '../store/epochs.js'
import { allocate, varUintLength, writeVarUintAt } from './sync-v2.js'

export const MESSAGE_EPOCHS = 42
export const MESSAGE_MOVE = 43
export const MESSAGE_EPOCH_DATA = 44

/** The most epochs a peer says it holds: its current one and its parent. */
const MAX_HELD = 8
/** Yjs client ids and clocks, epoch numbers and seed ids: all below 2^53. */
const isUint = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

const readUint = (decoder: decoding.Decoder): number => {
  const n = decoding.readVarUint(decoder)
  if (!isUint(n)) throw new Error('not an unsigned integer')
  return n
}

const writeEpoch = (encoder: encoding.Encoder, { n, s }: EpochId): void => {
  encoding.writeVarUint(encoder, n)
  encoding.writeVarUint(encoder, s)
}

const readEpoch = (decoder: decoding.Decoder): EpochId => ({ n: readUint(decoder), s: readUint(decoder) })

/** [42, count, (n, s) x count]: the epochs the sender holds, its current one first; none: it holds nothing yet (a joiner). */
export const encodeEpochs = (held: readonly EpochId[]): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_EPOCHS)
  encoding.writeVarUint(encoder, held.length)
  for (const epoch of held) writeEpoch(encoder, epoch)
  return encoding.toUint8Array(encoder)
}

/** The body of a 42 (after its type), or null. */
export const readEpochs = (decoder: decoding.Decoder): EpochId[] | null => {
  try {
    const count = readUint(decoder)
    if (count > MAX_HELD) return null
    const held = Array.from({ length: count }, () => readEpoch(decoder))
    return decoding.hasContent(decoder) ? null : held
  } catch {
    return null
  }
}

/** [43, epoch, parent, cover, entries]: a move's descriptor. */
export const encodeMove = ({ epoch, parent, cover, entries, seeded }: Move): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_MOVE)
  writeEpoch(encoder, epoch)
  writeEpoch(encoder, parent)
  encoding.writeVarUint(encoder, seeded ? 1 : 0)
  encoding.writeVarUint(encoder, cover.length)
  for (const line of cover) {
    encoding.writeVarString(encoder, line.key)
    encoding.writeVarString(encoder, line.writer)
    encoding.writeVarUint(encoder, line.at)
  }
  encoding.writeVarUint(encoder, entries.length)
  for (const [key, text] of entries) {
    encoding.writeVarString(encoder, key)
    encoding.writeVarString(encoder, text)
  }
  return encoding.toUint8Array(encoder)
}

/**
 * The body of a 43, or null when it cannot be read or holds more than `maxCover` cover lines or
 * `maxEntries` entries (checked before they are read).
 */
export const readMove = (decoder: decoding.Decoder, { maxCover, maxEntries }: { maxCover: number, maxEntries: number }): Move | null => {
  try {
    const epoch = readEpoch(decoder)
    const parent = readEpoch(decoder)
    const seeded = readUint(decoder)
    if (seeded > 1) return null
    const coverCount = readUint(decoder)
    if (coverCount > maxCover) return null
    const cover: CoverEntry[] = []
    for (let i = 0; i < coverCount; i++) cover.push({ key: decoding.readVarString(decoder), writer: decoding.readVarString(decoder), at: readUint(decoder) })
    const count = readUint(decoder)
    if (count > maxEntries) return null
    const entries: Array<readonly [string, string]> = []
    for (let i = 0; i < count; i++) entries.push([decoding.readVarString(decoder), decoding.readVarString(decoder)])
    if (seeded === 0 && count > 0) return null
    return decoding.hasContent(decoder) ? null : { epoch, parent, cover, entries, seeded: seeded === 1 }
  } catch {
    return null
  }
}

/** [44, n, s, ...message]: one data-plane message of epoch (n, s)'s document. */
export const encodeEpochData = (epoch: EpochId, message: Uint8Array): Uint8Array => {
  // Every data-plane message is wrapped: one buffer of the exact size, not an encoder's chunks,
  // cut from the slab that the message itself came from (a buffer of its own cost 4 µs, profiled).
  const out = allocate(1 + varUintLength(epoch.n) + varUintLength(epoch.s) + message.length)
  out[0] = MESSAGE_EPOCH_DATA
  const at = writeVarUintAt(out, writeVarUintAt(out, 1, epoch.n), epoch.s)
  out.set(message, at)
  return out
}

/** The epoch and inner message of a 44, or null. */
export const readEpochData = (decoder: decoding.Decoder): { epoch: EpochId, message: Uint8Array } | null => {
  try {
    const epoch = readEpoch(decoder)
    const message = decoding.readTailAsUint8Array(decoder)
    return message.length === 0 ? null : { epoch, message }
  } catch {
    return null
  }
}

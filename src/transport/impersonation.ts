/**
 * A peer speaks only for itself: message hooks (replication.ts) that refuse what a connection
 * says on behalf of another peer. Each connection is bound to one Yjs client id by its handshake
 * (authenticated-link.ts).
 *
 * - Awareness: only the entry of the connection's own client id is kept (never one for this
 *   peer's id, nor for anyone else's), and only with a sane clock (below 2^31: a clock of 2^53
 *   would make `clock + 1` a no-op and win forever). Awareness is not relayed: each peer hears
 *   its neighbours' states from them.
 * - Document updates: structs under this peer's own client id that it did not write close the
 *   connection (Yjs would otherwise quietly change this peer's client id, and the forger's version
 *   would stand). Structs under a client id bound to another open connection are stripped from
 *   what this connection sends: that peer delivers its own writes directly, so a third party
 *   cannot make two honest peers hold different structs under the same id. In a partial mesh, a
 *   relay can still forge the writes of a peer this one is not connected to: protected rooms sign
 *   entries (see src/PROTOCOL.md).
 */

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import type { VerifiedConnection } from './authenticated-link.js'
import type { LinkConnection } from './link.js'
import { MESSAGE_AWARENESS, MESSAGE_SYNC, type MessageHook } from './replication.js'

/** Awareness clocks at or above this are refused. */
export const MAX_AWARENESS_CLOCK = 2 ** 31

export interface AwarenessEntry {
  client: number
  clock: number
  state: string
}

/** Reads a y-protocols awareness update: [count, (client, clock, JSON state)*]. Throws if malformed. */
export const readAwarenessEntries = (update: Uint8Array): AwarenessEntry[] => {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  const entries: AwarenessEntry[] = []
  for (let i = 0; i < count; i++) {
    entries.push({ client: decoding.readVarUint(decoder), clock: decoding.readVarUint(decoder), state: decoding.readVarString(decoder) })
  }
  return entries
}

export const writeAwarenessEntries = (entries: AwarenessEntry[]): Uint8Array => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, entries.length)
  for (const { client, clock, state } of entries) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, clock)
    encoding.writeVarString(encoder, state)
  }
  return encoding.toUint8Array(encoder)
}

export interface ImpersonationContext {
  doc: Y.Doc
  /** The open connection bound to Yjs client `client`, if any. */
  connectionOfClient: (client: number) => VerifiedConnection | undefined
  /** Counts what was dropped, by reason. */
  onDrop?: (reason: string) => void
}

const clientOf = (connection: LinkConnection): number | undefined => (connection as Partial<VerifiedConnection>).client

/** The awareness message with only the sender's own, sane entry; null when nothing is left. */
const filterAwareness = (connection: LinkConnection, message: Uint8Array, context: ImpersonationContext): Uint8Array | null => {
  const decoder = decoding.createDecoder(message)
  decoding.readVarUint(decoder)
  const entries = readAwarenessEntries(decoding.readVarUint8Array(decoder))
  const own = clientOf(connection)
  const kept = entries.filter((entry) => entry.client === own && entry.clock < MAX_AWARENESS_CLOCK)
  if (kept.length < entries.length) context.onDrop?.('awareness entries for another peer, or with an absurd clock')
  if (kept.length === 0) return null
  if (kept.length === entries.length) return message
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
  encoding.writeVarUint8Array(encoder, writeAwarenessEntries(kept))
  return encoding.toUint8Array(encoder)
}

/** The sync message without structs under client ids bound to other connections; throws on forged own structs. */
const filterUpdate = (connection: LinkConnection, message: Uint8Array, context: ImpersonationContext): Uint8Array | null => {
  const decoder = decoding.createDecoder(message)
  decoding.readVarUint(decoder)
  const syncType = decoding.readVarUint(decoder)
  if (syncType !== syncProtocol.messageYjsSyncStep2 && syncType !== syncProtocol.messageYjsUpdate) return message
  const update = decoding.readVarUint8Array(decoder)
  let to: Map<number, number>
  try {
    to = Y.parseUpdateMeta(update).to
  } catch (err) {
    throw new Error(`undecodable Yjs binary (${(err as Error).message})`)
  }
  const doc = context.doc
  const ownClock = Y.getState(doc.store, doc.clientID)
  if ((to.get(doc.clientID) ?? 0) > ownClock) throw new Error('structs under this peer\'s own client id that it did not write')
  const sender = clientOf(connection)
  const others = new Map<number, number>()
  for (const [client, clock] of to) {
    if (client === sender || client === doc.clientID) continue
    const owner = context.connectionOfClient(client)
    if (owner !== undefined && owner !== connection && clock > Y.getState(doc.store, client)) others.set(client, MAX_CLOCK)
  }
  if (others.size === 0) return message
  context.onDrop?.('structs of another connected peer, sent by a third party')
  const stripped = Y.diffUpdate(update, Y.encodeStateVector(others))
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_SYNC)
  encoding.writeVarUint(encoder, syncType)
  encoding.writeVarUint8Array(encoder, stripped)
  return encoding.toUint8Array(encoder)
}

/** Above every clock a peer can reach: stripping a client below it removes all its structs. */
const MAX_CLOCK = 2 ** 53 - 1

/** The hook that holds every connection to speaking for itself. */
export const impersonationRules = (context: ImpersonationContext): MessageHook => ({
  incoming: (connection, message) => {
    switch (message[0]) {
      case MESSAGE_AWARENESS: return filterAwareness(connection, message, context)
      case MESSAGE_SYNC: return filterUpdate(connection, message, context)
      default: return message
    }
  }
})

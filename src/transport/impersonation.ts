/**
 * A peer speaks only for itself: message hooks (replication.ts) that refuse what a connection
 * says on behalf of another peer. Each connection is bound to one Yjs client id by its handshake
 * (authenticated-link.ts).
 *
 * - Awareness: only the entry of the connection's own client id is kept (never one for this
 *   peer's id, nor for anyone else's), and only with a sane clock (below 2^31: a clock of 2^53
 *   would make `clock + 1` a no-op and win forever). Awareness is not relayed: each peer hears
 *   its neighbours' states from them.
 * - Document updates (`updateClaims`, applied by admission.ts in its one pass over an update):
 *   structs under this peer's own client id that it did not write close the connection (Yjs
 *   would otherwise quietly change this peer's client id, and the forger's version would stand).
 *   Structs under a client id bound to another open connection are stripped from what this
 *   connection sends: that peer delivers its own writes directly (sync when the connection opens,
 *   live updates after), so a third party cannot make two honest peers hold different structs
 *   under the same id. The relay rule (relay.ts) sends a peer only writes of peers it is not
 *   connected to, which are accepted from the relay. In a partial mesh, a relay can still forge
 *   the writes of a peer this one is not connected to: protected rooms sign entries (see
 *   src/PROTOCOL.md).
 */

import type * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import type { VerifiedConnection } from './authenticated-link.js'
import type { LinkConnection } from './link.js'
import { MESSAGE_AWARENESS, type MessageHook } from './replication.js'

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

/**
 * Who may speak for a Yjs client, on one connection: 'own' for this peer's own client (none of
 * its structs may be new: this peer did not write them), 'other' for a client bound to another
 * open connection (its new structs are stripped: that peer delivers its own writes), null for
 * anyone else (the sender itself, or peers this one is not connected to, whose writes a relay
 * brings). Admission control applies it in the same pass over an update's structs as its bounds.
 */
export type ClientClaims = (client: number) => 'own' | 'other' | null

/** The claims rule for what `connection` sends. */
export const updateClaims = (connection: LinkConnection, context: ImpersonationContext): ClientClaims => {
  const sender = clientOf(connection)
  return (client) => {
    if (client === context.doc.clientID) return 'own'
    if (client === sender) return null
    const owner = context.connectionOfClient(client)
    return owner !== undefined && owner !== connection ? 'other' : null
  }
}

/** The hook that holds every connection to speaking for itself in awareness; updates: `updateClaims`. */
export const impersonationRules = (context: ImpersonationContext): MessageHook => ({
  incoming: (connection, message) => {
    switch (message[0]) {
      case MESSAGE_AWARENESS: return filterAwareness(connection, message, context)
      default: return message
    }
  }
})

/**
 * The relay rule: whom a peer forwards what a neighbour sent it, so that a write reaches every
 * peer of a partial mesh without costing N(N-1) messages in a full one.
 *
 * y-webrtc re-sends every update it receives to every other connection: in a full mesh of N
 * peers a write costs N(N-1) messages, all but N-1 of them redundant. Here each peer tells its
 * neighbours which peers it is directly connected to (its neighbour list, sent on every new
 * connection and whenever its connections change), and forwards what it received from Q only
 * to neighbours that are not Q's neighbours too.
 *
 * Why that reaches everyone: call a delivery complete when every neighbour of the sender gets
 * the message. The writer sends to all its neighbours. A peer P that received from Q, whose
 * delivery is complete, forwards to its neighbours outside N(Q) ∪ {Q}; those inside got it from
 * Q's complete delivery (directly, or by the same argument one step up), so P's delivery is
 * complete too, and by induction the message crosses every connected mesh. What it needs: P's
 * idea of N(Q) is never larger than the truth. So it is read only from the list Q itself sent on
 * its connection, which comes before anything Q sent after the change; it can lag only for
 * messages already in flight when a connection closed, and those are what anti-entropy
 * (replication.ts) repairs. A neighbour that sent no list yet counts as connected to nobody.
 *
 * The lists also travel further, by the same rule (each with its origin and a sequence number
 * that grows with every change), so that each peer knows the mesh it is part of: `Topology`
 * keeps them, and its `component` (the peers reachable from this one) is what the bridge
 * (bridge.ts) compares with the room's size. A list relayed by a third party is taken only for
 * a peer this one is not connected to: its neighbours speak for themselves.
 */

import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { MESSAGE_NEIGHBORS } from './sync-v2.js'

/** The most peer ids a neighbour list may carry: at least y-webrtc's largest maxConns (34). */
export const MAX_NEIGHBORS = 256
/** The most lists one message, and one peer's topology, may hold. */
export const MAX_LISTS = 256
/** The longest peer id accepted in a list, in UTF-16 code units (a P-256 id is about 90). */
export const MAX_PEER_ID_LENGTH = 128

/** One peer's neighbours, as it said: `seq` grows with each list it sends. */
export interface NeighborList {
  origin: string
  seq: number
  ids: readonly string[]
}

/** The peers this peer can reach, itself included. */
export interface Component {
  /** Their signaling ids. */
  ids: ReadonlySet<string>
  /** How many they are. */
  size: number
}

/** `[MESSAGE_NEIGHBORS, varUint count, (varString origin, varUint seq, varUint n, varString id x n) x count]` */
export const encodeNeighbors = (lists: Iterable<NeighborList>): Uint8Array => {
  const all = Array.from(lists)
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MESSAGE_NEIGHBORS)
  encoding.writeVarUint(encoder, all.length)
  for (const { origin, seq, ids } of all) {
    encoding.writeVarString(encoder, origin)
    encoding.writeVarUint(encoder, seq)
    encoding.writeVarUint(encoder, ids.length)
    for (const id of ids) encoding.writeVarString(encoder, id)
  }
  return encoding.toUint8Array(encoder)
}

const validId = (id: string): boolean => id.length > 0 && id.length <= MAX_PEER_ID_LENGTH

/** Reads a neighbour-lists body; null when malformed or beyond the bounds above. */
export const readNeighbors = (decoder: decoding.Decoder): NeighborList[] | null => {
  try {
    const count = decoding.readVarUint(decoder)
    if (count > MAX_LISTS) return null
    const lists: NeighborList[] = []
    for (let i = 0; i < count; i++) {
      const origin = decoding.readVarString(decoder)
      const seq = decoding.readVarUint(decoder)
      const n = decoding.readVarUint(decoder)
      if (!validId(origin) || n > MAX_NEIGHBORS || !Number.isSafeInteger(seq)) return null
      const ids = new Set<string>()
      for (let j = 0; j < n; j++) {
        const id = decoding.readVarString(decoder)
        if (!validId(id)) return null
        ids.add(id)
      }
      lists.push({ origin, seq, ids: Array.from(ids) })
    }
    return decoder.pos === decoder.arr.length ? lists : null
  } catch {
    return null
  }
}

/**
 * Whether what arrived from `from` (whose neighbour list is `fromNeighbors`, or null when it sent
 * none) is to be forwarded to the neighbour `to`.
 */
export const shouldForward = (from: string, fromNeighbors: ReadonlySet<string> | null, to: string): boolean =>
  to !== from && fromNeighbors?.has(to) !== true

/** The neighbour lists this peer knows: its own, and the others' (bounded, oldest forgotten). */
export class Topology {
  readonly #lists = new Map<string, NeighborList>()
  #seq = 0

  /** A new list of this peer's own, or null while its id is not known. */
  own (localId: string | undefined, ids: readonly string[]): NeighborList | null {
    if (localId === undefined) return null
    const list = { origin: localId, seq: ++this.#seq, ids: Array.from(ids) }
    this.#store(list)
    return list
  }

  /** Takes another peer's list if it is newer than the one known; returns whether it did (then it is passed on). */
  learn (list: NeighborList): boolean {
    const known = this.#lists.get(list.origin)
    if (known !== undefined && known.seq >= list.seq) return false
    this.#store(list)
    return true
  }

  lists (): NeighborList[] {
    return Array.from(this.#lists.values())
  }

  /** The peers reachable from `localId` over the lists' edges (its own from `neighbors`). */
  component (localId: string | undefined, neighbors: readonly string[]): Component {
    const ids = new Set<string>(neighbors)
    if (localId !== undefined) ids.add(localId)
    const queue = [...neighbors]
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      for (const next of this.#lists.get(id)?.ids ?? []) {
        if (ids.has(next)) continue
        ids.add(next)
        queue.push(next)
      }
    }
    return { ids, size: ids.size }
  }

  #store (list: NeighborList): void {
    this.#lists.delete(list.origin)
    if (this.#lists.size >= MAX_LISTS) this.#lists.delete(this.#lists.keys().next().value as string)
    this.#lists.set(list.origin, list)
  }
}

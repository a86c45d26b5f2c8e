/**
 * Epochs of a room's document, as data (src/PROTOCOL.md "Bounded history: epochs"): their ids and
 * order, the seed a move starts from, the carries that bring writes the seed missed into the new
 * epoch, and the cover that says which writes are already in it. Pure functions over entries and
 * Yjs documents; who moves when is epochs.ts.
 *
 * Every struct a move makes is made alike by every peer: the seed by a client id derived from its
 * content, each carry by a client id derived from the epoch, the key and the text, with the seed's
 * item of the key as its origin. So peers that make the same seed or the same carry make the same
 * structs, which Yjs merges as one.
 */

import * as Y from 'yjs'
import { digest } from 'lib0/hash/sha256'

/** An epoch: its number (0: the room's first document) and seed id (0 for epoch 0). */
export interface EpochId {
  readonly n: number
  readonly s: number
}

/** The state vector of `doc`: clock per client. */
export const stateOf = (doc: Y.Doc): Map<number, number> => Y.decodeStateVector(Y.encodeStateVector(doc))

export const FIRST_EPOCH: EpochId = Object.freeze({ n: 0, s: 0 })

/** The snapshot a move starts from: (key, entry text), keys in ascending UTF-16 order. */
export type SeedEntries = ReadonlyArray<readonly [string, string]>

/** One line of a cover: writes of `client` up to `clock` (exclusive) in epoch `epoch` are in. */
export interface CoverEntry {
  readonly client: number
  readonly epoch: EpochId
  readonly clock: number
}

/** What a move says: the new epoch, its parent, its cover and its seed. */
export interface Move {
  readonly epoch: EpochId
  readonly parent: EpochId
  readonly cover: readonly CoverEntry[]
  readonly entries: SeedEntries
}

/** The most lines of a cover; the oldest epochs' go first. */
export const MAX_COVER = 1024
/**
 * Session client ids are below this; seed and carry client ids at or above it, so that a cover
 * (which lists writers) can leave them out. The handshake refuses a session id above it.
 */
export const DERIVED_CLIENTS = 2 ** 31

/** Negative when `a` is before `b` in the order every peer applies (number, then seed id). */
export const compareEpochs = (a: EpochId, b: EpochId): number => a.n !== b.n ? a.n - b.n : a.s - b.s

export const sameEpoch = (a: EpochId, b: EpochId): boolean => a.n === b.n && a.s === b.s

export const epochName = ({ n, s }: EpochId): string => `${n}.${s.toString(16)}`

const encoder = new TextEncoder()

/** A derived client id: the first 31 bits of SHA-256 over the parts, in [DERIVED_CLIENTS, 2^32). */
const derive = (parts: unknown[]): number => {
  const hash = digest(encoder.encode(JSON.stringify(parts)))
  const n = (((hash[0] as number) << 24) | ((hash[1] as number) << 16) | ((hash[2] as number) << 8) | (hash[3] as number)) >>> 0
  return (n | DERIVED_CLIENTS) >>> 0
}

/** The seed id of epoch `n` with parent `parent` and seed `entries`: its seed's Yjs client id. */
export const seedId = (n: number, parent: EpochId, entries: SeedEntries): number =>
  derive(['y-session-store/seed/1', n, parent.n, parent.s, entries])

/** The client id of the carry of `text` under `key` into the epoch of seed `s`. */
export const carryId = (s: number, key: string, text: string): number =>
  derive(['y-session-store/carry/1', s, key, text])

/** Whether the keys of `entries` are strictly ascending (each key once). */
export const ascending = (entries: SeedEntries): boolean => {
  for (let i = 1; i < entries.length; i++) if (!((entries[i - 1] as readonly [string, string])[0] < (entries[i] as readonly [string, string])[0])) return false
  return true
}

/** The seed's structs as a V2 update: client `epoch.s` writes the entries in key order, in one transaction. */
export const seedUpdate = (epoch: EpochId, root: string, entries: SeedEntries): Uint8Array => {
  const doc = new Y.Doc({ gc: true })
  doc.clientID = epoch.s
  const map = doc.getMap(root)
  doc.transact(() => {
    for (const [key, text] of entries) map.set(key, text)
  })
  const update = Y.encodeStateAsUpdateV2(doc)
  doc.destroy()
  return update
}

/** The Yjs client that wrote the map's current item under `key`, and its clock. */
export const itemOf = (map: Y.Map<unknown>, key: string): { client: number, clock: number } | undefined =>
  (map as unknown as { _map: Map<string, { id: { client: number, clock: number }, deleted: boolean }> })._map.get(key)?.id

/** Whether the item of `client` under `key` holding `text`, in the epoch of seed `s`, is the seed's or a carry. */
export const inherited = (s: number, client: number, key: string, text: unknown): boolean =>
  client >= DERIVED_CLIENTS && (client === s || (typeof text === 'string' && client === carryId(s, key, text)))

/**
 * Whether `epoch`'s cover holds the write `(client, clock)` of a document of epoch `of`: its
 * writer's writes were snapshotted in a later epoch than `of` (it had left `of`, carrying what it
 * held), or in `of` itself up to a clock past this one.
 */
export const covered = (cover: ReadonlyMap<number, CoverEntry>, of: EpochId, client: number, clock: number): boolean => {
  const line = cover.get(client)
  if (line === undefined) return false
  const order = compareEpochs(line.epoch, of)
  return order > 0 || (order === 0 && clock < line.clock)
}

export const coverMap = (cover: readonly CoverEntry[]): Map<number, CoverEntry> => new Map(cover.map((line) => [line.client, line]))

/**
 * The cover of a move made by a peer holding `held` (its documents, oldest first) with previous
 * cover `previous`: each session client of each held document, at its state there; at most
 * MAX_COVER lines, the oldest epochs' dropped first.
 */
export const nextCover = (previous: readonly CoverEntry[], held: ReadonlyArray<{ epoch: EpochId, doc: Y.Doc }>): CoverEntry[] => {
  const lines = coverMap(previous)
  for (const { epoch, doc } of held) {
    for (const [client, clock] of stateOf(doc)) {
      if (client >= DERIVED_CLIENTS) continue
      const known = lines.get(client)
      if (known === undefined || compareEpochs(known.epoch, epoch) < 0 || (sameEpoch(known.epoch, epoch) && known.clock < clock)) {
        lines.set(client, { client, epoch, clock })
      }
    }
  }
  const all = Array.from(lines.values()).sort((a, b) => compareEpochs(b.epoch, a.epoch) || a.client - b.client)
  return all.slice(0, MAX_COVER)
}

/**
 * What of document `doc` (epoch `of`) is to be carried into epoch `into`: the current item of each
 * key when it is an original write (not `of`'s seed or a carry), `into`'s cover does not hold it,
 * and `target` does not hold its text under the key already.
 */
export const toCarry = (doc: Y.Doc, root: string, of: EpochId, cover: ReadonlyMap<number, CoverEntry>, target: Y.Map<unknown>, keys?: Iterable<string>): Array<[string, string]> => {
  const map = doc.getMap<unknown>(root)
  const out: Array<[string, string]> = []
  for (const key of keys ?? map.keys()) {
    const text = map.get(key)
    const id = itemOf(map, key)
    if (typeof text !== 'string' || id === undefined) continue
    if (inherited(of.s, id.client, key, text) || covered(cover, of, id.client, id.clock)) continue
    if (target.get(key) === text) continue
    out.push([key, text])
  }
  return out
}

/**
 * Carries `carries` into `doc`, the document of epoch `epoch` seeded with `seed` (its V2 update):
 * each as its own client `carryId`, at clock 0, after the seed's item of its key. A carry `doc`
 * already holds is not made again. Applied with `origin`.
 */
export const applyCarries = (doc: Y.Doc, root: string, epoch: EpochId, seed: Uint8Array, carries: ReadonlyArray<readonly [string, string]>, origin: unknown): void => {
  const fresh = carries.filter(([key, text]) => Y.getState(doc.store, carryId(epoch.s, key, text)) === 0)
  if (fresh.length === 0) return
  const scratch = new Y.Doc({ gc: true })
  Y.applyUpdateV2(scratch, seed)
  const before = Y.encodeStateVector(scratch)
  const map = scratch.getMap(root)
  for (const [key, text] of fresh) {
    scratch.clientID = carryId(epoch.s, key, text)
    scratch.transact(() => map.set(key, text))
  }
  const update = Y.encodeStateAsUpdateV2(scratch, before)
  scratch.destroy()
  Y.applyUpdateV2(doc, update, origin)
}

/** The history of a document beyond its live entries: its clock units, less its map's keys. */
export const historyOf = (doc: Y.Doc, root: string): number => {
  let units = 0
  for (const clock of stateOf(doc).values()) units += clock
  return units - doc.getMap(root).size
}

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

/**
 * One line of a cover: the writes of `writer` (an envelope's `by`) to `key` up to its clock `at`
 * were seen by the mover, so they are in the epoch (as they are, or as what overwrote them).
 */
export interface CoverEntry {
  readonly key: string
  readonly writer: string
  readonly at: number
}

/** A cover as a lookup: `key + "\n" + writer` to the highest `at` covered. */
export type Cover = Map<string, number>

/**
 * What a move says: the new epoch, its parent, its cover and its seed. A move without its seed
 * (`seeded` false, no entries) is for a peer that holds nothing: it gets the seed's structs with
 * the epoch's document, by sync.
 */
export interface Move {
  readonly epoch: EpochId
  readonly parent: EpochId
  readonly cover: readonly CoverEntry[]
  readonly entries: SeedEntries
  readonly seeded: boolean
}

/** The most lines of a cover; the oldest (by `at`) go first. */
export const MAX_COVER = 4096
/**
 * Session client ids are at or above this (and below 2^32); seed and carry client ids below it, so
 * that a cover (which lists writers) can leave them out, and so that a carry placed beside a
 * concurrent original write loses to it (Yjs puts the higher client id of siblings last, and the
 * last is a map's value): an original write of the epoch stands. The handshake refuses a session
 * id below it.
 */
export const SESSION_CLIENTS = 2 ** 31

/** A Yjs client id for a session, from a random one: in [SESSION_CLIENTS, 2^32). */
export const sessionClientId = (random: number): number => SESSION_CLIENTS + (random % SESSION_CLIENTS)

/** Negative when `a` is before `b` in the order every peer applies (number, then seed id). */
export const compareEpochs = (a: EpochId, b: EpochId): number => a.n !== b.n ? a.n - b.n : a.s - b.s

export const sameEpoch = (a: EpochId, b: EpochId): boolean => a.n === b.n && a.s === b.s

export const epochName = ({ n, s }: EpochId): string => `${n}.${s.toString(16)}`

const encoder = new TextEncoder()

/** A derived client id: the first 31 bits of SHA-256 over the parts, in [1, SESSION_CLIENTS) (0 is epoch 0's seed id). */
const derive = (parts: unknown[]): number => {
  const hash = digest(encoder.encode(JSON.stringify(parts)))
  const n = ((((hash[0] as number) & 0x7f) << 24) | ((hash[1] as number) << 16) | ((hash[2] as number) << 8) | (hash[3] as number)) >>> 0
  return n === 0 ? 1 : n
}

/** The seed id of epoch `n` with parent `parent` and seed `entries`: its seed's Yjs client id. */
export const seedId = (n: number, parent: EpochId, entries: SeedEntries): number =>
  derive(['y-session-store/seed/1', n, parent.n, parent.s, entries])

/** A Yjs item id. */
export interface ItemId {
  readonly client: number
  readonly clock: number
}

/**
 * The client id of the carry of `text` under `key` into the epoch of seed `s`, placed after the
 * item `origin` (or first): peers that carry the same write after the same item make one struct.
 */
export const carryId = (s: number, key: string, text: string, origin: ItemId | null): number =>
  derive(['y-session-store/carry/1', s, key, text, origin === null ? null : [origin.client, origin.clock]])

/** Whether the keys of `entries` are strictly ascending (each key once). */
export const ascending = (entries: SeedEntries): boolean => {
  for (let i = 1; i < entries.length; i++) if (!((entries[i - 1] as readonly [string, string])[0] < (entries[i] as readonly [string, string])[0])) return false
  return true
}

/**
 * Writes the seed into `doc`, a fresh document: client `epoch.s` writes the entries in key order, in
 * one transaction of `origin`. Every peer writes the same structs (the same client, clocks and
 * contents), so the seeds of one move are one seed however many peers write it. Written in place,
 * not encoded and applied: it takes the path of a live write (map sets in a transaction), whose
 * code is hot, instead of a state update's encoding and decoding, which a room otherwise runs only
 * at a join. The caller sets the document's own client id after.
 */
export const writeSeed = (doc: Y.Doc, epoch: EpochId, root: string, entries: SeedEntries, origin: unknown): void => {
  doc.clientID = epoch.s
  const map = doc.getMap(root)
  doc.transact(() => {
    for (const [key, text] of entries) map.set(key, text)
  }, origin)
}

/** What this module reads of a map item. */
interface MapItem {
  readonly id: ItemId
  readonly origin: ItemId | null
  readonly deleted: boolean
  /** The key's previous item (Y.Map chains a key's items, overwritten ones included). */
  readonly left: MapItem | null
}

/** Whether `text` was carried under `key` into the epoch of seed `s` already, wherever it went (a text is carried once). */
const carried = (map: Y.Map<unknown>, s: number, key: string, text: string): boolean => {
  for (let item = lastItem(map, key) ?? null; item !== null; item = item.left) {
    if (isDerived(item.id.client) && item.id.client === carryId(s, key, text, item.origin)) return true
  }
  return false
}

/** The map's last item under `key` (Y.Map keeps it in `_map`, deleted or not). */
const lastItem = (map: Y.Map<unknown>, key: string): MapItem | undefined =>
  (map as unknown as { _map: Map<string, MapItem> })._map.get(key)

/** The Yjs client that wrote the map's current item under `key`, and its clock. */
export const itemOf = (map: Y.Map<unknown>, key: string): ItemId | undefined => {
  const item = lastItem(map, key)
  return item === undefined || item.deleted ? undefined : item.id
}

/**
 * Whether `client` is a seed's or a carry's: derived, not a session's (the handshake binds only
 * session ids, at or above SESSION_CLIENTS).
 */
export const isDerived = (client: number): boolean => client < SESSION_CLIENTS

/** Whether the current item under `key` in `map` is a seed's or a carry's. */
export const inherited = (map: Y.Map<unknown>, key: string): boolean => {
  const item = lastItem(map, key)
  return item !== undefined && !item.deleted && isDerived(item.id.client)
}

/** Whether entry text `a` is later than `b` by their writers' clocks (`at`), then text: -1 for what is not an envelope. */
const later = (a: string, b: unknown): boolean => {
  const atA = writeOf(a)?.at ?? -1
  const atB = writeOf(b)?.at ?? -1
  return atA !== atB ? atA > atB : typeof b !== 'string' || a > b
}

const BY = '{"by":"'
const AT = '","at":'
const DIGIT_0 = 48

/**
 * The writer (`by`) and clock (`at`) of an entry text, or null for what is not an envelope: what
 * /^\{"by":"([^"]*)","at":(\d{1,16}),/ matches, read by hand (every map change reads it).
 */
export const writeOf = (text: unknown): { writer: string, at: number } | null => {
  if (typeof text !== 'string' || !text.startsWith(BY)) return null
  const quote = text.indexOf('"', BY.length)
  if (quote < 0 || !text.startsWith(AT, quote)) return null
  const start = quote + AT.length
  let i = start
  for (; i < text.length && i - start <= 16; i++) {
    const digit = text.charCodeAt(i) - DIGIT_0
    if (digit < 0 || digit > 9) break
  }
  if (i === start || i - start > 16 || text.charCodeAt(i) !== 44 /* , */) return null
  return { writer: text.slice(BY.length, quote), at: Number(text.slice(start, i)) }
}

/**
 * Whether `cover` holds the entry `text` under `key`: the mover had seen a write of its writer to
 * the key at this clock or a later one. A writer's clock grows with its writes, and each of its
 * writes to a key saw the one before, so one number per writer and key says which are in.
 */
export const covered = (cover: Cover, key: string, text: string): boolean => {
  const write = writeOf(text)
  return write !== null && (cover.get(`${key}\n${write.writer}`) ?? -1) >= write.at
}

/**
 * What a peer has seen (a move's cover), kept by key, then writer: every change of a held map adds
 * the write of its entry (its writer and clock, `writeOf`), joining no strings and hashing no new
 * ones per change; `lines()` is what a move carries.
 */
export class SeenCover {
  readonly #byKey = new Map<string, Map<string, number>>()

  see (key: string, write: { writer: string, at: number }): void {
    let writers = this.#byKey.get(key)
    if (writers === undefined) this.#byKey.set(key, writers = new Map())
    if ((writers.get(write.writer) ?? -1) < write.at) writers.set(write.writer, write.at)
  }

  /** Adds every line of a move's cover. */
  add (lines: readonly CoverEntry[]): void {
    for (const { key, writer, at } of lines) this.see(key, { writer, at })
  }

  /** The lines seen, at most MAX_COVER of them, the most recent (by `at`) kept. */
  lines (): CoverEntry[] {
    const lines: CoverEntry[] = []
    for (const [key, writers] of this.#byKey) for (const [writer, at] of writers) lines.push({ key, writer, at })
    return lines.sort((a, b) => b.at - a.at || (a.key < b.key ? -1 : a.key > b.key ? 1 : a.writer < b.writer ? -1 : 1)).slice(0, MAX_COVER)
  }
}

export const coverOf = (lines: readonly CoverEntry[]): Cover => {
  const cover: Cover = new Map()
  for (const { key, writer, at } of lines) {
    const line = `${key}\n${writer}`
    if ((cover.get(line) ?? -1) < at) cover.set(line, at)
  }
  return cover
}

/**
 * The latest write a peer has seen under a key, in any epoch it held: its clock and text, or a
 * delete of it (text null) with the clock of the entry it deleted.
 */
export interface Latest {
  readonly at: number
  readonly text: string | null
}

/** Whether `a` is later than `b`: by `at`, then a delete before an entry of the same clock, then text. */
export const laterThan = (a: Latest, b: Latest): boolean => {
  if (a.at !== b.at) return a.at > b.at
  if ((a.text === null) !== (b.text === null)) return a.text === null
  return a.text !== null && b.text !== null && a.text > b.text
}

/** A carry: a text to write under a key after an item (or first). */
export type Carry = readonly [key: string, text: string, origin: ItemId | null]

/**
 * What of document `doc` (an older epoch) is to be carried into epoch `into` (whose map is
 * `target`): the entry of each key when `into`'s cover does not hold it (its mover had not seen
 * it) and `target` holds under the key nothing, its seed's entry (which cannot be later: its mover
 * had not seen this one), or a carry's entry that it is later than (by `at`, then text: two
 * carries from different epochs, after concurrent moves); it goes after that entry. An original
 * write of `into` stands: concurrent with the old one, or made after seeing it carried.
 * Deletes are not carried: a deleted key's items keep no content, so a delete cannot be told from
 * one older than the snapshot, nor from one of an older value than the snapshot's (src/PROTOCOL.md).
 * `keys` limits it to those keys (default: every key `doc`'s map has).
 */
export const toCarry = (doc: Y.Doc, root: string, into: EpochId, cover: Cover, target: Y.Map<unknown>, keys?: Iterable<string>): Carry[] => {
  const map = doc.getMap<unknown>(root)
  const out: Carry[] = []
  for (const key of keys ?? Array.from(map.keys())) {
    const last = lastItem(map, key)
    if (last === undefined || last.deleted) continue
    const current = lastItem(target, key)
    const text = map.get(key)
    if (typeof text !== 'string' || writeOf(text) === null || covered(cover, key, text)) continue
    if (current === undefined) {
      out.push([key, text, null])
      continue
    }

    const held = target.get(key)
    if (current.deleted || held === text || !isDerived(current.id.client)) continue
    if (current.id.client !== into.s && !later(text, held)) continue
    if (carried(target, into.s, key, text)) continue
    out.push([key, text, current.id])
  }
  return out
}

/**
 * Carries `carries` into `doc`, the document of epoch `epoch`: each text as an item of its own
 * client `carryId`, at clock 0, after its origin (the item `toCarry` found current, which it
 * still is). What `doc` already holds is not made again. Applied with `origin`.
 */
export const applyCarries = (doc: Y.Doc, root: string, epoch: EpochId, carries: readonly Carry[], origin: unknown): void => {
  const map = doc.getMap<unknown>(root)
  doc.transact((transaction) => {
    for (const [key, text, after] of carries) {
      const current = lastItem(map, key)
      const client = carryId(epoch.s, key, text, after)
      if (Y.getState(doc.store, client) !== 0) continue
      const still = after === null ? current === undefined : current !== undefined && current.id.client === after.client && current.id.clock === after.clock
      if (!still) continue
      const left = (current ?? null) as unknown as Y.Item | null
      new Y.Item(Y.createID(client, 0), left, left === null ? null : left.lastId, null, null, map as unknown as Y.AbstractType<unknown>, key, new Y.ContentAny([text])).integrate(transaction, 0)
    }
  }, origin)
}

/**
 * The structs `doc` holds, overwritten ones included: what its history costs (about 200 bytes of
 * heap each, and what a joiner is sent). Not its clock units: Yjs merges the overwritten items of
 * one client's consecutive writes to one key (no write of its own elsewhere between them) into one
 * struct, so a peer overwriting its own key (a cursor, a timer, the latency bench's ping) adds
 * clock units and no history.
 */
export const structsOf = (doc: Y.Doc): number => {
  let structs = 0
  for (const clientStructs of doc.store.clients.values()) structs += clientStructs.length
  return structs
}

/** The history of a document beyond its live entries: its structs, less its map's keys. */
export const historyOf = (doc: Y.Doc, root: string): number => structsOf(doc) - doc.getMap(root).size

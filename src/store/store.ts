/**
 * The session store facade: the SDK-style API of the product page over one Y.Map, with its limits.
 *
 * Each entry is stored in the Y.Map as JSON text: an envelope of the value and who wrote it when
 * (envelope.ts). Text makes the byte accounting exact and cheap, and anything else a peer puts in
 * the map (a non-string, text that is not an envelope, an oversize value) is recognisably invalid.
 * Peers cannot be trusted to obey the limits, so the facade keeps its own view of the map: entries
 * that break the per-entry rules are invisible, reported once and otherwise ignored; of the valid
 * ones, a deterministic rule (visibility.ts) shows a set within the whole-store limits, the same
 * on every honest peer.
 *
 * Yjs resolves concurrent writes to one key by last writer wins; the store does not hide that.
 *
 * In a protected room (an `authority`: trust/signed-entry.ts) an entry counts only when its seal
 * verifies: signed by a peer whose room token grants the key. Each key shows its best valid entry
 * seen (highest version, then signing time, then text: a total order every peer applies), a
 * delete is a signed tombstone, and when the document holds anything else under the key (garbage,
 * a forgery, a replay of an older version, an unauthorised write or a raw delete) the store puts
 * the best entry back after a short random delay, so the room converges back to it.
 */

import type * as Y from 'yjs'
import { ErrorCodes, SessionStoreError } from '../errors.js'
import type { Peer } from '../peers.js'
import type { EntryAuthority, Verdict } from '../trust/signed-entry.js'
import { decodeEnvelope, encodeEnvelope, encodeUnsignedEnvelope, insertSignature, isClock, WRITER_ID, type Entry, type Writer } from './envelope.js'
import { cloneJson, encodeValue, type Json } from './json.js'
import { isWellFormed, resolveLimits, utf8Length, type Limits } from './limits.js'
import { Visibility } from './visibility.js'

export type { Writer } from './envelope.js'

/** Who wrote an entry: `user` is the verified user (the room token's `sub`) in protected rooms. */
export interface UpdatedBy extends Writer {
  user?: string
}

/** A visible entry with who wrote it, as `store.entry(key)` returns it (the 100ms SDK's fields). */
export interface StoreEntry {
  value: Json
  /** The writer's peer, as it claimed when writing: `id` is its Yjs client id, as in `session.peers`. */
  updatedBy: UpdatedBy
  /** The writer's clock at the write, in ms since the epoch. */
  updatedAt: number
}

/** Called with the key, its visible value (undefined: absent or hidden) and its entry. */
export type ChangeObserver = (key: string, value: Json | undefined, entry: StoreEntry | undefined) => void

/** The handle `observeChanges` returns; pass it to `removeObserver`. */
export interface Observer {
  /** The keys observed; null for an `observeAllChanges` observer. */
  readonly keys: readonly string[] | null
}

/** The Yjs client id that wrote the map's current item under `key` (Y.Map keeps its items in `_map`). */
const writerOf = (map: Y.Map<unknown>, key: string): number | undefined =>
  (map as unknown as { _map: Map<string, { id: { client: number } }> })._map.get(key)?.id.client

export type Completion = (finalValue: Json | undefined, error: SessionStoreError | null) => void

export interface Usage {
  /** Visible keys: at most `limits.maxKeys`. */
  keys: number
  /** Bytes of the visible keys and values: at most `limits.maxTotalBytes`. */
  bytes: number
  /** Valid entries the whole-store limits hide (other peers pushed the merged map over them). */
  hidden: number
  limits: Limits
}

export interface StoreOptions {
  /** The limits; every peer of a room must use the same ones. Default DEFAULT_LIMITS. */
  limits?: Partial<Limits> | undefined
  /** Receives what the store cannot throw to a caller: observer exceptions, invalid remote entries. */
  onError?: ((error: SessionStoreError) => void) | undefined
  /**
   * Who this peer is, read at each write and stored in the entry (`updatedBy`): `id` of at most 128
   * printable ASCII characters without quote or backslash, `metadata` JSON of at most
   * `maxValueBytes`. Default `{ id: String(doc.clientID), metadata: null }` of the map's document.
   */
  writer?: (() => Writer) | undefined
  /** This peer's clock in ms, read at each write (`updatedAt`). Default `Date.now`. */
  now?: (() => number) | undefined
  /** Makes the room protected: writes are sealed, and only entries whose seal verifies count. */
  authority?: EntryAuthority | undefined
  /** The longest a protected store waits before putting a displaced best entry back, in ms. Default 200. */
  restoreDelay?: number | undefined
  /** Protected rooms: ms after which an entry whose verdict was not final (its issuer's key set unreachable) is judged again. Default RECHECK_MS. */
  recheckDelay?: number | undefined
  /** The room's locks (store.lock): who holds which key, so that only the holder's writes count. */
  locks?: LockRules | LockService | undefined
  /** The peer a lock holder's peer id names (the session's peers). Default: a peer with that id only. */
  peerOf?: ((peerId: string) => Peer) | undefined
  /**
   * Whether the map item of `client` under `key` holding `text` was made by a move (a seed or a
   * carry: store/epochs.ts), whose client id names no writer. Default: none is.
   */
  inherited?: ((client: number, key: string, text: unknown) => boolean) | undefined
  /** Receives the controls that move the store between epochs (epochs.ts); not part of the API. */
  epochs?: ((controls: EpochControls) => void) | undefined
}

/** What epochs.ts does to the store at a move: see `rebind`, `offer` and `snapshot` below. */
export interface EpochControls {
  rebind: (map: Y.Map<unknown>) => void
  offer: (key: string, raw: unknown) => void
  snapshot: () => Array<[string, string]>
}

/** A lock this peer was granted, as the lock service hands it out. */
export interface LockGrant {
  readonly key: string
  readonly holder: string
  readonly fencingToken: number
  readonly expiresAt: number
  readonly held: boolean
  release: () => Promise<void>
}

/** The room's locks with the operations behind store.lock, revokeLock and update (locks/room-locks.ts). */
export interface LockService extends LockRules {
  acquire: (key: string, options: { ttl?: number, wait?: number }) => Promise<LockGrant>
  revoke: (key: string) => Promise<void>
  /** Waits (bounded) until the writes made under the key's previous lock have arrived. */
  caughtUp: (key: string) => Promise<void>
  /** When the key's lock ends as this peer knows it, or null. */
  expiresAt: (key: string) => number | null
}

/** A lock of a key (store.lock): its holder, until when, its fencing token; `release` gives it back. */
export interface Lock {
  readonly key: string
  readonly holder: Peer
  /** When the lease ends unless renewed (this peer renews it while connected), ms since the epoch. */
  readonly expiresAt: number
  /** Strictly increasing per key: every write under the lock carries it. */
  readonly fencingToken: number
  release: () => Promise<void>
}

export interface LockOptions {
  /** The lease in ms, 10000 to 300000. Default 10000. */
  ttl?: number | undefined
  /** ms to wait while another peer holds the lock (or no arbiter answers). Default 0: reject at once. */
  wait?: number | undefined
}

/** What the store needs to know of the room's locks (locks/ and the session provide it). */
export interface LockRules {
  /** The live lock on `key` as this peer knows it, or null. */
  holder: (key: string) => { holder: string, fencingToken: number } | null
  /** This peer's id as a lock holder (its peer id), once known. */
  self: () => string | null
  /** The Yjs client id of peer `peerId`, when known: in open rooms, who wrote a map item. */
  clientOf: (peerId: string) => number | undefined
  /** Who held `key`'s lock with fencing token `fencingToken`, if this peer saw that lease. */
  pastHolder?: (key: string, fencingToken: number) => string | undefined
  /** The arbiter's signed grant of this peer's lease of `key` under `fencingToken`, carried by its writes. */
  grant?: (key: string, fencingToken: number) => string | undefined
  /**
   * The holder that `grant` (an entry's `lg`) names, once checked with the arbiter's key, for a
   * lease this peer was not told of: null when it is not the arbiter's grant of that lease of
   * `key`; undefined when this peer cannot check it (it has no arbiter's key). Once checked, the
   * lease is one of `pastHolder`'s. Absent: entries under unknown leases count as they are.
   */
  grantHolder?: (key: string, fencingToken: number, grant: string) => Promise<string | null | undefined>
}

/** An entry that counts in a protected room: sealed, verified, with its user. */
type Verified = Entry & { readonly user: string }

/** `entry` as judged, with the user its verdict names: itself when it names that user already. */
const verified = (entry: Entry, user: string): Verified => {
  if ((entry as Partial<Verified>).user === user) return entry as Verified
  const { key, text, bytes, value, by, metadata, at, since, seal, lock, grant, deleted } = entry
  return { key, text, bytes, value, by, metadata, at, since, seal, lock, grant, deleted, user }
}

/** At most this many INVALID_REMOTE_ENTRY reports per transaction; the rest are counted in one more. */
const MAX_REPORTS = 10
/** How long after a verdict that was not final (an issuer's key set unreachable) the entry is judged again (ms). */
export const RECHECK_MS = 5000
/** How far ahead of this peer's clock a seen entry's `at` may be for a write to follow it (ms). */
const MAX_CLOCK_LEAD = 10 * 60_000
/** At most this many reports of entries refused by their seal, per second. */
const MAX_SEAL_REPORTS = 10

/** The order of valid entries of one key in a protected room: version, then signing time, then text. */
export const outranks = (a: Entry, b: Entry): boolean => {
  const av = a.seal?.ver ?? 0
  const bv = b.seal?.ver ?? 0
  if (av !== bv) return av > bv
  if (a.at !== b.at) return a.at > b.at
  return a.text > b.text
}

interface ObserverRecord extends Observer {
  fn: ChangeObserver
}

/** The origin of transactions written through this facade (hocuspocus-style tagged origin). */
export interface LocalOrigin {
  readonly source: 'local'
  readonly store: SessionStore
}

export class SessionStore {
  readonly limits: Limits
  #map: Y.Map<unknown>
  readonly #origin: LocalOrigin
  readonly #onError: (error: SessionStoreError) => void
  readonly #writer: () => Writer
  readonly #now: () => number
  /** The valid entries, and the visible ones: within the whole-store limits. */
  readonly #visibility: Visibility<Entry>
  readonly #observers = new Map<string, Set<ObserverRecord>>()
  readonly #allObservers = new Set<ObserverRecord>()
  #closed = false
  /**
   * Per key, the entry this peer's last write of it stored, until its map event reads it back: that
   * event needs no parse or measure. Kept past the write call, since a write made inside an
   * observer (an answer to a remote update) has its transaction, and its event, run afterwards.
   */
  readonly #written = new Map<string, Entry>()
  readonly #authority: EntryAuthority | null
  readonly #restoreDelay: number
  readonly #recheckDelay: number
  /** Protected rooms: the best valid entry seen per key (tombstones included). */
  readonly #best = new Map<string, Verified>()
  /** Protected rooms: the text under each key whose verdict is awaited. */
  readonly #awaiting = new Map<string, string>()
  /** Protected rooms: the highest version a local write has taken per key, signed or not yet. */
  readonly #reserved = new Map<string, number>()
  readonly #restores = new Map<string, ReturnType<typeof setTimeout>>()
  /** Keys whose entry is judged again later (#judgeAgainLater). */
  readonly #rechecks = new Map<string, ReturnType<typeof setTimeout>>()
  /** Protected rooms: verdicts being awaited. */
  readonly #judging = new Set<Promise<void>>()
  /** Protected rooms: local writes land in call order (each waits for its signature). */
  #queue: Promise<unknown> = Promise.resolve()
  #sealReports = { second: 0, count: 0 }
  readonly #locks: LockRules | LockService | null
  readonly #peerOf: (peerId: string) => Peer
  /** update() calls of this peer, per key, one after another. */
  readonly #updates = new Map<string, Promise<unknown>>()
  /** The highest lock fencing token seen per key: writes under an older one do not count. */
  readonly #fences = new Map<string, number>()
  readonly #inherited: (client: number, key: string, text: unknown) => boolean
  /** Per key: the highest `at` of a visible entry that left the map (deleted or overwritten). */
  readonly #gone = new Map<string, number>()

  constructor (map: Y.Map<unknown>, { limits, onError = () => {}, writer, now = Date.now, authority, restoreDelay = 200, recheckDelay = RECHECK_MS, locks, peerOf, inherited = () => false, epochs }: StoreOptions = {}) {
    this.limits = resolveLimits(limits)
    this.#map = map
    this.#origin = Object.freeze({ source: 'local' as const, store: this })
    this.#onError = onError
    // Through this.#map, not `map`: a closure over the constructor's map would hold the first epoch's document for good.
    this.#writer = writer ?? (() => ({ id: String(this.#map.doc?.clientID ?? 0), metadata: null }))
    this.#now = now
    this.#authority = authority ?? null
    this.#locks = locks ?? null
    this.#peerOf = peerOf ?? ((peerId) => ({ id: peerId, metadata: null, local: false }))
    this.#restoreDelay = restoreDelay
    this.#recheckDelay = recheckDelay
    this.#inherited = inherited
    this.#visibility = new Visibility(this.limits)
    if (!this.#judges) this.#visibility.update(this.#read(map.keys(), true))
    else for (const key of map.keys()) this.#consider(key, true)
    map.observe(this.#onMapEvent)
    epochs?.({ rebind: (next) => this.#rebind(next), offer: (key, raw) => this.#offer(key, raw), snapshot: () => this.#snapshot() })
  }

  /** Whether each entry is judged (seals, locks) and the best one kept, rather than read as it is. */
  get #judges (): boolean {
    return this.#authority !== null || this.#locks !== null
  }

  /** Whether the room is protected (writes are sealed and checked). */
  get protected (): boolean {
    return this.#authority !== null
  }

  /**
   * Whether this peer may write `key` now: always in an open room; in a protected one, when its
   * room token grants the key and has not expired. A write it may not make rejects PERMISSION_DENIED.
   */
  canWrite (key: string): boolean {
    this.#assertOpen()
    this.#assertKey(key)
    return this.#authority === null || this.#authority.refusal(key, this.#now()) === null
  }

  /** True once the session has been left: every call then fails with NOT_AVAILABLE. */
  get closed (): boolean {
    return this.#closed
  }

  /**
   * Sets `key` to `value` (undefined deletes). Resolves the value every reader now sees, or
   * rejects with SessionStoreError; a refused write changes nothing. With `completion`, reports
   * through it instead, as in the SDK.
   */
  set (key: string, value: unknown): Promise<Json | undefined>
  set (key: string, value: unknown, completion: Completion): void
  set (key: string, value: unknown, completion?: Completion): Promise<Json | undefined> | void {
    let result: Promise<Json | undefined>
    try {
      result = this.#authority === null ? Promise.resolve(this.#write(key, value)) : this.#writeSealed(this.#authority, key, value)
    } catch (err) {
      result = Promise.reject(err)
    }
    if (completion === undefined) return result
    result.then(
      (finalValue) => this.#call(() => completion(finalValue, null), key),
      (err: SessionStoreError) => this.#call(() => completion(undefined, err), key)
    )
  }

  /** Deletes `key`. Deleting a missing key is not an error. */
  async delete (key: string): Promise<void> {
    if (this.#authority === null) this.#write(key, undefined)
    else await this.#writeSealed(this.#authority, key, undefined)
  }

  /** One-shot read of `key`: its value, or undefined. */
  async object (key: string): Promise<Json | undefined> {
    return this.get(key)
  }

  /** Synchronous read of the local replica. */
  get (key: string): Json | undefined {
    this.#assertOpen()
    const entry = this.#visibility.visible.get(key)
    return entry === undefined ? undefined : cloneJson(entry.value)
  }

  /** The visible entry of `key` with who wrote it and when, or undefined; a copy, like `get`. */
  entry (key: string): StoreEntry | undefined {
    this.#assertOpen()
    return recordOf(this.#visibility.visible.get(key))
  }

  has (key: string): boolean {
    this.#assertOpen()
    return this.#visibility.visible.has(key)
  }

  /** The visible keys, in rank order (by the time each key got its value, then key): alike on every peer. */
  keys (): string[] {
    this.#assertOpen()
    return this.#visibility.ordered().map((entry) => entry.key)
  }

  /** The visible entries' values, keys in the order of `keys()`. */
  toJSON (): Record<string, Json> {
    this.#assertOpen()
    const out: Record<string, Json> = {}
    for (const entry of this.#visibility.ordered()) {
      // defineProperty, not assignment: a '__proto__' key stays an own property, as in cloneJson.
      Object.defineProperty(out, entry.key, { value: cloneJson(entry.value), enumerable: true, writable: true, configurable: true })
    }
    return out
  }

  usage (): Usage {
    this.#assertOpen()
    const visibility = this.#visibility
    return { keys: visibility.visible.size, bytes: visibility.bytes, hidden: visibility.hidden, limits: { ...this.limits } }
  }

  /**
   * Calls `fn` once per key in `keys` with its current value (undefined if absent) and entry, then
   * on every change of those keys, local or remote; a key the limits hide or show again counts as
   * changed. An observer that throws is reported, never propagated.
   */
  observeChanges (keys: readonly string[], fn: ChangeObserver): Observer {
    this.#assertOpen()
    if (!Array.isArray(keys)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'observeChanges takes an array of keys')
    if (typeof fn !== 'function') throw new TypeError('observeChanges takes an observer function')
    keys.forEach((key) => this.#assertKey(key))
    const unique = Object.freeze([...new Set(keys)])
    const record: ObserverRecord = { keys: unique, fn }
    for (const key of unique) {
      let set = this.#observers.get(key)
      if (set === undefined) this.#observers.set(key, set = new Set())
      set.add(record)
    }
    for (const key of unique) this.#notify(record, key)
    return record
  }

  /**
   * Calls `fn` once per key the store holds, then on every change of any key (a deleted key is
   * reported with undefined). For views of the whole store, such as an inspector.
   */
  observeAllChanges (fn: ChangeObserver): Observer {
    this.#assertOpen()
    if (typeof fn !== 'function') throw new TypeError('observeAllChanges takes an observer function')
    const record: ObserverRecord = { keys: null, fn }
    this.#allObservers.add(record)
    for (const key of this.keys()) this.#notify(record, key)
    return record
  }

  /** Stops `observer`. Returns false if it was not observing. */
  removeObserver (observer: Observer): boolean {
    if (observer.keys === null) return this.#allObservers.delete(observer as ObserverRecord)
    let removed = false
    for (const key of observer.keys) {
      const set = this.#observers.get(key)
      if (set?.delete(observer as ObserverRecord) === true) {
        removed = true
        if (set.size === 0) this.#observers.delete(key)
      }
    }
    return removed
  }

  /**
   * Takes the lock of `key`: until it is released (or its lease runs out, or a peer with the right
   * revokes it), only this peer's writes of `key` count, on every honest peer, and others' `set`
   * and `delete` reject LOCKED. Rejects LOCKED when another peer holds it (after waiting up to
   * `wait` ms), LOCK_UNAVAILABLE when no arbiter answers. The lease is renewed while held.
   */
  async lock (key: string, { ttl, wait }: LockOptions = {}): Promise<Lock> {
    this.#assertOpen()
    this.#assertKey(key)
    const grant = await this.#lockService(key).acquire(key, { ...(ttl === undefined ? {} : { ttl }), ...(wait === undefined ? {} : { wait }) })
    const holder = this.#peerOf(grant.holder)
    return {
      key,
      holder,
      get expiresAt () { return grant.expiresAt },
      get fencingToken () { return grant.fencingToken },
      release: async () => await grant.release()
    }
  }

  /** The holder of `key`'s lock as this peer knows it (the arbiter tells every peer), or null. */
  lockHolder (key: string): Peer | null {
    this.#assertOpen()
    const lock = this.#locks?.holder(key) ?? null
    return lock === null ? null : this.#peerOf(lock.holder)
  }

  /**
   * Ends `key`'s lock whoever holds it: allowed to a peer whose room token grants the key; in
   * rooms without tokens, only to the holder (then it is a release). Rejects PERMISSION_DENIED.
   */
  async revokeLock (key: string): Promise<void> {
    this.#assertOpen()
    this.#assertKey(key)
    await this.#lockService(key).revoke(key)
  }

  /**
   * Read-modify-write under the key's lock: takes it (waiting up to `wait`, default 30 s), waits
   * for the previous holder's writes (arrived and judged), calls `fn` with the current value, writes what it returns
   * (undefined deletes), releases. Resolves the final value. Concurrent updates, on one peer or
   * many, run one after another, so none is lost.
   */
  async update (key: string, fn: (current: Json | undefined) => unknown, { ttl, wait = 30_000 }: LockOptions = {}): Promise<Json | undefined> {
    this.#assertOpen()
    this.#assertKey(key)
    if (typeof fn !== 'function') throw new TypeError('update takes a function of the current value')
    const service = this.#lockService(key)
    const previous = this.#updates.get(key) ?? Promise.resolve()
    const run = async (): Promise<Json | undefined> => {
      const lock = await this.lock(key, { ttl, wait })
      try {
        await service.caughtUp(key)
        await this.#judgedNow(key)
        const next = await fn(this.get(key))
        return next === undefined ? (await this.delete(key), undefined) : await this.set(key, next)
      } finally {
        await lock.release()
      }
    }
    const result = previous.then(run, run)
    const tail = result.catch(() => {})
    this.#updates.set(key, tail)
    void tail.then(() => { if (this.#updates.get(key) === tail) this.#updates.delete(key) })
    return await result
  }

  /**
   * Resolves once what the document holds under `key` has been judged: the previous holder's last
   * write may have arrived (the handoff barrier) with its seal or lock grant still being checked,
   * and reading before its verdict would read the value before it.
   */
  async #judgedNow (key: string): Promise<void> {
    while (this.#awaiting.has(key) && this.#judging.size > 0 && !this.#closed) await Promise.race(this.#judging)
  }

  #lockService (key: string): LockService {
    const locks = this.#locks
    if (locks === null || !('acquire' in locks)) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'this store has no lock arbiter', { key })
    return locks
  }

  /**
   * Moves the facade to `map`, a new epoch's (epochs.ts): what readers see is judged anew from it,
   * and observers are told of each key that changed. The best entries and lock fences seen are
   * kept: in a protected room, or under a lock, a best entry the new map lacks (or holds a lower
   * one of) is put back, as the restore rule does within one map.
   */
  #rebind (map: Y.Map<unknown>): void {
    if (this.#closed || map === this.#map) return
    const keys = new Set<string>([...this.#map.keys(), ...map.keys(), ...this.#best.keys(), ...this.#visibility.visible.keys()])
    this.#map.unobserve(this.#onMapEvent)
    this.#map = map
    map.observe(this.#onMapEvent)
    if (!this.#judges) {
      // An entry the new map holds as it was (a seed's) is the same entry: no change to report.
      const visible = this.#visibility.visible
      const read = this.#read(keys, true).map(([key, entry]): [string, Entry | undefined] => {
        const old = visible.get(key)
        return [key, old !== undefined && old.text === entry?.text ? old : entry]
      })
      this.#deliver(this.#visibility.update(read))
      return
    }
    for (const key of keys) this.#consider(key, true)
  }

  /**
   * Protected rooms: judges `raw`, an entry under `key` in a document other than the map's (an
   * older epoch a peer still writes to), as a candidate for the key's best entry; when it becomes
   * the best, the restore rule puts it into the map.
   */
  #offer (key: string, raw: unknown): void {
    if (this.#closed || this.#authority === null || typeof raw !== 'string' || this.#best.get(key)?.text === raw) return
    this.#considerEntry(key, raw, true, false)
  }

  /**
   * The entries a move seeds the next epoch with (epochs.ts), keys in UTF-16 order: the best entry
   * of each key (in protected rooms the best counting one, tombstones included), or, for a store
   * that does not judge, the valid entry the map holds.
   */
  #snapshot (): Array<[string, string]> {
    const out: Array<[string, string]> = []
    if (this.#judges) {
      for (const [key, entry] of this.#best) out.push([key, entry.text])
    } else {
      for (const key of this.#map.keys()) {
        const raw = this.#map.get(key)
        if (typeof decodeEnvelope(key, raw, this.limits) !== 'string') out.push([key, raw as string])
      }
    }
    return out.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
  }

  /** Detaches the facade from the map. Called by the session on leave. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#map.unobserve(this.#onMapEvent)
    this.#observers.clear()
    this.#allObservers.clear()
    for (const timer of [...this.#restores.values(), ...this.#rechecks.values()]) clearTimeout(timer)
    this.#restores.clear()
    this.#rechecks.clear()
    this.#written.clear()
  }

  /**
   * Writes if the visible store, with this entry in it, stays within the limits. Then the rule
   * shows it: the entries ranked before it are unchanged, and they and it fit.
   */
  #write (key: string, value: unknown): Json | undefined {
    this.#assertOpen()
    this.#assertKey(key)
    const old = this.#visibility.visible.get(key)
    const { lock, grant } = this.#lockFor(key)
    if (value === undefined && lock === undefined) {
      if (this.#map.has(key)) this.#transact(() => this.#map.delete(key))
      return undefined
    }
    // Under a lock, a delete is a tombstone: a bare delete would look like anyone's.
    const deleted = value === undefined
    if (deleted && old === undefined) return undefined
    const { valueText, bytes } = deleted ? { valueText: 'null', bytes: 0 } : this.#measure(key, value, old)
    const { id, metadata, metadataText } = this.#whoAmI()
    const at = this.#clockFor(key, old)
    // An overwrite keeps the key's rank: the rule never moves a key behind others for being updated.
    const since = old?.since ?? at
    const text = encodeEnvelope(id, at, since, metadataText, valueText, { lock, grant, deleted })
    // Every field spelled out (no spreads): one object shape for every write, built on the hot path.
    const entry: Verified = { key, text, bytes, value: JSON.parse(valueText) as Json, by: id, metadata, at, since, seal: undefined, lock, grant, deleted: deleted || undefined, user: '' }
    this.#put(entry)
    return deleted ? undefined : cloneJson(entry.value)
  }

  /**
   * The fencing token and signed grant a write of `key` carries: those of this peer's lock on it,
   * or none when the key is not locked. Throws LOCKED when another peer holds it.
   */
  #lockFor (key: string): { lock: number | undefined, grant: string | undefined } {
    const lock = this.#locks?.holder(key) ?? null
    if (lock === null) return { lock: undefined, grant: undefined }
    if (lock.holder !== this.#locks?.self()) {
      throw new SessionStoreError(ErrorCodes.LOCKED, `'${key}' is locked by another peer (fencing token ${lock.fencingToken}): only its holder may write it`, { key })
    }
    return { lock: lock.fencingToken, grant: this.#locks?.grant?.(key, lock.fencingToken) }
  }

  /**
   * A sealed write (protected rooms): refused unless this peer's token grants the key, checked
   * against the limits now, then signed and stored in call order. Resolves what readers see.
   */
  async #writeSealed (authority: EntryAuthority, key: string, value: unknown): Promise<Json | undefined> {
    this.#assertOpen()
    this.#assertKey(key)
    const refusal = authority.refusal(key, this.#now())
    const signer = authority.signer
    if (refusal !== null || signer === null) throw new SessionStoreError(ErrorCodes.PERMISSION_DENIED, refusal ?? 'this peer has no valid room token', { key })
    const { lock, grant } = this.#lockFor(key)
    const old = this.#best.get(key)
    const live = old === undefined || old.deleted === true ? undefined : old
    const deleted = value === undefined
    if (deleted && live === undefined) return undefined
    const { valueText, bytes } = deleted ? { valueText: 'null', bytes: 0 } : this.#measure(key, value, this.#visibility.visible.get(key))
    const { id, metadata, metadataText } = this.#whoAmI()
    const at = this.#clock()
    const since = live?.since ?? at
    const ver = Math.max(old?.seal?.ver ?? 0, this.#reserved.get(key) ?? 0) + 1
    this.#reserved.set(key, ver)
    const seal = { ver, deleted, signer: signer.id, token: signer.token }
    const unsigned = encodeUnsignedEnvelope(id, at, since, seal, metadataText, valueText, lock, grant)
    // Signing starts now (WebCrypto runs signatures in parallel); the writes land in call order.
    const signing = authority.sign(key, unsigned)
    signing.catch(() => {})
    const land = async (): Promise<Json | undefined> => {
      const signature = await signing
      this.#assertOpen()
      const text = insertSignature(unsigned, signature)
      const entry: Verified = {
        key, text, bytes, value: JSON.parse(valueText) as Json, by: id, metadata, at, since,
        seal: { ...seal, signature, unsigned }, lock, grant, deleted: deleted || undefined, user: signer.user
      }
      this.#put(entry)
      return this.get(key)
    }
    const result = this.#queue.then(land, land)
    this.#queue = result.catch(() => {})
    return await result
  }

  /**
   * The clock of a write of `key` that replaces `old`: this peer's clock, or one above the highest
   * `at` of what the key held that this store has seen, if that is later (a clock behind another
   * peer's), so that a write made after seeing another is later by `at` too (epochs.ts orders
   * carries by it). An `at` more than MAX_CLOCK_LEAD ahead of this peer's clock is not followed: a
   * claim from far in the future must not drag every later write there.
   */
  #clockFor (key: string, old: Entry | undefined): number {
    const now = this.#clock()
    const seen = Math.max(old?.at ?? -1, this.#gone.get(key) ?? -1)
    return seen >= now && seen < now + MAX_CLOCK_LEAD ? seen + 1 : now
  }

  /** The clock for a write, validated. */
  #clock (): number {
    const at = Math.floor(this.#now())
    if (!isClock(at)) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, `now() must return ms since the epoch, got ${String(at)}`)
    return at
  }

  /** The value's text and the entry's size, checked against the limits with the key's visible entry `old`. */
  #measure (key: string, value: unknown, old: Entry | undefined): { valueText: string, bytes: number } {
    const visible = this.#visibility.visible
    const valueText = encodeValue(value)
    const valueBytes = utf8Length(valueText)
    if (valueBytes > this.limits.maxValueBytes) {
      throw new SessionStoreError(ErrorCodes.VALUE_TOO_LARGE, `value of '${key}' is ${valueBytes} bytes, over the limit of ${this.limits.maxValueBytes}`, { key })
    }
    if (old === undefined && visible.size + 1 > this.limits.maxKeys) {
      throw new SessionStoreError(ErrorCodes.TOO_MANY_KEYS, `the store holds ${visible.size} keys; the limit is ${this.limits.maxKeys}`, { key })
    }
    const bytes = utf8Length(key) + valueBytes
    const total = this.#visibility.bytes - (old?.bytes ?? 0) + bytes
    if (total > this.limits.maxTotalBytes) {
      throw new SessionStoreError(ErrorCodes.STORE_TOO_LARGE, `writing '${key}' would make the store ${total} bytes, over the limit of ${this.limits.maxTotalBytes}`, { key })
    }
    return { valueText, bytes }
  }

  /** The writer's identity, validated: a bad one is the embedding code's bug, refused before writing. */
  #whoAmI (): { id: string, metadata: Json, metadataText: string } {
    const { id, metadata } = this.#writer()
    if (typeof id !== 'string' || !WRITER_ID.test(id)) {
      throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'writer().id must be 1 to 128 printable ASCII characters without quote or backslash')
    }
    if (metadata === null || metadata === undefined) return { id, metadata: null, metadataText: 'null' }
    const metadataText = encodeValue(metadata)
    const metadataBytes = utf8Length(metadataText)
    if (metadataBytes > this.limits.maxValueBytes) {
      throw new SessionStoreError(ErrorCodes.VALUE_TOO_LARGE, `the writer's metadata is ${metadataBytes} bytes, over the limit of ${this.limits.maxValueBytes}`)
    }
    return { id, metadata: JSON.parse(metadataText) as Json, metadataText }
  }

  #transact (fn: () => void): void {
    const doc = this.#map.doc
    if (doc === null) fn()
    else doc.transact(fn, this.#origin)
  }

  /** Writes `entry`'s text under its key, kept in #written for the map event that follows. */
  #put (entry: Entry): void {
    this.#written.set(entry.key, entry)
    this.#transact(() => this.#map.set(entry.key, entry.text))
  }

  /** The entry this peer wrote under `key`, if `raw` is its text (read once: the map event consumes it). */
  #ownWrite (key: string, raw: unknown): Entry | undefined {
    const written = this.#written.get(key)
    if (written === undefined) return undefined
    this.#written.delete(key)
    return written.text === raw ? written : undefined
  }

  #onMapEvent = (event: Y.YMapEvent<unknown>): void => {
    const remote = event.transaction.origin !== this.#origin
    // What readers saw under each changed key is leaving: its clock bounds the key's next write (#clockFor).
    for (const key of event.keysChanged) {
      const at = this.#visibility.visible.get(key)?.at
      if (at !== undefined && at > (this.#gone.get(key) ?? -1)) this.#gone.set(key, at)
    }
    if (this.#judges) {
      for (const key of event.keysChanged) this.#consider(key, remote)
      return
    }
    this.#deliver(this.#visibility.update(this.#read(event.keysChanged, remote)))
  }

  /** Tells the observers of each changed key what readers now see. */
  #deliver (changes: ReadonlyArray<{ key: string }>): void {
    for (const { key } of changes) {
      for (const observers of [this.#observers.get(key), this.#allObservers]) {
        if (observers === undefined) continue
        for (const record of Array.from(observers)) {
          if (this.#closed) return
          if (!observers.has(record)) continue // removed by an earlier observer
          this.#notify(record, key)
        }
      }
    }
  }

  /**
   * Protected rooms: judges what the document now holds under `key`. A verdict known at once
   * (cached, or this peer's own write) applies now; otherwise when it arrives, and meanwhile the
   * key shows its best entry as before.
   */
  #consider (key: string, remote: boolean): void {
    const authority = this.#authority
    this.#awaiting.delete(key)
    if (!this.#map.has(key)) {
      // A bare delete: in an open room, the key is gone, unless it is locked (holders write tombstones).
      if (authority === null && (this.#locks?.holder(key) ?? null) === null) this.#forget(key)
      this.#reconcile(key)
      return
    }
    this.#considerEntry(key, this.#map.get(key), remote, true)
  }

  /** Judges `raw` under `key`: the map's entry (`inMap`), or one offered from an older epoch. */
  #considerEntry (key: string, raw: unknown, remote: boolean, inMap: boolean): void {
    const authority = this.#authority
    const writing = remote ? undefined : this.#ownWrite(key, raw)
    const entry = writing ?? decodeEnvelope(key, raw, this.limits)
    if (typeof entry === 'string') {
      if (!inMap) return
      this.#reportSeal(key, entry)
      if (authority === null) this.#forget(key)
      this.#reconcile(key)
      return
    }
    const own = entry === writing
    const verdict: Verdict | Promise<Verdict> = own || authority === null ? { user: (entry as Partial<Verified>).user ?? '' } : authority.check(key, entry)
    const problemOf = (settled: Verdict): string | null | Promise<string | null> =>
      typeof settled === 'string' ? settled : own || this.#best.get(key)?.text === entry.text ? null : this.#lockProblem(key, entry)
    let problem: string | null | Promise<string | null> | undefined
    if (!(verdict instanceof Promise)) {
      problem = problemOf(verdict)
      if (!(problem instanceof Promise)) {
        this.#judged(key, entry, verdict, problem)
        return
      }
    }
    // The seal's verdict or the lock grant's check is awaited: meanwhile the key shows its best entry.
    if (inMap) this.#awaiting.set(key, entry.text)
    const judging = (async () => {
      const settled = await verdict
      const settledProblem = await (problem ?? problemOf(settled))
      if (this.#closed) return
      if (this.#awaiting.get(key) === entry.text) {
        this.#awaiting.delete(key)
      } else if (inMap && authority === null) {
        // An open room's key is the map's entry: the map has moved on, and what it holds now is judged by itself.
        this.#reconcile(key)
        return
      }
      this.#judged(key, entry, settled, settledProblem)
      if (inMap && typeof settled === 'string' && authority?.final?.(key, entry) === false) this.#judgeAgainLater(key, entry.text)
    })().catch(() => {})
    this.#judging.add(judging)
    void judging.finally(() => this.#judging.delete(judging))
  }

  /**
   * Judges the map's entry under `key` again after `recheckDelay` ms, if it is still `text`: its verdict
   * rested on what could not be known yet (an issuer's key set unreachable), and no change of the
   * key may come to ask again. One timer per key; a verdict that is still not final sets the next.
   */
  #judgeAgainLater (key: string, text: string): void {
    if (this.#rechecks.has(key)) return
    const timer = setTimeout(() => {
      this.#rechecks.delete(key)
      if (!this.#closed && this.#map.get(key) === text) this.#consider(key, true)
    }, this.#recheckDelay)
    this.#rechecks.set(key, timer)
  }

  /** An open room's key whose entry is gone or invalid: nothing to keep, nothing to restore. */
  #forget (key: string): void {
    if (!this.#best.delete(key)) return
    this.#deliver(this.#visibility.update([[key, undefined]]))
  }

  /**
   * Why a remote entry breaks the key's lock, or null. Fencing (Kleppmann): an entry written under
   * an older lock than a counting entry already seen for the key never counts. While the key is
   * locked, an entry counts when written by the holder under the holder's token, or under an older
   * lock by that lock's holder (a write of the previous lease that arrives late: the next holder
   * waited for it before it read, so it belongs to the history); an entry without a token does
   * not. A token of a lease this peer was not told of (newer than it heard of, or older than its
   * arrival in the room, or made up) counts only with the arbiter's signed grant of that lease, so
   * a peer cannot claim a lock it was not given, nor raise the fence over the real holder's writes.
   * The writer is the signer in protected rooms, and the Yjs client of the map item in open ones
   * (checked where the holder's client is known: a neighbour). A promise when the grant is checked.
   */
  #lockProblem (key: string, entry: Entry): string | null | Promise<string | null> {
    const fence = this.#fences.get(key) ?? 0
    if (entry.lock !== undefined && entry.lock < fence) return `written under an older lock of '${key}' (fencing token ${entry.lock} < ${fence})`
    const lock = this.#locks?.holder(key) ?? null
    if (entry.lock === undefined) return lock === null ? null : `'${key}' is locked by another peer`
    const token = entry.lock
    // While the key is free anyone's entry counts, one under a lease only when the lease is real (it raises the fence).
    const byHolder = (holder: string): string | null => lock === null ? null : this.#writerProblem(key, entry, holder)
    const known = this.#leaseHolder(key, token)
    if (known !== undefined) return byHolder(known)
    const locks = this.#locks
    if (locks?.grantHolder === undefined) return null
    const forged = `'${key}' was written under a lock (fencing token ${token}) that the arbiter did not grant its writer`
    if (entry.grant === undefined) return forged
    return locks.grantHolder(key, token, entry.grant).then((granted) => granted === undefined ? null : granted === null ? forged : byHolder(granted), () => forged)
  }

  /** The holder of lease `fencingToken` of `key`, when this peer knows that lease (told by the arbiter, or its grant checked). */
  #leaseHolder (key: string, fencingToken: number): string | undefined {
    const lock = this.#locks?.holder(key) ?? null
    return fencingToken === lock?.fencingToken ? lock.holder : this.#locks?.pastHolder?.(key, fencingToken)
  }

  /** Why `entry` was not written by `holder`, the holder of the lease it names, or null. */
  #writerProblem (key: string, entry: Entry, holder: string): string | null {
    if (entry.seal !== undefined) return entry.seal.signer === holder ? null : `'${key}' was written by a peer that did not hold its lock`
    const holderClient = this.#locks?.clientOf(holder)
    const writer = writerOf(this.#map, key)
    // A seed or a carry (a move's struct) names no writer: its entry was judged in the epoch it came from.
    if (writer !== undefined && this.#inherited(writer, key, entry.text)) return null
    if (holderClient !== undefined && writer !== undefined && writer !== holderClient) return `'${key}' was written by a peer that did not hold its lock`
    return null
  }

  /**
   * Resolves once every entry the document holds now has been judged (protected rooms: their
   * seals are verified asynchronously). The session waits for it before the store is available,
   * so that a joiner's first read shows the room's entries, not an empty store.
   */
  async settled (): Promise<void> {
    while (this.#judging.size > 0) await Promise.all(Array.from(this.#judging))
  }

  /**
   * A judged entry: in a protected room it becomes the key's best if it outranks the best seen; in
   * an open one it is the key's entry. A remote entry that breaks the key's lock counts for
   * neither. Then the document is reconciled with the best entry.
   */
  #judged (key: string, entry: Entry, verdict: Verdict, problem: string | null): void {
    // The best entry again (another peer put it back): nothing to judge, and its writer may differ.
    if (this.#best.get(key)?.text === entry.text) {
      this.#reconcile(key)
      return
    }
    if (problem !== null) {
      this.#reportSeal(key, problem)
    } else {
      // Only a lease this peer knows of raises the fence: one it could not check (no arbiter's key) does not.
      if (entry.lock !== undefined && (this.#locks?.grantHolder === undefined || this.#leaseHolder(key, entry.lock) !== undefined)) {
        this.#fences.set(key, Math.max(this.#fences.get(key) ?? 0, entry.lock))
      }
      const best = this.#best.get(key)
      if (best?.text !== entry.text && (best === undefined || this.#authority === null || outranks(entry, best))) {
        const judged = verified(entry, (verdict as { user: string }).user)
        this.#best.set(key, judged)
        this.#deliver(this.#visibility.update([[key, judged.deleted === true ? undefined : judged]]))
      }
    }
    this.#reconcile(key)
  }

  /**
   * When the document no longer holds the key's best entry (and no verdict on what it holds is
   * awaited), puts the best one back after a random delay of up to `restoreDelay`: any honest
   * peer that saw it may, and the first to do so saves the others the write.
   */
  #reconcile (key: string): void {
    const best = this.#best.get(key)
    if (best === undefined || this.#awaiting.has(key) || this.#map.get(key) === best.text || this.#restores.has(key)) return
    this.#restores.set(key, setTimeout(() => {
      this.#restores.delete(key)
      const current = this.#best.get(key)
      if (this.#closed || current === undefined || this.#awaiting.has(key) || this.#map.get(key) === current.text) return
      this.#put(current)
    }, Math.random() * this.#restoreDelay))
  }

  /** Reports an entry that does not count in a protected room, at most MAX_SEAL_REPORTS per second. */
  #reportSeal (key: string, reason: string): void {
    const second = Math.floor(Date.now() / 1000)
    const budget = this.#sealReports
    if (budget.second !== second) {
      budget.second = second
      budget.count = 0
    }
    if (++budget.count > MAX_SEAL_REPORTS) return
    this.#report(new SessionStoreError(ErrorCodes.INVALID_REMOTE_ENTRY, `ignoring the entry under '${key}': ${reason}`, { key }))
  }

  /**
   * The valid entry now under each of `keys` (undefined: absent or invalid). What another peer
   * wrote that breaks the rules is reported, at most MAX_REPORTS times per call and then counted.
   */
  #read (keys: Iterable<string>, remote: boolean): Array<[string, Entry | undefined]> {
    const out: Array<[string, Entry | undefined]> = []
    let invalid = 0
    for (const key of keys) {
      if (!this.#map.has(key)) {
        out.push([key, undefined])
        continue
      }
      const raw = this.#map.get(key)
      const entry = (remote ? undefined : this.#ownWrite(key, raw)) ?? decodeEnvelope(key, raw, this.limits)
      if (typeof entry !== 'string') {
        // A protected peer's tombstone: the key is deleted.
        out.push([key, entry.deleted === true ? undefined : entry])
        continue
      }
      out.push([key, undefined])
      if (remote && ++invalid <= MAX_REPORTS) this.#report(new SessionStoreError(ErrorCodes.INVALID_REMOTE_ENTRY, `ignoring the entry '${key}' written by another peer: ${entry}`, { key }))
    }
    if (invalid > MAX_REPORTS) {
      this.#report(new SessionStoreError(ErrorCodes.INVALID_REMOTE_ENTRY, `ignoring ${invalid - MAX_REPORTS} more invalid entries written by other peers in the same update`))
    }
    return out
  }

  /** Tells `record` the current value and entry of `key`: its own copy. */
  #notify (record: ObserverRecord, key: string): void {
    const entry = recordOf(this.#visibility.visible.get(key))
    this.#call(() => record.fn(key, entry?.value, entry), key)
  }

  #assertKey (key: unknown): asserts key is string {
    if (typeof key !== 'string' || key.length === 0) {
      throw new SessionStoreError(ErrorCodes.INVALID_KEY, `keys are non-empty strings, got ${key === '' ? 'an empty string' : typeof key}`)
    }
    if (!isWellFormed(key)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'the key holds a lone surrogate, which UTF-8 cannot carry', { key })
    const bytes = utf8Length(key)
    if (bytes > this.limits.maxKeyBytes) {
      throw new SessionStoreError(ErrorCodes.INVALID_KEY, `the key is ${bytes} bytes, over the limit of ${this.limits.maxKeyBytes}`, { key })
    }
  }

  #assertOpen (): void {
    if (this.#closed) throw new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session store is not available: the session has been left')
  }

  /** Runs an application callback; what it throws is reported, never propagated into Yjs. */
  #call (fn: () => void, key: string): void {
    try {
      fn()
    } catch (err) {
      this.#report(new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a callback for '${key}' threw: ${String(err)}`, { key, cause: err }))
    }
  }

  #report (error: SessionStoreError): void {
    try {
      this.#onError(error)
    } catch {}
  }
}

const recordOf = (entry: Entry | undefined): StoreEntry | undefined => {
  if (entry === undefined) return undefined
  const user = (entry as Partial<Verified>).user || undefined
  const updatedBy: UpdatedBy = user === undefined ? { id: entry.by, metadata: cloneJson(entry.metadata) } : { id: entry.by, metadata: cloneJson(entry.metadata), user }
  return { value: cloneJson(entry.value), updatedBy, updatedAt: entry.at }
}

/**
 * Bounded history (src/PROTOCOL.md "Bounded history: epochs"): the room's documents, one per
 * epoch, and the moves between them. A Y.Map keeps a struct per overwrite forever; so when the
 * current epoch's history passes `compactAfter`, a peer moves the room to a fresh document seeded
 * with the store's live entries, and every peer follows to the greatest epoch it hears of.
 *
 * This peer holds its current epoch and the previous one, each replicated over its own view of
 * the room's connections (transport/epoch-link.ts): a peer that has not heard of a move yet still
 * writes to the previous one, and what it writes is carried into the current one (open rooms:
 * store/epochs.ts carries; protected rooms: the store's best entries and restore rule). The
 * store facade is moved to the current epoch's map (store.rebind), so its API does not change.
 */

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { decodeEnvelope } from './store/envelope.js'
import {
  applyCarries, ascending, compareEpochs, coverOf, FIRST_EPOCH, inherited, itemOf, laterThan, MAX_COVER, sameEpoch, SeenCover, seedId, structsOf, toCarry, writeSeed, writeOf,
  type Cover, type EpochId, type Latest, type Move
} from './store/epochs.js'
import type { Limits } from './store/limits.js'
import type { EpochControls } from './store/store.js'
import { Bridge } from './transport/bridge.js'
import { EpochView, outerOf, UNTAGGED } from './transport/epoch-link.js'
import { encodeEpochs, encodeMove, MESSAGE_EPOCH_DATA, MESSAGE_EPOCHS, MESSAGE_MOVE, readEpochData, readEpochs, readMove } from './transport/epoch-wire.js'
import type { Link, LinkConnection } from './transport/link.js'
import type { Replication } from './transport/replication.js'
import { MESSAGE_RATE } from './transport/admission.js'
import { createTokenBucket, type TokenBucket } from './transport/budgets.js'
import { LeanObservable, emitTo } from './events.js'
import type { ObservableV2 } from 'lib0/observable'

/**
 * The default history (structs beyond the live keys) after which a peer moves: about 2.5 MiB of
 * heap per peer at its peak (bench/history-room.ts). 0 would never start a move (a peer still
 * follows the moves of others).
 */
export const DEFAULT_COMPACT_AFTER = 10_000
/** A peer that did not write in the turn that passed `compactAfter` moves only past this many times it. */
const FALLBACK_FACTOR = 1.5
/** Moves a connection may send: a burst, then one per MOVE_REFILL ms; more are dropped unread. */
const MOVE_BURST = 64
const MOVE_REFILL = 1000
/** Moves this peer sends one connection: a burst, then one per MOVE_SEND_REFILL ms (below what a receiver takes). */
const MOVE_SEND_BURST = 32
const MOVE_SEND_REFILL = 2000

/** How long writes to an older epoch gather before they are carried (ms). */
const CARRY_DELAY = 50

/**
 * A room document: a Y.Doc whose events skip lib0's per-emit copies when nobody listens. Yjs emits
 * about six events per transaction, most with no listener here, and lib0's emit makes a Map and an
 * array for each: profiled, nearly a tenth of a live update's receive path. Listeners are still
 * called on a copy of the set, as lib0 does, so one that subscribes or unsubscribes is safe.
 */
type DocEvents = Y.Doc extends ObservableV2<infer Events> ? Events : never

class RoomDoc extends Y.Doc {
  /** Told, right after its body, of a transaction whose cleanup Yjs defers (see `transact`). */
  onDeferred: ((transaction: Y.Transaction) => void) | null = null

  override emit<NAME extends keyof DocEvents & string>(name: NAME, args: Parameters<DocEvents[NAME]>): void {
    emitTo(this._observers.get(name), args)
  }

  /**
   * A transaction begun in another's cleanup (a write made in an observer: the answer to a
   * remote write) has its body run at once, but Yjs cleans it up, and so emits its events, only
   * once the other's cleanup is over: the other's remaining observers, its garbage collection
   * and merges. `onDeferred` hears of it as soon as its body has run, so that its changes can be
   * sent before that work (replication's `sendEarly`).
   */
  override transact<T>(f: (transaction: Y.Transaction) => T, origin: unknown = null): T {
    if (this._transaction !== null || this._transactionCleanups.length === 0 || this.onDeferred === null) return super.transact(f, origin)
    let transaction: Y.Transaction | null = null
    const result = super.transact((begun) => {
      transaction = begun
      return f(begun)
    }, origin)
    if (transaction !== null) this.onDeferred(transaction)
    return result
  }
}

/** The epochs a peer holds: its current one and older ones that peers may still write to. */
export const HELD = 2

/** The origin of the transactions that seed an epoch and carry writes into it. */
export const MOVE_ORIGIN = Object.freeze({ source: 'move' as const })

export interface EpochsOptions {
  /** The room's connections (after the handshake). */
  link: Link
  root: string
  limits: Limits
  /** This peer's Yjs client id in every epoch's document. */
  clientId: number
  /** The replication of one epoch's document over its view. */
  replicate: (doc: Y.Doc, view: EpochView) => Replication
  /** Whether the room is protected (the store carries best entries across; no carries). */
  protected: boolean
  /** History after which this peer moves; 0 never. Default DEFAULT_COMPACT_AFTER. */
  compactAfter?: number | undefined
}

export interface EpochsEvents {
  /** A connection delivered its state of an epoch this peer holds (sync step 2). */
  synced: (event: { connection: LinkConnection }) => void
  /** A connection sent what this peer cannot accept; it was closed. */
  refused: (event: { connection: LinkConnection, reason: string }) => void
  /** This peer moved to `epoch` (`local`: it made the move), in `ms` of one turn. */
  moved: (event: { epoch: EpochId, from: EpochId, local: boolean, ms: number }) => void
}

interface Held {
  readonly move: Move
  readonly cover: Cover
  readonly doc: RoomDoc
  readonly view: EpochView
  replication: Replication | null
  /** Structs of the document (its items, overwritten ones included), as counted after the last turn that changed it. */
  structs: number
}

interface Remote {
  /** The epochs it holds, its current first (empty until it says, or when it holds nothing). */
  held: EpochId[]
  /** It said which epochs it holds (none: a joiner). */
  heard: boolean
  received: { tokens: number, at: number }
  sent: { tokens: number, at: number }
  /** A move or an announcement waiting for budget. */
  timer: ReturnType<typeof setTimeout> | undefined
  /** Send it this peer's epochs again when the timer fires (a move of its was dropped for budget). */
  reannounce: boolean
  /**
   * Its messages that no epoch's data plane counts (42, 43, and data this peer does not deliver:
   * of an epoch it does not hold, or not open with it): admission's message rate, so that they
   * are no way around it.
   */
  uncounted: TokenBucket
}

/** The epochs a remote holds for its data plane: one that holds nothing yet has epoch 0's (empty) document. */
const holdsOf = (remote: Remote): EpochId[] => remote.held.length === 0 ? [FIRST_EPOCH] : remote.held

const take = (bucket: { tokens: number, at: number }, burst: number, refill: number, now: number): boolean => {
  bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.at) / refill)
  bucket.at = now
  if (bucket.tokens < 1) return false
  bucket.tokens -= 1
  return true
}

export class Epochs extends LeanObservable<EpochsEvents> {
  readonly #options: EpochsOptions
  readonly #compactAfter: number
  /** The current epoch first, then the previous one. */
  #held: Held[]
  readonly #remotes = new Map<LinkConnection, Remote>()
  #store: EpochControls | null = null
  /** Every entry this peer has seen in any epoch's map, by key and writer (a move's cover). */
  readonly #seen = new SeenCover()
  /** Open rooms: per key, the latest write (or delete) this peer has seen in any held epoch (#enforce). */
  readonly #latest = new Map<string, Latest>()
  /** Keys an older held epoch took, to be carried (#carryLater). */
  readonly #toCarry = new Map<Held, Set<string>>()
  #carryTimer: ReturnType<typeof setTimeout> | undefined
  #bridge: Bridge
  #destroyed = false

  constructor (options: EpochsOptions) {
    super()
    this.#options = options
    this.#compactAfter = options.compactAfter ?? DEFAULT_COMPACT_AFTER
    const first: Move = { epoch: FIRST_EPOCH, parent: FIRST_EPOCH, cover: [], entries: [], seeded: true }
    const doc = new RoomDoc({ gc: true })
    doc.clientID = options.clientId
    const held = this.#hold(first, doc)
    this.#held = [held]
    this.#start(held)
    const { link } = options
    link.on('open', this.#onOpen)
    link.on('close', this.#onClose)
    link.on('message', this.#onMessage)
    for (const connection of link.connections) this.#onOpen({ connection })
    this.#bridge = new Bridge(link, () => this.replication.component())
  }

  /** The current epoch's document. */
  get doc (): Y.Doc {
    return this.#current.doc
  }

  get epoch (): EpochId {
    return this.#current.move.epoch
  }

  /** The epochs this peer holds, the current one first. */
  get held (): EpochId[] {
    return this.#held.map((held) => held.move.epoch)
  }

  /** The current epoch's replication. */
  get replication (): Replication {
    return this.#current.replication as Replication
  }

  get #current (): Held {
    return this.#held[0] as Held
  }

  /** Moves the store along with the epochs: from now on it is rebound at each move (StoreOptions.epochs). */
  attach (store: EpochControls): void {
    this.#store = store
  }

  /** Whether the current epoch's item of `client` under `key` holding `text` is a seed's or a carry (it names no writer). */
  inherited (client: number, key: string, text: unknown): boolean {
    const map = this.doc.getMap<unknown>(this.#options.root)
    return itemOf(map, key)?.client === client && map.get(key) === text && inherited(map, key)
  }

  /** The current epoch's barrier (locks' handoff): see Replication.catchUpWith. */
  async catchUpWith (remoteId: string, timeout: number): Promise<boolean> {
    return await this.replication.catchUpWith(remoteId, timeout)
  }

  /** Sends every neighbour a state check of each held epoch now (anti-entropy, as the periodic one does). */
  check (): void {
    for (const held of this.#held) held.replication?.check()
  }

  /** Moves the room now, whatever the history (tests; `compactAfter` decides otherwise). */
  move (): EpochId {
    this.#move()
    return this.epoch
  }

  override destroy (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    const { link } = this.#options
    link.off('open', this.#onOpen)
    link.off('close', this.#onClose)
    link.off('message', this.#onMessage)
    this.#bridge.destroy()
    for (const remote of this.#remotes.values()) clearTimeout(remote.timer)
    this.#remotes.clear()
    clearTimeout(this.#carryTimer)
    this.#toCarry.clear()
    for (const held of this.#held) this.#release(held)
    this.#held = []
    super.destroy()
  }

  /** An epoch's document, view and listeners; its replication starts with `#start`. */
  #hold (move: Move, doc: RoomDoc): Held {
    const held: Held = {
      move,
      cover: coverOf(move.cover),
      doc,
      view: new EpochView(move.epoch, () => this.#options.link.localId, () => this.#held[0] === held),
      replication: null,
      structs: 0
    }
    held.structs = structsOf(doc)
    // Counted once per turn that changed the document, after it, not at each transaction: a sum
    // over every client of the document (each carry is a client of its own), which a write's path
    // need not pay for.
    let counting = false
    let wrote = false
    doc.on('afterTransaction', (transaction: Y.Transaction) => {
      // This peer's own writes (not a sync, an update, a seed or a carry) make it the mover.
      if (transaction.local && transaction.origin !== MOVE_ORIGIN) wrote = true
      if (counting) return
      counting = true
      setTimeout(() => {
        counting = false
        const writer = wrote
        wrote = false
        // Only the current epoch's history decides a move.
        if (this.#held[0] !== held) return
        held.structs = structsOf(doc)
        this.#checkHistory(held, writer)
      }, 0)
    })
    const map = doc.getMap<unknown>(this.#options.root)
    for (const [key, text] of map.entries()) {
      const write = writeOf(text)
      if (write !== null) this.#seen.see(key, write)
      this.#note(key, text as string, write)
    }
    this.#seen.add(move.cover)
    // A deep observer: Yjs calls it after every observer of the map, the store's included, so an
    // app's callbacks (and the answers they write, sent at once: Replication.sendEarly) come
    // before this bookkeeping. Only the map's own event counts (admission refuses nested types).
    map.observeDeep((events) => {
      const event = events[0]?.target === map ? events[0] as Y.YMapEvent<unknown> : undefined
      if (event === undefined || !this.#held.includes(held)) return
      for (const key of event.keysChanged) {
        const text = map.get(key)
        const write = writeOf(text)
        if (write !== null) this.#seen.see(key, write)
        if (map.has(key)) this.#note(key, text as string, write)
        else this.#noteDelete(key, event.changes.keys.get(key)?.oldValue)
      }
      if (this.#held[0] !== held) {
        this.#carryLater(held, event.keysChanged)
        return
      }
      if (this.#options.protected) return
      this.#enforce(event.keysChanged, map)
      // The current epoch took a seed's or carry's entry for a key (concurrent carries resolved):
      // what an older epoch holds later than it is carried after it.
      if (event.transaction.origin === MOVE_ORIGIN || this.#held.length < 2) return
      const keys = Array.from(event.keysChanged).filter((key) => inherited(map, key))
      if (keys.length > 0) for (const older of this.#held.slice(1)) this.#carry(older, keys)
    })
    return held
  }

  /**
   * Carries what `held` (an older epoch) took under `keys` within CARRY_DELAY: a peer that still
   * writes to it writes many times before it hears of the move, and each carry is a client of its
   * own in the new epoch (every transaction's state vector counts them). Carried at once when the
   * epochs change (#carryPending before a move and before dropping the older ones).
   */
  #carryLater (held: Held, keys: Iterable<string>): void {
    let pending = this.#toCarry.get(held)
    if (pending === undefined) this.#toCarry.set(held, pending = new Set())
    for (const key of keys) pending.add(key)
    this.#carryTimer ??= setTimeout(() => this.#carryPending(), CARRY_DELAY)
  }

  #carryPending (): void {
    clearTimeout(this.#carryTimer)
    this.#carryTimer = undefined
    const pending = Array.from(this.#toCarry)
    this.#toCarry.clear()
    for (const [held, keys] of pending) {
      if (this.#held[0] === held || !this.#held.includes(held)) continue
      this.#carry(held, keys)
      this.#enforce(keys)
    }
  }

  /** Open rooms: `text`, what a held epoch's map now holds under `key`, is the key's latest if it is later than what was. */
  #note (key: string, text: string, write: { at: number } | null): void {
    if (this.#options.protected || write === null) return
    const seen = this.#latest.get(key)
    const candidate = { at: write.at, text }
    if (seen === undefined || laterThan(candidate, seen)) this.#latest.set(key, candidate)
  }

  /** Open rooms: `key` was deleted in a held epoch; when what it held was the key's latest, the delete is. */
  #noteDelete (key: string, old: unknown): void {
    if (this.#options.protected || typeof old !== 'string') return
    const write = writeOf(old)
    if (write !== null && this.#latest.get(key)?.text === old) this.#latest.set(key, { at: write.at, text: null })
  }

  /**
   * Open rooms: where the current epoch's map holds under a key a seed's or carry's entry earlier
   * than the latest write (or delete) this peer has seen under it, puts the latest back: carried
   * after that entry (a struct every peer in the same place makes alike), or the key deleted. So a
   * copy of an old write, carried by a peer that had not seen what overwrote it, never undoes a
   * write made after it (a write's `at` is above what it replaced: store.ts #clockFor); nor does
   * it bring back a key that was deleted after it. An original write of the epoch stands.
   * `map` is the current epoch's map, when the caller holds it.
   */
  #enforce (keys: Iterable<string>, map?: Y.Map<unknown>): void {
    if (this.#options.protected) return
    const current = this.#current
    const root = this.#options.root
    map ??= current.doc.getMap<unknown>(root)
    const carries: Array<[string, string, ReturnType<typeof itemOf> & object]> = []
    const deletes: string[] = []
    for (const key of keys) {
      const latest = this.#latest.get(key)
      if (latest === undefined || !inherited(map, key)) continue
      const text = map.get(key)
      const write = writeOf(text)
      if (write !== null && !laterThan(latest, { at: write.at, text: text as string })) continue
      const item = itemOf(map, key)
      if (item === undefined) continue
      if (latest.text === null) deletes.push(key)
      else carries.push([key, latest.text, item])
    }
    if (carries.length > 0) applyCarries(current.doc, root, current.move.epoch, carries, MOVE_ORIGIN)
    if (deletes.length > 0) current.doc.transact(() => { for (const key of deletes) map.delete(key) }, MOVE_ORIGIN)
  }

  #start (held: Held): void {
    const replication = this.#options.replicate(held.doc, held.view)
    // A state counts for availability when it is of the current epoch, from a peer whose current epoch it is too.
    replication.on('synced', (event) => {
      const remote = this.#remotes.get(outerOf(event.connection))
      const theirs = remote === undefined ? undefined : holdsOf(remote)[0]
      if (this.#held[0] === held && theirs !== undefined && sameEpoch(theirs, held.move.epoch)) this.emit('synced', [event])
    })
    replication.on('refused', (event) => this.emit('refused', [event]))
    held.replication = replication
    held.doc.onDeferred = (transaction) => replication.sendEarly(transaction)
  }

  #release (held: Held): void {
    held.replication?.destroy()
    held.view.destroy()
    held.doc.destroy()
  }

  /** After a turn that changed the current epoch (its structs counted): past the threshold, a move. */
  #checkHistory (held: Held, wrote: boolean): void {
    // The structs bound the history from above: the map's size (a walk over its keys) is counted only past the threshold.
    if (this.#compactAfter <= 0 || held.structs < this.#compactAfter) return
    const history = held.structs - held.doc.getMap(this.#options.root).size
    if (history < this.#compactAfter) return
    // A peer that wrote in the turn that took the history past the threshold moves: it has none of
    // its own writes in flight, so a room with one busy writer carries nothing (a move by an idle
    // peer has the writer's last batches carried, each carry a client of its own in the new epoch).
    if (!wrote && history < this.#compactAfter * FALLBACK_FACTOR) return
    this.#move()
  }

  /** Moves the room: the store's live entries seed the next epoch. */
  #move (): void {
    const current = this.#current
    const store = this.#store
    const entries = store === null ? [] : store.snapshot()
    const from = current.move.epoch
    const n = from.n + 1
    const cover = this.#seen.lines()
    this.#adopt({ epoch: { n, s: seedId(n, from, entries) }, parent: from, cover, entries, seeded: true }, true)
  }

  /** Makes `move`'s epoch the current one: seed, carries, replication, store; tells every connection. */
  #adopt (move: Move, local: boolean): void {
    const start = performance.now()
    this.#carryPending()
    const old = this.#held
    const from = this.epoch
    // A move without its seed comes to a peer that holds nothing: the seed comes with the sync.
    const doc = new RoomDoc({ gc: true })
    if (move.seeded) writeSeed(doc, move.epoch, this.#options.root, move.entries, MOVE_ORIGIN)
    doc.clientID = this.#options.clientId
    const held = this.#hold(move, doc)
    // The older ones it keeps: the greatest HELD - 1 of what it held, the rest dropped after carrying.
    const kept = [...old].sort((a, b) => compareEpochs(b.move.epoch, a.move.epoch)).slice(0, HELD - 1)
    this.#held = [held, ...kept]
    // What the held documents have that the new epoch lacks goes in before its data plane starts
    // (open rooms): from the newest, which holds what was carried from the others (their later
    // writes were carried as they came), so a value it overwrote is not carried from an older one.
    // A protected room's store is offered all of it once it reads the new epoch.
    const protectedRoom = this.#options.protected
    if (!protectedRoom) this.#carry(old[0] as Held)
    this.#start(held)
    this.#store?.rebind(doc.getMap(this.#options.root))
    if (protectedRoom) for (const previous of old) this.#carry(previous)
    else this.#enforce(Array.from(this.#latest.keys()))
    for (const dropped of old) if (!kept.includes(dropped)) this.#release(dropped)
    // Every neighbour in this epoch already (this peer was the last to move): the older ones go at once.
    this.#dropOlder()
    this.#announceToAll()
    this.emit('moved', [{ epoch: move.epoch, from, local, ms: performance.now() - start }])
  }

  /** Tells every connection the epochs this peer holds, and opens or closes its views by what it holds. */
  #announceToAll (): void {
    const announcement = encodeEpochs(this.#announced())
    for (const [connection, remote] of this.#remotes) {
      connection.send(announcement)
      this.#sync(connection, remote)
    }
  }

  /**
   * Carries what `held` (an older epoch) holds under `keys` that the current epoch lacks: in a
   * protected room, offered to the store as candidates for the best entry; in an open one, as
   * carries (store/epochs.ts).
   */
  #carry (held: Held, keys?: Iterable<string>): void {
    const current = this.#current
    const root = this.#options.root
    const map = held.doc.getMap<unknown>(root)
    if (this.#options.protected) {
      const store = this.#store
      if (store === null) return
      for (const key of keys ?? Array.from(map.keys())) store.offer(key, map.get(key))
      return
    }
    const carries = toCarry(held.doc, root, current.move.epoch, current.cover, current.doc.getMap(root), keys)
    if (carries.length > 0) applyCarries(current.doc, root, current.move.epoch, carries, MOVE_ORIGIN)
  }

  #onOpen = ({ connection }: { connection: LinkConnection }): void => {
    if (this.#destroyed || this.#remotes.has(connection)) return
    this.#remotes.set(connection, { held: [], heard: false, received: { tokens: MOVE_BURST, at: Date.now() }, sent: { tokens: MOVE_SEND_BURST, at: Date.now() }, timer: undefined, reannounce: false, uncounted: createTokenBucket(MESSAGE_RATE) })
    connection.send(encodeEpochs(this.#announced()))
  }

  /** Whether this peer holds nothing yet: only epoch 0, with nothing in it (a joiner). */
  get #fresh (): boolean {
    return this.#held.length === 1 && this.epoch.n === 0 && this.#current.doc.store.clients.size === 0
  }

  /** The epochs this peer tells others it holds: none while it is fresh, so it is sent moves without their seeds. */
  #announced (): EpochId[] {
    return this.#fresh ? [] : this.held
  }

  #onClose = ({ connection }: { connection: LinkConnection }): void => {
    const remote = this.#remotes.get(connection)
    if (remote === undefined) return
    clearTimeout(remote.timer)
    this.#remotes.delete(connection)
    for (const held of this.#held) held.view.close(connection)
    this.#dropSettled()
  }

  /**
   * Drops the older epochs once no neighbour can still write to them: every connection that said
   * which epochs it holds is in the current one (or a later one). A neighbour moves only after
   * carrying what it held, and one that has not spoken yet, or comes back later from an older
   * epoch, is sent the move and carries its own writes (src/PROTOCOL.md "Held documents"). So a
   * live room holds one epoch's history between moves, not two.
   */
  #dropSettled (): void {
    if (this.#dropOlder()) this.#announceToAll()
  }

  /** Drops the older epochs when no neighbour can still write to them (#dropSettled); whether it did. */
  #dropOlder (): boolean {
    if (this.#held.length < 2 || this.#destroyed) return false
    const current = this.epoch
    for (const remote of this.#remotes.values()) {
      const theirs = remote.heard ? remote.held[0] : undefined
      if (remote.heard && (theirs === undefined || compareEpochs(theirs, current) < 0)) return false
    }
    this.#carryPending()
    const [kept, ...dropped] = this.#held
    this.#held = [kept as Held]
    for (const older of dropped) this.#release(older)
    return true
  }

  #onMessage = ({ connection, message }: { connection: LinkConnection, message: Uint8Array }): void => {
    const remote = this.#remotes.get(connection)
    if (remote === undefined || this.#destroyed) return
    try {
      this.#receive(connection, remote, message)
    } catch (err) {
      this.#refuse(connection, `a message this peer cannot read (${(err as Error).message})`)
    }
  }

  #receive (connection: LinkConnection, remote: Remote, message: Uint8Array): void {
    const type = message[0] as number
    if (UNTAGGED.has(type)) {
      if (!this.#current.view.deliver(connection, message)) this.#count(remote)
      return
    }
    const decoder = decoding.createDecoder(message)
    decoding.readVarUint(decoder)
    if (type !== MESSAGE_EPOCH_DATA) this.#count(remote)
    switch (type) {
      case MESSAGE_EPOCHS: {
        const held = readEpochs(decoder)
        if (held === null) return this.#refuse(connection, 'a malformed epochs message')
        remote.held = held
        remote.heard = true
        this.#sync(connection, remote)
        this.#dropSettled()
        return
      }
      case MESSAGE_MOVE: {
        if (!take(remote.received, MOVE_BURST, MOVE_REFILL, Date.now())) {
          // Dropped unread; asked for again once the budget allows.
          remote.reannounce = true
          this.#later(connection, remote, MOVE_REFILL)
          return
        }
        const move = readMove(decoder, { maxCover: MAX_COVER, maxEntries: 4 * this.#options.limits.maxKeys })
        if (move === null) return this.#refuse(connection, 'a malformed move, or one over the bounds')
        const problem = this.#moveProblem(move)
        if (problem !== null) return this.#refuse(connection, problem)
        if (compareEpochs(move.epoch, this.epoch) <= 0) return
        if (!move.seeded && !this.#fresh) {
          // Written to since it asked: it needs the seed to carry its writes; it asks again.
          connection.send(encodeEpochs(this.#announced()))
          return
        }
        this.#adopt(move, false)
        return
      }
      case MESSAGE_EPOCH_DATA: {
        const data = readEpochData(decoder)
        if (data === null) return this.#refuse(connection, 'a malformed epoch data message')
        // Data of an epoch this peer no longer holds was in flight when it moved on: dropped.
        if (this.#held.find((held) => sameEpoch(held.move.epoch, data.epoch))?.view.deliver(connection, data.message) !== true) this.#count(remote)
        return
      }
      default:
        this.#refuse(connection, `unknown message type ${type}`)
    }
  }

  /** Counts a message no data plane counts; past admission's rate, the connection is refused (thrown: #onMessage). */
  #count (remote: Remote): void {
    if (!remote.uncounted.take()) throw new Error(`messages at a rate over ${MESSAGE_RATE.rate}/s`)
  }

  /** Why `move` is refused, or null (src/PROTOCOL.md "Admission" of epochs). */
  #moveProblem ({ epoch, parent, entries, seeded }: Move): string | null {
    if (epoch.n < 1 || epoch.n !== parent.n + 1 || !Number.isSafeInteger(epoch.n + 1)) return 'a move whose epoch numbers do not follow each other'
    if (!seeded) return null
    if (!ascending(entries)) return 'a move whose seed keys are not in ascending order'
    if (seedId(epoch.n, parent, entries) !== epoch.s) return 'a move whose seed id does not match its seed'
    for (const [key, text] of entries) {
      const entry = decodeEnvelope(key, text, this.#options.limits)
      if (typeof entry === 'string') return `a move whose seed entry '${key}' is invalid: ${entry}`
      if (this.#options.protected && entry.seal === undefined) return `a move whose seed entry '${key}' is not sealed, in a protected room`
    }
    return null
  }

  /** Opens or closes each held epoch's view for `connection` by what it holds; sends it a move if it is behind. */
  #sync (connection: LinkConnection, remote: Remote): void {
    const holds = holdsOf(remote)
    for (const held of this.#held) {
      if (holds.some((epoch) => sameEpoch(epoch, held.move.epoch))) held.view.open(connection)
      else held.view.close(connection)
    }
    if (!remote.heard) return
    const theirs = remote.held[0] ?? null
    if (theirs !== null && compareEpochs(theirs, this.epoch) >= 0) return
    if (this.epoch.n === 0) return
    // A peer that holds nothing gets the move without its seed (it syncs the document); others
    // need the seed, which only a peer that made or was sent it has.
    const move = this.#current.move
    if (theirs !== null && !move.seeded) return
    if (remote.timer === undefined && take(remote.sent, MOVE_SEND_BURST, MOVE_SEND_REFILL, Date.now())) {
      connection.send(encodeMove(theirs === null ? { ...move, entries: [], seeded: false } : move))
    } else {
      this.#later(connection, remote, MOVE_SEND_REFILL)
    }
  }

  /** Syncs `connection` again after `ms` (and re-announces, if asked): once, a pending timer stands. */
  #later (connection: LinkConnection, remote: Remote, ms: number): void {
    if (remote.timer !== undefined) return
    remote.timer = setTimeout(() => {
      remote.timer = undefined
      if (this.#destroyed || this.#remotes.get(connection) !== remote) return
      if (remote.reannounce) {
        remote.reannounce = false
        connection.send(encodeEpochs(this.#announced()))
      }
      this.#sync(connection, remote)
    }, ms)
  }

  #refuse (connection: LinkConnection, reason: string): void {
    connection.close()
    this.emit('refused', [{ connection, reason }])
  }
}

/**
 * The data plane: a room's Y.Doc and Awareness replicated over the connections of a Link.
 *
 * Every remote has passed the handshake (authenticated-link.ts), so every remote speaks this
 * data plane (src/PROTOCOL.md, "Messages"). Towards each, this peer
 * - syncs in Yjs's V2 encoding on a new connection (a joiner receives the live data, not the
 *   history's metadata: sync-v2.ts);
 * - sends live updates per turn: everything written in one event-loop turn goes out as one
 *   message per connection, the turn's state diff (coalescer.ts, sync-v2.ts `encodeDiffMessage`);
 * - forwards what a neighbour sent only to the peers that neighbour is not connected to
 *   (relay.ts): a write costs N-1 messages in a full mesh, and still crosses a partial one;
 * - checks now and then that they hold the same state (anti-entropy), and repairs what a lost
 *   message left out.
 * Awareness is not relayed: each peer sends its own state to its neighbours (impersonation.ts).
 *
 * Every message this peer sends passes `#send`, and every message it receives passes `#receive`,
 * with the connection known: the one place where message hooks see, transform or drop them.
 * A message that cannot be read closes its connection and is reported (`refused`); nothing a
 * remote sends can throw out of here.
 */

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as awarenessProtocol from 'y-protocols/awareness'
import { Bridge, type BridgeOptions } from './bridge.js'
import { Coalescer, type Schedule } from './coalescer.js'
import type { Link, LinkConnection } from './link.js'
import { encodeNeighbors, readNeighbors, shouldForward, Topology, type Component } from './relay.js'
import { LeanObservable } from '../events.js'
import {
  MESSAGE_NEIGHBORS, MESSAGE_REPAIR_V2, MESSAGE_STATE_CHECK, MESSAGE_SYNC_STEP1_V2, MESSAGE_SYNC_STEP2_V2, MESSAGE_UPDATE,
  CHECK_REPLY, CHECK_URGENT, addDeletions, digestOf, encodeBytesMessage, encodeDiffMessage, encodeStateCheck, encodeSyncStep1V2,
  encodeSyncStep2V2, lacking, readBytes, readStateCheck, stillLacking, type DeleteDigest, type DeleteSet,
  MESSAGE_BARRIER, MESSAGE_BARRIER_ACK
} from './sync-v2.js'

/** The message types on a connection that keep y-webrtc's numbering. */
export const MESSAGE_AWARENESS = 1
export const MESSAGE_QUERY_AWARENESS = 3
/** y-webrtc's BroadcastChannel peer-id message; never meaningful on a connection, and ignored. */
export const MESSAGE_BC_PEER_ID = 4

/** Anti-entropy: how often each connection's state is checked, in ms (jittered by ±25 %). */
export const DEFAULT_ANTI_ENTROPY_INTERVAL = 10_000
/** A connection's collected updates are sent before they pass this many Yjs clock units (entries). */
export const DEFAULT_MAX_BATCH_UNITS = 200

/** The origin of transactions that apply what a connection sent (hocuspocus-style tagged origin). */
export interface RemoteOrigin {
  readonly source: 'remote'
  readonly connection: LinkConnection
  /** True when it applies a state sync or a repair (what the peer held), false for live updates. */
  readonly sync: boolean
}

/**
 * Sees every message on its way out or in. Returning null drops it; returning another message
 * replaces it. Hooks run in order; a hook that throws drops the message and closes the connection.
 */
export interface MessageHook {
  outgoing?: (connection: LinkConnection, message: Uint8Array) => Uint8Array | null
  incoming?: (connection: LinkConnection, message: Uint8Array) => Uint8Array | null
  /** Called after a document update from `connection` was applied; throwing refuses the connection. */
  afterApply?: (connection: LinkConnection) => void
}

export interface ReplicationEvents {
  /** A connection sent its whole state (sync step 2). */
  synced: (event: { connection: LinkConnection }) => void
  /** A connection sent what this peer cannot process; it was closed. */
  refused: (event: { connection: LinkConnection, reason: string }) => void
}

export interface ReplicationOptions {
  hooks?: MessageHook[]
  /** When collected updates go out. Default: at the end of the event-loop turn (coalescer.ts). */
  schedule?: Schedule
  /** A connection's collected updates are sent before they pass this many clock units. Default 200. */
  maxBatchUnits?: number
  /** Milliseconds between state checks of each connection; 0 turns them off. Default 10 s. */
  antiEntropyInterval?: number
  /** The bridge that joins the pieces of a partial mesh (bridge.ts); false for none. */
  bridge?: BridgeOptions | false
}

interface Remote {
  readonly connection: LinkConnection
  readonly live: RemoteOrigin
  readonly syncing: RemoteOrigin
  /** The peers it is directly connected to, from its own neighbour list; null until it sends one. */
  neighbors: Set<string> | null
  /** Anti-entropy: what it lacked at its previous check, and whether the digests differed. */
  lackedBefore: Map<number, number>
  digestDiffered: boolean
}

/** What one transaction added: the clock each changed client started at, and its deletions. */
interface Change {
  from: Map<number, number>
  deleteSet: DeleteSet
  units: number
}

export class Replication extends LeanObservable<ReplicationEvents> {
  readonly #doc: Y.Doc
  readonly #awareness: awarenessProtocol.Awareness
  readonly #link: Link
  readonly #hooks: MessageHook[]
  readonly #remotes = new Map<LinkConnection, Remote>()
  #barriers = 0
  readonly #awaitingBarriers = new Map<number, { connection: LinkConnection, done: (ok: boolean) => void }>()
  readonly #coalescer: Coalescer<Remote, Change>
  readonly #digest: DeleteDigest
  readonly #topology = new Topology()
  readonly #bridge: Bridge | null
  #antiEntropy: ReturnType<typeof setTimeout> | null = null
  /** The last batch encoded, reused while the next connection was collected the same changes. */
  #lastBatch: { items: Change[], message: Uint8Array } | null = null
  /** Local transactions sent before their cleanup (`sendEarly`). */
  readonly #sentEarly = new WeakSet<Y.Transaction>()
  #destroyed = false

  constructor (doc: Y.Doc, awareness: awarenessProtocol.Awareness, link: Link, options: ReplicationOptions = {}) {
    super()
    const { hooks = [], schedule, maxBatchUnits = DEFAULT_MAX_BATCH_UNITS, antiEntropyInterval = DEFAULT_ANTI_ENTROPY_INTERVAL, bridge = {} } = options
    this.#doc = doc
    this.#awareness = awareness
    this.#link = link
    this.#hooks = hooks
    this.#digest = digestOf(doc)
    this.#coalescer = new Coalescer<Remote, Change>({
      send: this.#sendBatch,
      units: (change) => change.units,
      maxUnits: maxBatchUnits,
      ...(schedule === undefined ? {} : { schedule })
    })
    link.on('open', this.#onOpen)
    link.on('close', this.#onClose)
    link.on('message', this.#onMessage)
    // Before the transaction's observers (Yjs has its delete set sorted and its state vector by
    // then): a lone write leaves before the store's own observers and Yjs's cleanup run.
    doc.on('beforeObserverCalls', this.#onTransaction)
    awareness.on('update', this.#onAwarenessUpdate)
    for (const connection of link.connections) this.#onOpen({ connection })
    this.#bridge = bridge === false ? null : new Bridge(link, () => this.component(), bridge)
    if (antiEntropyInterval > 0) {
      const tick = (): void => {
        if (this.#destroyed) return
        this.#checkAll()
        this.#antiEntropy = setTimeout(tick, jitter(antiEntropyInterval))
        unref(this.#antiEntropy)
      }
      this.#antiEntropy = setTimeout(tick, jitter(antiEntropyInterval))
      unref(this.#antiEntropy)
    }
  }

  /** The origin of transactions applying the live updates `connection` sent. */
  originOf (connection: LinkConnection): RemoteOrigin {
    return this.#remotes.get(connection)?.live ?? Object.freeze({ source: 'remote' as const, connection, sync: false })
  }

  /** The peers this peer reaches through the mesh, as the neighbour lists tell (bridge.ts). */
  component (): Component {
    return this.#topology.component(this.#link.localId, this.#neighborIds())
  }

  /** Asks every connection for what this peer lacks (sync step 1 to each). */
  resync (): void {
    const step1 = encodeSyncStep1V2(this.#doc)
    for (const remote of this.#remotes.values()) this.#send(remote.connection, step1)
  }

  /**
   * Resolves true once everything peer `remoteId` sent this peer before it read a barrier sent now
   * has arrived (it flushes its pending writes, then answers; a data channel is ordered). False
   * when there is no open connection to it or no answer within `timeout` ms. The lock handoff uses
   * it, so that the previous holder's last write is here before the next holder reads.
   */
  async catchUpWith (remoteId: string, timeout: number): Promise<boolean> {
    const remote = Array.from(this.#remotes.values()).find((r) => r.connection.remoteId === remoteId)
    if (remote === undefined) return false
    const nonce = ++this.#barriers
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), timeout)
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        this.#awaitingBarriers.delete(nonce)
        resolve(ok)
      }
      this.#awaitingBarriers.set(nonce, { connection: remote.connection, done })
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_BARRIER)
      encoding.writeVarUint(encoder, nonce)
      this.#send(remote.connection, encoding.toUint8Array(encoder))
    })
  }

  /** Sends every collected update now. */
  flush (): void {
    this.#coalescer.flush()
  }

  /** Sends every neighbour a state check now, as the periodic anti-entropy does. */
  check (): void {
    this.#checkAll()
  }

  /**
   * Stops replicating, after sending what was collected: a write made just before leaving still
   * goes out. The link and the document are left as they are.
   */
  override destroy (): void {
    if (this.#destroyed) return
    this.#coalescer.flush()
    this.#destroyed = true
    if (this.#antiEntropy !== null) clearTimeout(this.#antiEntropy)
    this.#bridge?.destroy()
    this.#link.off('open', this.#onOpen)
    this.#link.off('close', this.#onClose)
    this.#link.off('message', this.#onMessage)
    this.#doc.off('beforeObserverCalls', this.#onTransaction)
    this.#awareness.off('update', this.#onAwarenessUpdate)
    for (const remote of this.#remotes.values()) this.#coalescer.drop(remote)
    this.#remotes.clear()
    super.destroy()
  }

  #onOpen = ({ connection }: { connection: LinkConnection }): void => {
    if (this.#remotes.has(connection) || this.#destroyed) return
    const remote: Remote = {
      connection,
      live: Object.freeze({ source: 'remote' as const, connection, sync: false }),
      syncing: Object.freeze({ source: 'remote' as const, connection, sync: true }),
      neighbors: null,
      lackedBefore: new Map(),
      digestDiffered: false
    }
    this.#remotes.set(connection, remote)
    // The new neighbour first (so every list names it), then what this peer knows of the mesh.
    this.#sendNeighbors(remote)
    this.#send(connection, encodeSyncStep1V2(this.#doc))
    if (this.#awareness.getLocalState() !== null) this.#send(connection, this.#awarenessMessage([this.#awareness.clientID]))
  }

  #onClose = ({ connection }: { connection: LinkConnection }): void => {
    const remote = this.#remotes.get(connection)
    if (remote === undefined) return
    this.#remotes.delete(connection)
    this.#coalescer.drop(remote)
    this.#sendNeighbors()
  }

  #isNeighbor (remoteId: string): boolean {
    for (const connection of this.#remotes.keys()) if (connection.remoteId === remoteId) return true
    return false
  }

  #neighborIds (): string[] {
    return Array.from(this.#remotes.keys(), (connection) => connection.remoteId)
  }

  /**
   * Tells every neighbour whom this peer is connected to now (a new list of its own); a new
   * neighbour `joined` also gets every list this peer knows of others.
   */
  #sendNeighbors (joined?: Remote): void {
    const own = this.#topology.own(this.#link.localId, this.#neighborIds())
    if (own === null) return
    const message = encodeNeighbors([own])
    for (const remote of this.#remotes.values()) {
      if (remote === joined) this.#send(remote.connection, encodeNeighbors(this.#topology.lists()))
      else this.#send(remote.connection, message)
    }
  }

  #onMessage = ({ connection, message }: { connection: LinkConnection, message: Uint8Array }): void => {
    const remote = this.#remotes.get(connection)
    if (remote === undefined || this.#destroyed) return
    let input: Uint8Array | null = message
    try {
      for (const hook of this.#hooks) {
        if (input === null) return
        if (hook.incoming !== undefined) input = hook.incoming(connection, input)
      }
      if (input === null) return
      this.#receive(remote, input)
    } catch (err) {
      this.#refuse(connection, `a message this peer cannot read (${(err as Error).message})`)
    }
  }

  /** Reads one message; throws on what cannot be read. */
  #receive (remote: Remote, message: Uint8Array): void {
    const decoder = decoding.createDecoder(message)
    const type = decoding.readVarUint(decoder)
    switch (type) {
      case MESSAGE_AWARENESS:
        awarenessProtocol.applyAwarenessUpdate(this.#awareness, decoding.readVarUint8Array(decoder), remote.live)
        return
      case MESSAGE_QUERY_AWARENESS:
        this.#send(remote.connection, this.#awarenessMessage([this.#awareness.clientID]))
        return
      case MESSAGE_BC_PEER_ID:
        return
      case MESSAGE_NEIGHBORS:
        this.#receiveNeighbors(remote, decoder)
        return
      case MESSAGE_SYNC_STEP1_V2: {
        const stateVector = readBytes(decoder)
        if (stateVector === null) throw new Error('a malformed sync step 1')
        this.#send(remote.connection, encodeSyncStep2V2(this.#doc, stateVector))
        return
      }
      case MESSAGE_SYNC_STEP2_V2:
      case MESSAGE_REPAIR_V2:
      case MESSAGE_UPDATE: {
        const update = readBytes(decoder)
        if (update === null) throw new Error('a malformed update message')
        if (type === MESSAGE_UPDATE) Y.applyUpdate(this.#doc, update, remote.live)
        else Y.applyUpdateV2(this.#doc, update, remote.syncing)
        for (const hook of this.#hooks) hook.afterApply?.(remote.connection)
        if (type === MESSAGE_SYNC_STEP2_V2) this.emit('synced', [{ connection: remote.connection }])
        return
      }
      case MESSAGE_STATE_CHECK:
        this.#receiveStateCheck(remote, decoder)
        return
      case MESSAGE_BARRIER: {
        const nonce = decoding.readVarUint(decoder)
        this.flush() // what this peer wrote before goes out first
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MESSAGE_BARRIER_ACK)
        encoding.writeVarUint(encoder, nonce)
        this.#send(remote.connection, encoding.toUint8Array(encoder))
        return
      }
      case MESSAGE_BARRIER_ACK: {
        const waiter = this.#awaitingBarriers.get(decoding.readVarUint(decoder))
        if (waiter?.connection === remote.connection) waiter.done(true)
        return
      }
      default:
        throw new Error(`unknown message type ${type}`)
    }
  }

  /**
   * A neighbour's lists: its own sets whom it is connected to (the relay rule reads only that
   * one); the others, relayed, are what it knows of the mesh (the bridge's component).
   */
  #receiveNeighbors (remote: Remote, decoder: decoding.Decoder): void {
    const lists = readNeighbors(decoder)
    if (lists === null) throw new Error('a malformed neighbour list')
    const fresh = []
    for (const list of lists) {
      if (list.origin === this.#link.localId) continue
      if (list.origin === remote.connection.remoteId) remote.neighbors = new Set(list.ids)
      else if (this.#isNeighbor(list.origin)) continue
      if (this.#topology.learn(list)) fresh.push(list)
    }
    if (fresh.length === 0) return
    let message: Uint8Array | null = null
    for (const other of this.#remotes.values()) {
      if (other === remote || !shouldForward(remote.connection.remoteId, remote.neighbors, other.connection.remoteId)) continue
      message ??= encodeNeighbors(fresh)
      this.#send(other.connection, message)
    }
  }

  /**
   * Anti-entropy. A check says what its sender holds; this peer sends what the sender lacks of
   * its own state when it lacked it at the previous check too (what is only in flight arrives in
   * between), or at once when the check is urgent (an answer to this peer's request).
   */
  #receiveStateCheck (remote: Remote, decoder: decoding.Decoder): void {
    const check = readStateCheck(decoder)
    if (check === null) throw new Error('a malformed state check')
    const behind = lacking(Y.decodeStateVector(Y.encodeStateVector(this.#doc)), check.stateVector)
    const digestDiffers = check.digest.count !== this.#digest.count || check.digest.sum !== this.#digest.sum
    const urgent = (check.flags & CHECK_URGENT) !== 0
    const repair = (behind.size > 0 && (urgent || stillLacking(remote.lackedBefore, check.stateVector))) ||
      (digestDiffers && (urgent || remote.digestDiffered))
    if (repair) {
      this.#send(remote.connection, encodeBytesMessage(MESSAGE_REPAIR_V2, Y.encodeStateAsUpdateV2(this.#doc, check.encodedStateVector)))
      remote.lackedBefore = new Map()
      remote.digestDiffered = false
    } else {
      remote.lackedBefore = behind
      remote.digestDiffered = digestDiffers
    }
    if ((check.flags & CHECK_REPLY) !== 0) this.#send(remote.connection, encodeStateCheck(this.#doc, this.#digest, CHECK_URGENT))
  }

  #checkAll (): void {
    const message = encodeStateCheck(this.#doc, this.#digest, 0)
    for (const remote of this.#remotes.values()) this.#send(remote.connection, message)
  }

  #send (connection: LinkConnection, message: Uint8Array): void {
    let output: Uint8Array | null = message
    try {
      for (const hook of this.#hooks) {
        if (output === null) return
        if (hook.outgoing !== undefined) output = hook.outgoing(connection, output)
      }
    } catch (err) {
      this.#refuse(connection, `an outgoing message hook threw (${(err as Error).message})`)
      return
    }
    // A connection that cannot send any more has closed, or is closing: its close event follows.
    if (output !== null) connection.send(output)
  }

  /** Sends one connection what the coalescer collected for it: one update, the changes' state diff. */
  #sendBatch = (remote: Remote, items: Change[]): void => {
    if (this.#remotes.get(remote.connection) !== remote) return
    const last = this.#lastBatch
    let message: Uint8Array
    if (last !== null && sameItems(last.items, items)) {
      message = last.message
    } else {
      message = encodeChanges(this.#doc, items)
      this.#lastBatch = { items, message }
    }
    this.#send(remote.connection, message)
  }

  /**
   * Sends what a local transaction changed before Yjs cleans it up: one begun in an observer of
   * another transaction waits for the end of that one's cleanup (epochs.ts, RoomDoc), and an
   * answer written in an observer would wait with it. Its changes are final once its body has
   * run: the structs past its state before (of this peer's client, or of a carry's), and its
   * delete set (sorted and merged later, in place; its ranges do not overlap). #onTransaction
   * skips it then.
   */
  sendEarly (transaction: Y.Transaction): void {
    if (this.#destroyed || !transaction.local || this.#sentEarly.has(transaction)) return
    // Yjs computes the state after only in the cleanup: read it off the store now.
    const store = this.#doc.store
    const change = changeOf(transaction, new Map(Array.from(store.clients.keys(), (client) => [client, Y.getState(store, client)])))
    if (change === null) return
    this.#sentEarly.add(transaction)
    this.#distribute(transaction, change)
  }

  /** After every transaction: what changed goes to the connections that are to get it. */
  #onTransaction = (transaction: Y.Transaction): void => {
    if (this.#sentEarly.has(transaction)) return
    const change = changeOf(transaction)
    if (change !== null) this.#distribute(transaction, change)
  }

  #distribute (transaction: Y.Transaction, change: Change): void {
    addDeletions(this.#digest, change.deleteSet)
    const origin: unknown = transaction.origin
    const from = this.#remoteOf(origin)
    if (from !== undefined && origin === from.syncing) {
      // What a sync brought goes on as a repair: the neighbours it is forwarded to are asked
      // for a check (answered urgently), which says what they lack.
      let request: Uint8Array | null = null
      for (const remote of this.#remotes.values()) {
        if (!this.#forwards(from, remote)) continue
        request ??= encodeStateCheck(this.#doc, this.#digest, CHECK_REPLY)
        this.#send(remote.connection, request)
      }
      return
    }
    for (const remote of this.#remotes.values()) {
      if (this.#forwards(from, remote)) this.#coalescer.push(remote, change)
    }
  }

  /** Whether what `from` sent (or this peer wrote, when undefined) goes to `remote`. */
  #forwards (from: Remote | undefined, remote: Remote): boolean {
    return from === undefined || (remote !== from && shouldForward(from.connection.remoteId, from.neighbors, remote.connection.remoteId))
  }

  /** Only this peer's own state goes out: each peer hears its neighbours from them (impersonation.ts). */
  #onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
    const own = this.#awareness.clientID
    if (!added.includes(own) && !updated.includes(own) && !removed.includes(own)) return
    const from = this.#remoteOf(origin)
    let message: Uint8Array | null = null
    for (const remote of this.#remotes.values()) {
      if (remote === from) continue
      message ??= this.#awarenessMessage([own])
      this.#send(remote.connection, message)
    }
  }

  /** The connection a transaction origin names, if it is one of this data plane's. */
  #remoteOf (origin: unknown): Remote | undefined {
    const connection = (origin as Partial<RemoteOrigin> | null)?.connection
    if (connection === undefined) return undefined
    const remote = this.#remotes.get(connection)
    return remote !== undefined && (origin === remote.live || origin === remote.syncing) ? remote : undefined
  }

  #awarenessMessage (clients: number[]): Uint8Array {
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_AWARENESS)
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(this.#awareness, clients))
    return encoding.toUint8Array(encoder)
  }

  #refuse (connection: LinkConnection, reason: string): void {
    connection.close()
    this.emit('refused', [{ connection, reason }])
  }
}

/**
 * What a transaction changed, or null when nothing (Yjs would emit no update for it), given the
 * document's state after it (Yjs's `afterState`, once it has been cleaned up).
 */
const changeOf = (transaction: Y.Transaction, afterState: ReadonlyMap<number, number> = transaction.afterState): Change | null => {
  const from = new Map<number, number>()
  let units = 0
  for (const [client, clock] of afterState) {
    const before = transaction.beforeState.get(client) ?? 0
    if (before !== clock) {
      from.set(client, before)
      units += clock - before
    }
  }
  const deleteSet = transaction.deleteSet as unknown as DeleteSet
  if (from.size === 0 && deleteSet.clients.size === 0) return null
  return { from, deleteSet, units: Math.max(1, units) }
}

/**
 * The update message for several changes: the state diff of the document since the first of
 * them, for the clients they changed, with their deletions (Y.mergeDeleteSets). Unlike
 * Y.mergeUpdates of their updates, what a later change overwrote is written as deleted, so a turn
 * that overwrote the same keys a thousand times carries each key once, within admission's
 * per-update bounds.
 */
const encodeChanges = (doc: Y.Doc, changes: Change[]): Uint8Array => {
  if (changes.length === 1) {
    const only = changes[0] as Change
    return encodeDiffMessage(MESSAGE_UPDATE, doc, only.from, only.deleteSet)
  }
  const from = new Map<number, number>()
  for (const change of changes) {
    for (const [client, clock] of change.from) {
      const known = from.get(client)
      if (known === undefined || clock < known) from.set(client, clock)
    }
  }
  const deleteSet = Y.mergeDeleteSets(changes.map((change) => change.deleteSet) as never) as unknown as DeleteSet
  return encodeDiffMessage(MESSAGE_UPDATE, doc, from, deleteSet)
}

const sameItems = <T>(a: T[], b: T[]): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const jitter = (ms: number): number => ms * (0.75 + Math.random() / 2)

const unref = (timer: unknown): void => {
  (timer as { unref?: () => void } | null)?.unref?.()
}

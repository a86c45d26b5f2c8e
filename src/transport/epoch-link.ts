/**
 * One epoch's view of the room's connections: a Link for that epoch's Replication, whose
 * connections are the room's connections to the peers that also hold the epoch (src/PROTOCOL.md
 * "Bounded history: epochs"). What the replication sends goes out as epoch data (44) tagged with
 * the epoch; what arrives tagged with it is handed in here by epochs.ts. Awareness and barriers
 * (1, 3, 4, 39, 40) are the room's, not an epoch's: they go out untagged, and only from the
 * current epoch's replication.
 */

import type { EpochId } from '../store/epochs.js'
import { encodeEpochData } from './epoch-wire.js'
import type { LinkConnection, LinkEvents } from './link.js'
import { MESSAGE_BARRIER, MESSAGE_BARRIER_ACK, MESSAGE_SYNC_STEP2_V2, MESSAGE_UPDATE } from './sync-v2.js'
import { LeanObservable } from '../events.js'

/** Message types that belong to the room's connection, not to one epoch's document. */
export const UNTAGGED: ReadonlySet<number> = new Set([1, 3, 4, MESSAGE_BARRIER, MESSAGE_BARRIER_ACK])

class EpochConnection implements LinkConnection {
  #closed = false
  /** This peer answered the remote's sync step 1 on this view: its live updates may follow. */
  #answered = false
  readonly remoteId: string
  readonly binding: { readonly local: string, readonly remote: string }
  /** The Yjs client id the room's connection is bound to (impersonation rules read it). */
  readonly client: number | undefined

  constructor (readonly view: EpochView, readonly outer: LinkConnection) {
    this.remoteId = outer.remoteId
    this.binding = outer.binding
    this.client = (outer as { client?: number }).client
  }

  get writable (): boolean {
    return !this.#closed && this.outer.writable
  }

  send (message: Uint8Array): boolean {
    if (this.#closed) return false
    const type = message[0] as number
    if (UNTAGGED.has(type)) return this.view.current() ? this.outer.send(message) : false
    // A live update before this peer's sync step 2 would start past what the remote has of its
    // writers (admission refuses the gap); the step 2 carries all of it, so it is not sent.
    if (type === MESSAGE_UPDATE && !this.#answered) return true
    if (type === MESSAGE_SYNC_STEP2_V2) this.#answered = true
    return this.outer.send(encodeEpochData(this.view.epoch, message))
  }

  /** The replication closes a connection that sent what it cannot accept: the room's connection. */
  close (): void {
    this.outer.close()
  }

  detach (): void {
    this.#closed = true
  }
}

/** The room's connection behind a view's connection (itself for any other). */
export const outerOf = (connection: LinkConnection): LinkConnection => connection instanceof EpochConnection ? connection.outer : connection

export class EpochView extends LeanObservable<Pick<LinkEvents, 'open' | 'close' | 'message'>> {
  readonly #connections = new Map<LinkConnection, EpochConnection>()

  constructor (readonly epoch: EpochId, readonly localIdOf: () => string | undefined, readonly current: () => boolean) {
    super()
  }

  get localId (): string | undefined {
    return this.localIdOf()
  }

  get connections (): LinkConnection[] {
    return Array.from(this.#connections.values())
  }

  /** The view's connection for the room's connection `outer`, if the remote holds this epoch. */
  viewOf (outer: LinkConnection | undefined): LinkConnection | undefined {
    return outer === undefined ? undefined : this.#connections.get(outer)
  }

  has (outer: LinkConnection): boolean {
    return this.#connections.has(outer)
  }

  open (outer: LinkConnection): void {
    if (this.#connections.has(outer)) return
    const connection = new EpochConnection(this, outer)
    this.#connections.set(outer, connection)
    this.emit('open', [{ connection }])
  }

  close (outer: LinkConnection): void {
    const connection = this.#connections.get(outer)
    if (connection === undefined) return
    this.#connections.delete(outer)
    connection.detach()
    this.emit('close', [{ connection }])
  }

  /** Hands in a message of this epoch from `outer`; false when the remote is not in this view. */
  deliver (outer: LinkConnection, message: Uint8Array): boolean {
    const connection = this.#connections.get(outer)
    if (connection === undefined) return false
    this.emit('message', [{ connection, message }])
    return true
  }

  override destroy (): void {
    for (const outer of Array.from(this.#connections.keys())) this.close(outer)
    super.destroy()
  }
}

/**
 * The data plane: a room's Y.Doc and Awareness replicated over the connections of a Link.
 *
 * Messages are y-protocols' sync and awareness messages, each behind a varuint message type, as
 * y-webrtc frames them (src/PROTOCOL.md). On every new connection this peer sends sync step 1 and
 * the awareness states it knows; step 1 is answered with step 2; each document or awareness
 * update is sent to every connection but the one it came from, which is how updates cross a
 * partial mesh.
 *
 * Every message this peer sends passes `#send`, and every message it receives passes `#receive`,
 * with the connection known: the one place where message hooks see, transform or drop them.
 * A message that cannot be read closes its connection and is reported (`refused`); nothing a
 * remote sends can throw out of here.
 */

import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { ObservableV2 } from 'lib0/observable'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import type { Link, LinkConnection } from './link.js'

/** The message types on a connection (y-webrtc's numbering). */
export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_QUERY_AWARENESS = 3
/** y-webrtc's BroadcastChannel peer-id message; never meaningful on a connection, and ignored. */
export const MESSAGE_BC_PEER_ID = 4

/** The origin of transactions that apply what a connection sent (hocuspocus-style tagged origin). */
export interface RemoteOrigin {
  readonly source: 'remote'
  readonly connection: LinkConnection
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
}

export class Replication extends ObservableV2<ReplicationEvents> {
  readonly #doc: Y.Doc
  readonly #awareness: awarenessProtocol.Awareness
  readonly #link: Link
  readonly #hooks: MessageHook[]
  readonly #origins = new WeakMap<LinkConnection, RemoteOrigin>()
  #destroyed = false

  constructor (doc: Y.Doc, awareness: awarenessProtocol.Awareness, link: Link, { hooks = [] }: ReplicationOptions = {}) {
    super()
    this.#doc = doc
    this.#awareness = awareness
    this.#link = link
    this.#hooks = hooks
    link.on('open', this.#onOpen)
    link.on('message', this.#onMessage)
    doc.on('update', this.#onDocUpdate)
    awareness.on('update', this.#onAwarenessUpdate)
    for (const connection of link.connections) this.#onOpen({ connection })
  }

  /** The origin of transactions applying what `connection` sent. */
  originOf (connection: LinkConnection): RemoteOrigin {
    let origin = this.#origins.get(connection)
    if (origin === undefined) this.#origins.set(connection, origin = Object.freeze({ source: 'remote' as const, connection }))
    return origin
  }

  /** Asks every connection for what this peer lacks (sync step 1 to each). */
  resync (): void {
    for (const connection of this.#link.connections) this.#onOpenSync(connection)
  }

  #onOpenSync (connection: LinkConnection): void {
    const sync = encoding.createEncoder()
    encoding.writeVarUint(sync, MESSAGE_SYNC)
    syncProtocol.writeSyncStep1(sync, this.#doc)
    this.#send(connection, encoding.toUint8Array(sync))
  }

  /** Stops replicating; the link and the document are left as they are. */
  override destroy (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#link.off('open', this.#onOpen)
    this.#link.off('message', this.#onMessage)
    this.#doc.off('update', this.#onDocUpdate)
    this.#awareness.off('update', this.#onAwarenessUpdate)
    super.destroy()
  }

  #onOpen = ({ connection }: { connection: LinkConnection }): void => {
    this.#onOpenSync(connection)
    if (this.#awareness.getLocalState() !== null) this.#send(connection, this.#awarenessMessage([this.#awareness.clientID]))
  }

  #onMessage = ({ connection, message }: { connection: LinkConnection, message: Uint8Array }): void => {
    let input: Uint8Array | null = message
    try {
      for (const hook of this.#hooks) {
        if (input === null) return
        if (hook.incoming !== undefined) input = hook.incoming(connection, input)
      }
      if (input === null) return
      this.#receive(connection, input)
    } catch (err) {
      this.#refuse(connection, `a message this peer cannot read (${(err as Error).message})`)
    }
  }

  /** Reads one message; throws on what cannot be read. */
  #receive (connection: LinkConnection, message: Uint8Array): void {
    const decoder = decoding.createDecoder(message)
    const type = decoding.readVarUint(decoder)
    switch (type) {
      case MESSAGE_SYNC: {
        // y-protocols' readSyncMessage, with the update applied here: its own catch would log
        // every unreadable update to the console instead of letting this peer refuse it.
        const syncType = decoding.readVarUint(decoder)
        switch (syncType) {
          case syncProtocol.messageYjsSyncStep1: {
            const reply = encoding.createEncoder()
            encoding.writeVarUint(reply, MESSAGE_SYNC)
            syncProtocol.readSyncStep1(decoder, reply, this.#doc)
            this.#send(connection, encoding.toUint8Array(reply))
            return
          }
          case syncProtocol.messageYjsSyncStep2:
          case syncProtocol.messageYjsUpdate:
            Y.applyUpdate(this.#doc, decoding.readVarUint8Array(decoder), this.originOf(connection))
            for (const hook of this.#hooks) hook.afterApply?.(connection)
            if (syncType === syncProtocol.messageYjsSyncStep2) this.emit('synced', [{ connection }])
            return
          default:
            throw new Error(`unknown sync message type ${syncType}`)
        }
      }
      case MESSAGE_AWARENESS:
        awarenessProtocol.applyAwarenessUpdate(this.#awareness, decoding.readVarUint8Array(decoder), this.originOf(connection))
        return
      case MESSAGE_QUERY_AWARENESS:
        this.#send(connection, this.#awarenessMessage([this.#awareness.clientID]))
        return
      case MESSAGE_BC_PEER_ID:
        return
      default:
        throw new Error(`unknown message type ${type}`)
    }
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

  #broadcast (message: Uint8Array, origin: unknown): void {
    const from = (origin as Partial<RemoteOrigin> | null)?.connection
    for (const connection of this.#link.connections) {
      if (connection !== from) this.#send(connection, message)
    }
  }

  #onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_SYNC)
    syncProtocol.writeUpdate(encoder, update)
    this.#broadcast(encoding.toUint8Array(encoder), origin)
  }

  /** Only this peer's own state goes out: each peer hears its neighbours from them (impersonation.ts). */
  #onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
    const own = this.#awareness.clientID
    if (added.includes(own) || updated.includes(own) || removed.includes(own)) this.#broadcast(this.#awarenessMessage([own]), origin)
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

/**
 * The connection handshake: a Link whose connections are bound to the identities that made them.
 *
 * When a connection of the inner link opens, each side first sends a HELLO: a JWS by its identity
 * over { v, room, from, to, binding: [its local, its remote], client }, where `binding` is the
 * pair of DTLS certificate fingerprints of this very connection as the sender sees it, and
 * `client` the sender's Yjs client id. The receiver checks that the signer is the peer id the
 * connection was set up for (`remoteId`, itself verified in signaling), that it is addressed to
 * this peer in this room, and that the fingerprints are this connection's, crossed. Only a peer
 * that holds the key of `remoteId` and terminates this DTLS session can pass, so no one can take a
 * connection meant for another peer: a forged offer leads nowhere, and a relay in the middle sees
 * other fingerprints on each side.
 *
 * Until both HELLOs are through, nothing else is delivered either way. A connection whose remote
 * starts with y-protocols' sync (a stock y-webrtc peer, which starts with sync step 1), sends a
 * HELLO that does not verify, claims a Yjs client id already bound to another connection (or this
 * peer's own), or sends no HELLO within HELLO_TIMEOUT, is closed and reported.
 *
 * Chromium can lose the first message the answering side sends on a fresh data channel (seen
 * under load, about once in 20 reloads: the HELLO sent, the messages behind it arriving, the
 * HELLO never). So a connection whose first message is another of this protocol's asks for the
 * HELLO again (HELLO_AGAIN), once, and holds what arrives meanwhile, as it does behind a HELLO
 * being checked; each side resends its HELLO when asked, at most MAX_HELLO_RESENDS times.
 */

import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { verifySigned, type Identity } from '../trust/identity.js'
import type { ConnectionInfo, Link, LinkConnection, LinkEvents, SignalingSource } from './link.js'
import { SESSION_CLIENTS } from '../store/epochs.js'
import { LeanObservable } from '../events.js'

/** The message type of the handshake (the data plane's are others: replication.ts, sync-v2.ts). */
export const MESSAGE_HELLO = 16
/** `[17]`: "your HELLO did not arrive first: send it again" (a lost first message). */
export const MESSAGE_HELLO_AGAIN = 17
/** y-protocols' sync message: what a stock y-webrtc peer sends first. */
const MESSAGE_YJS_SYNC = 0
/** How many times a side resends its HELLO when asked (a remote asking more gets nothing more). */
export const MAX_HELLO_RESENDS = 2
const HELLO_AGAIN = new Uint8Array([MESSAGE_HELLO_AGAIN])
/** Counted in `dropped` (nothing is dropped: the remote's HELLO was asked for again). */
const ASKED_AGAIN = 'first messages that were not the HELLO (lost in the channel?): the HELLO asked for again'
/** A connection whose remote has not completed the handshake by then is closed. */
export const HELLO_TIMEOUT = 5000
/**
 * The handshake's version, which is also the data plane's: 2 synced in V2, batched updates and
 * relayed by neighbour lists; 3 adds epochs (src/PROTOCOL.md). A peer of another version is
 * refused, with it said.
 */
export const HANDSHAKE_VERSION = 4
/** A session's Yjs client id is below 2^31: the ids above are seeds' and carries' (store/epochs.ts). */

/** A connection whose remote proved its identity; `client` is the Yjs client id it speaks as. */
export interface VerifiedConnection extends LinkConnection {
  readonly client: number
}

export interface HandshakeOptions {
  room: string
  identity: Promise<Identity>
  /** This peer's Yjs client id (read when a handshake starts). */
  clientId: () => number
  /** Default HELLO_TIMEOUT. */
  timeout?: number
}

/** Checks a HELLO's payload against this connection: null when it holds, else what is wrong. */
export const checkHello = (hello: Record<string, unknown> | null, expected: { room: string, from: string, to: string, binding: { local: string, remote: string }, ownClient: number }): string | null => {
  if (hello === null) return 'its handshake is not signed by the peer id the connection was made for'
  if (hello.v !== HANDSHAKE_VERSION) return `handshake version ${String(hello.v)} (this peer speaks ${HANDSHAKE_VERSION})`
  if (hello.room !== expected.room) return 'its handshake is for another room'
  if (hello.from !== expected.from || hello.to !== expected.to) return 'its handshake names other peers'
  const binding = hello.binding
  if (!Array.isArray(binding) || binding[0] !== expected.binding.remote || binding[1] !== expected.binding.local || expected.binding.local === '') {
    return 'its handshake was made for another connection (DTLS fingerprints differ)'
  }
  const client = hello.client
  if (!Number.isSafeInteger(client) || (client as number) < SESSION_CLIENTS || (client as number) >= 2 ** 32) return 'its Yjs client id is not an integer from 2^31 to 2^32 - 1'
  if (client === expected.ownClient) return 'it claims this peer\'s own Yjs client id'
  return null
}

interface Pending {
  timer: ReturnType<typeof setTimeout>
  sent: boolean
  /** The remote's HELLO arrived (and is being checked, or passed). */
  hello: boolean
  verified: Verified | null
  /** This side asked the remote for its HELLO again (its first message was another). */
  asked: boolean
  /** What arrived while the remote's HELLO was awaited (after asking) or checked: delivered once open. */
  queue: Uint8Array[]
  queued: number
}

/** What a remote may send behind its HELLO before it is checked; more closes the connection. */
const MAX_QUEUED_BYTES = 1024 * 1024

class Verified implements VerifiedConnection {
  constructor (readonly inner: LinkConnection, readonly client: number) {}
  get remoteId (): string { return this.inner.remoteId }
  get binding (): { local: string, remote: string } { return this.inner.binding }
  get writable (): boolean { return this.inner.writable }
  send (message: Uint8Array): boolean { return this.inner.send(message) }
  close (): void { this.inner.close() }
}

export class AuthenticatedLink extends LeanObservable<LinkEvents> implements Link {
  readonly #inner: Link
  readonly #options: HandshakeOptions
  readonly #pending = new Map<LinkConnection, Pending>()
  readonly #open = new Map<LinkConnection, Verified>()
  /** This side's HELLO on each connection, as sent, for a remote that asks for it again. */
  readonly #hellos = new WeakMap<LinkConnection, { hello: Uint8Array, resent: number }>()

  constructor (inner: Link, options: HandshakeOptions) {
    super()
    this.#inner = inner
    this.#options = options
    inner.on('open', this.#onOpen)
    inner.on('message', this.#onMessage)
    inner.on('close', this.#onClose)
    inner.on('signaling', (event) => this.emit('signaling', [event]))
    inner.on('count', (event) => this.emit('count', [event]))
    inner.on('heard', (event) => this.emit('heard', [event]))
    inner.on('denied', (event) => this.emit('denied', [event]))
    inner.on('refused', (event) => this.emit('refused', [event]))
    for (const connection of inner.connections) this.#onOpen({ connection })
  }

  readonly #dropped: Record<string, number> = {}

  get dropped (): Readonly<Record<string, number>> { return { ...this.#inner.dropped, ...this.#dropped } }
  /** Connections being set up below, or open and in their handshake. */
  get pending (): number { return this.#inner.pending + this.#pending.size }
  /** Of `pending`, the connections open below and still in their handshake. */
  get handshakes (): number { return this.#pending.size }
  get localId (): string | undefined { return this.#inner.localId }
  get arbiter (): Link['arbiter'] { return this.#inner.arbiter }
  get ready (): Promise<string> { return this.#inner.ready }
  get sources (): readonly SignalingSource[] { return this.#inner.sources }
  get connections (): VerifiedConnection[] { return Array.from(this.#open.values()) }
  probe (): void { this.#inner.probe() }
  announce (): void { this.#inner.announce() }
  connect (remoteId: string): void { this.#inner.connect(remoteId) }
  penalize (remoteId: string): void { this.#inner.penalize(remoteId) }
  setToken (token: string): void { this.#inner.setToken(token) }
  diagnostics (): ConnectionInfo[] { return this.#inner.diagnostics() }

  /** The verified connection speaking as Yjs client `client`, if any. */
  connectionOfClient (client: number): VerifiedConnection | undefined {
    for (const connection of this.#open.values()) if (connection.client === client) return connection
    return undefined
  }

  async leave (): Promise<void> {
    for (const pending of this.#pending.values()) clearTimeout(pending.timer)
    this.#pending.clear()
    await this.#inner.leave()
  }

  #onOpen = ({ connection }: { connection: LinkConnection }): void => {
    if (this.#pending.has(connection) || this.#open.has(connection)) return
    const pending: Pending = {
      timer: setTimeout(() => this.#refuse(connection, `no handshake within ${this.#options.timeout ?? HELLO_TIMEOUT} ms`), this.#options.timeout ?? HELLO_TIMEOUT),
      sent: false,
      hello: false,
      verified: null,
      asked: false,
      queue: [],
      queued: 0
    }
    this.#pending.set(connection, pending)
    void this.#sendHello(connection, pending)
  }

  async #sendHello (connection: LinkConnection, pending: Pending): Promise<void> {
    try {
      const identity = await this.#options.identity
      const jws = await identity.sign({
        v: HANDSHAKE_VERSION,
        room: this.#options.room,
        from: identity.id,
        to: connection.remoteId,
        binding: [connection.binding.local, connection.binding.remote],
        client: this.#options.clientId()
      })
      if (this.#pending.get(connection) !== pending) return
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_HELLO)
      encoding.writeVarString(encoder, jws)
      const hello = encoding.toUint8Array(encoder)
      this.#hellos.set(connection, { hello, resent: 0 })
      connection.send(hello)
      pending.sent = true
      this.#maybeOpen(connection, pending)
    } catch (err) {
      this.#refuse(connection, `could not sign the handshake (${String(err)})`)
    }
  }

  #onMessage = ({ connection, message }: { connection: LinkConnection, message: Uint8Array }): void => {
    if (message[0] === MESSAGE_HELLO_AGAIN && message.length === 1) {
      // Open or not (both first messages lost); nothing yet if this side's HELLO is not out.
      const sent = this.#hellos.get(connection)
      if (sent !== undefined && sent.resent++ < MAX_HELLO_RESENDS) connection.send(sent.hello)
      return
    }
    const open = this.#open.get(connection)
    if (open !== undefined) {
      // A HELLO sent again (the remote was asked for it more than once): nothing for the layers above.
      if (message[0] !== MESSAGE_HELLO) this.emit('message', [{ connection: open, message }])
      return
    }
    const pending = this.#pending.get(connection)
    if (pending === undefined) return
    if (!pending.hello) {
      if (message[0] === MESSAGE_HELLO) {
        pending.hello = true
        void this.#verifyHello(connection, pending, message)
        return
      }
      if (!pending.asked) {
        if (message[0] === MESSAGE_YJS_SYNC) {
          this.#refuse(connection, 'a message before its handshake (a stock y-webrtc peer, or an older y-session-store)')
          return
        }
        pending.asked = true
        this.#dropped[ASKED_AGAIN] = (this.#dropped[ASKED_AGAIN] ?? 0) + 1
        connection.send(HELLO_AGAIN)
      }
    } else if (message[0] === MESSAGE_HELLO) {
      this.#refuse(connection, 'a second handshake')
      return
    }
    pending.queued += message.length
    if (pending.queued > MAX_QUEUED_BYTES) {
      this.#refuse(connection, `over ${MAX_QUEUED_BYTES} bytes sent before its handshake was checked`)
      return
    }
    pending.queue.push(message)
  }

  async #verifyHello (connection: LinkConnection, pending: Pending, message: Uint8Array): Promise<void> {
    let jws: string
    try {
      const decoder = decoding.createDecoder(message)
      decoding.readVarUint(decoder)
      jws = decoding.readVarString(decoder)
    } catch {
      this.#refuse(connection, 'an unreadable handshake')
      return
    }
    const identity = await this.#options.identity
    const hello = await verifySigned(jws, connection.remoteId)
    if (this.#pending.get(connection) !== pending) return
    const problem = checkHello(hello, { room: this.#options.room, from: connection.remoteId, to: identity.id, binding: connection.binding, ownClient: this.#options.clientId() })
      ?? (this.connectionOfClient(hello?.client as number) !== undefined ? 'its Yjs client id is bound to another connection' : null)
    if (problem !== null) {
      this.#refuse(connection, problem)
      return
    }
    pending.verified = new Verified(connection, hello?.client as number)
    this.#maybeOpen(connection, pending)
  }

  /** Opens the connection to the layers above once this side's HELLO is out and the remote's checked. */
  #maybeOpen (connection: LinkConnection, pending: Pending): void {
    if (!pending.sent || pending.verified === null) return
    clearTimeout(pending.timer)
    this.#pending.delete(connection)
    const verified = pending.verified
    this.#open.set(connection, verified)
    this.emit('open', [{ connection: verified }])
    for (const message of pending.queue) {
      if (this.#open.get(connection) !== verified) return
      this.emit('message', [{ connection: verified, message }])
    }
  }

  #onClose = ({ connection }: { connection: LinkConnection }): void => {
    const pending = this.#pending.get(connection)
    if (pending !== undefined) {
      clearTimeout(pending.timer)
      this.#pending.delete(connection)
    }
    const open = this.#open.get(connection)
    if (open === undefined) return
    this.#open.delete(connection)
    this.emit('close', [{ connection: open }])
  }

  #refuse (connection: LinkConnection, reason: string): void {
    this.#dropped[reason] = (this.#dropped[reason] ?? 0) + 1
    const pending = this.#pending.get(connection)
    if (pending !== undefined) clearTimeout(pending.timer)
    this.#pending.delete(connection)
    this.#inner.penalize(connection.remoteId)
    connection.close()
    this.emit('refused', [{ reason: `closed a connection to ${connection.remoteId.slice(0, 12)}…: ${reason}`, connection }])
  }
}

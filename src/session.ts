/**
 * The room's lifecycle: joining (options validated before anything is made), the store becoming
 * available (availability.ts decides when), peers (peers.ts), and leaving. One Yjs document per
 * room, its map behind the store facade, replicated (transport/replication.ts) over a link to the
 * room's other peers (transport/y-webrtc-adapter.ts by default). This module knows nothing of
 * y-webrtc, simple-peer or WebRTC.
 */

import type { JWK } from 'jose'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { AvailabilityTracker, type AvailabilityState, type SyncState } from './availability.js'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { IsolatedObservable } from './events.js'
import { DEFAULT_JOIN_TIMEOUT, DEFAULT_SIGNALING, validateJoin, type JoinOptions } from './options.js'
import { METADATA_FIELD, metadataOf, PeerDirectory, SIGNALING_ID_FIELD, type Peer, type PeersChange } from './peers.js'
import type { Json } from './store/json.js'
import { resolveLimits } from './store/limits.js'
import { SessionStore } from './store/store.js'
import type { WrtcImplementation } from './transport/framed-wrtc.js'
import type { Attestation, ConnectionInfo, Link, LinkFactory } from './transport/link.js'
import type { AuthenticatedLink } from './transport/authenticated-link.js'
import { Epochs } from './epochs.js'
import { sessionClientId } from './store/epochs.js'
import { createStack } from './transport/stack.js'
import { TOKEN_NOTICE, TokenWatch } from './token.js'
import { createIdentity, type Identity } from './trust/identity.js'
import { RoomTokenVerifier } from './trust/room-token.js'
import { RoomAuthority, type Permissions } from './trust/signed-entry.js'
import { RoomLocks } from './locks/room-locks.js'

export type { Peer, PeersChange } from './peers.js'
export type { SyncState } from './availability.js'
export type { ConnectionInfo } from './transport/link.js'
export type { JoinOptions, AuthOptions } from './options.js'
export type { Permissions } from './trust/signed-entry.js'

export interface SessionStatus {
  /** Connected to at least one signaling server. */
  signaling: boolean
  /** Open connections to other peers (WebRTC data channels). */
  webrtcPeers: number
  available: boolean
  /**
   * How the store became available: 'pending' (not yet), 'alone' (the only peer in the room),
   * 'synced' (received a peer's state), 'peers-left' (the peers it waited for left), 'timeout'
   * (nothing arrived within joinTimeout: the store may be missing what others hold).
   */
  sync: SyncState
  /** The session has been left (or is leaving). */
  left: boolean
}

export interface SessionEvents {
  sessionStoreAvailable: (store: SessionStore) => void
  /** The access token expires soon (TOKEN_NOTICE before its `exp`): give a fresh one to `setToken`. */
  tokenExpiring: (event: { expiresAt: number }) => void
  /** A protected room: this peer's room token was verified (at join, and at each renewal). */
  permissions: (permissions: Permissions) => void
  /** A key's lock changed holder (store.lock): `holder` null when it ended; `released` then. */
  lock: (event: { key: string, holder: Peer | null, released: boolean }) => void
  peers: (change: PeersChange) => void
  status: (status: SessionStatus) => void
  error: (error: SessionStoreError) => void
}

/** What a runtime entry point wires in: the Node entry passes `@roamhq/wrtc`; tests pass a link. */
export interface Runtime {
  wrtc?: WrtcImplementation
  link?: LinkFactory
}

const STORE_MAP = 'session-store'
/** A protected room's `auth.token` that failed, or gave a token that cannot be used, is called again after this long (ms), doubling to TOKEN_RETRY_MAX. */
const TOKEN_RETRY = 2_000
const TOKEN_RETRY_MAX = 60_000

export class Session extends IsolatedObservable<SessionEvents> {
  readonly room: string
  /** Resolves the store once it is available; rejects with SIGNALING_UNAVAILABLE or NOT_AVAILABLE. */
  readonly sessionStore: Promise<SessionStore>
  readonly #store: SessionStore
  readonly #awareness: Awareness
  readonly #peers: PeerDirectory
  readonly #link: AuthenticatedLink
  /** The room's documents, one per epoch (epochs.ts): the store reads the current one's map. */
  readonly #epochs: Epochs
  /** Holds this peer's Yjs client id and the awareness, which outlive every epoch's document. */
  readonly #base: Y.Doc
  readonly #availability: AvailabilityTracker
  #resolveStore!: (store: SessionStore) => void
  #rejectStore!: (err: SessionStoreError) => void
  #constructed = false
  readonly #token = new TokenWatch((event) => {
    if (this.#leaving === null) this.#emit('tokenExpiring', event)
  })
  readonly #dropped: Record<string, number> = {}
  #leaving: Promise<void> | null = null
  #available = false
  readonly #authority: RoomAuthority | null = null
  readonly #locks: RoomLocks
  #renewal: ReturnType<typeof setTimeout> | undefined
  /** A protected room's first `auth.token` answer, adopted or refused, or joinTimeout: what availability also waits for. */
  #firstToken: Promise<void> = Promise.resolve()
  #firstTokenTimer: ReturnType<typeof setTimeout> | undefined
  /** How long after a failed `auth.token` (or an unusable token) it is called again: TOKEN_RETRY, doubling to TOKEN_RETRY_MAX. */
  #tokenRetry = TOKEN_RETRY

  constructor (room: string, options: JoinOptions = {}, runtime: Runtime = {}) {
    super()
    validateJoin(room, options)
    const { signaling = DEFAULT_SIGNALING, password, token, peerOpts = {}, maxConns, metadata = null, joinTimeout = DEFAULT_JOIN_TIMEOUT, turn, auth, compactAfter } = options
    const limits = resolveLimits(options.limits)
    const ownMetadata = metadataOf(metadata, limits.maxValueBytes)
    this.room = room
    this.#base = new Y.Doc()
    // At or above 2^31: the client ids below are seeds' and carries' (store/epochs.ts).
    this.#base.clientID = sessionClientId(this.#base.clientID)
    const clientId = this.#base.clientID
    const identity = createIdentity()
    // A protected room's first room token, also the signaling token when no other is given.
    let signalingToken: string | Promise<string | undefined> | undefined = token
    if (auth !== undefined) {
      this.#authority = new RoomAuthority({ room, identity, verifier: new RoomTokenVerifier(auth.issuer) })
      const first = this.#renewPermissions(auth.token, identity, token === undefined)
      signalingToken ??= first
      // The store waits for the first answer (within joinTimeout), so that canWrite is true for a host once it is available.
      this.#firstToken = new Promise<void>((resolve) => {
        this.#firstTokenTimer = setTimeout(resolve, joinTimeout)
        void first.then(() => { clearTimeout(this.#firstTokenTimer); resolve() })
      })
    }
    this.#locks = new RoomLocks({
      room,
      identity,
      channel: () => this.#link.arbiter,
      connections: () => this.#link.connections,
      token: () => this.#authority?.token ?? null,
      catchUpWith: async (remoteId, timeout) => await this.#epochs.catchUpWith(remoteId, timeout),
      onError: (err) => this.#emitError(err)
    })
    this.#locks.on('lock', ({ key, holder, released }) => {
      if (this.#leaving === null) this.#emit('lock', { key, holder: holder === null ? null : this.#peerOf(holder), released })
    })
    this.#awareness = new Awareness(this.#base)
    this.#peers = new PeerDirectory(this.#awareness, { maxMetadataBytes: limits.maxValueBytes, onChange: this.#onPeersChange })
    this.#awareness.setLocalState({ metadata: ownMetadata })
    const drop = (reason: string): void => { this.#dropped[reason] = (this.#dropped[reason] ?? 0) + 1 }
    const stack = createStack({
      room,
      identity,
      clientId,
      awareness: this.#awareness,
      root: STORE_MAP,
      limits,
      link: runtime.link,
      wrtc: runtime.wrtc,
      onDrop: drop,
      signaling,
      peerOpts,
      ...(password === undefined ? {} : { password }),
      ...(signalingToken === undefined ? {} : { token: signalingToken }),
      ...(maxConns === undefined ? {} : { maxConns }),
      ...(turn === undefined ? {} : { turn }),
      ...(this.#authority === null ? {} : { attestation: attestationOf(this.#authority) })
    })
    this.#link = stack.link
    this.#epochs = new Epochs({ link: stack.link, root: STORE_MAP, limits, clientId, replicate: stack.replicate, protected: this.#authority !== null, compactAfter })
    this.#store = new SessionStore(this.#epochs.doc.getMap(STORE_MAP), {
      limits,
      authority: this.#authority ?? undefined,
      locks: this.#locks,
      peerOf: (peerId) => this.#peerOf(peerId),
      onError: (err) => this.#emitError(err),
      inherited: (client, key, text) => this.#epochs.inherited(client, key, text),
      epochs: (controls) => this.#epochs.attach(controls),
      // Who writes: read at each write, so a rename shows in new entries.
      writer: () => ({ id: String(clientId), metadata: (this.#awareness.getLocalState()?.[METADATA_FIELD] ?? null) as Json })
    })
    this.sessionStore = new Promise((resolve, reject) => {
      this.#resolveStore = resolve
      this.#rejectStore = reject
    })
    this.sessionStore.catch(() => {}) // the rejection is also an 'error' event; callers may not await

    this.#availability = new AvailabilityTracker({ link: this.#link, replication: this.#epochs }, { joinTimeout, onDecided: this.#onDecided })
    this.#link.on('signaling', () => this.#emitStatus())
    this.#link.on('open', () => this.#emitStatus())
    this.#link.on('close', ({ connection }) => {
      this.#peers.forgetSignalingPeer(connection.remoteId)
      this.#emitStatus()
    })
    this.#link.on('refused', ({ reason }) => this.#emitError(new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, reason)))
    this.#link.on('denied', ({ source, code, reason }) => {
      const err = new SessionStoreError(ErrorCodes[code], `${source}: ${reason}`)
      // Before the store is available the join fails at once; after, the room goes on over the
      // connections it has, and the app may give a fresh token (setToken).
      if (!this.status.available) this.#fail(err)
      else this.#emitError(err)
    })
    if (token !== undefined) this.#token.watch(token)
    this.#epochs.on('refused', ({ connection, reason }) => {
      drop(reason)
      this.#link.penalize(connection.remoteId)
      this.#emitError(new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, `closed the connection to a peer that sent ${reason}`))
    })
    this.#link.ready.then((id) => {
      if (this.#leaving === null) this.#awareness.setLocalStateField(SIGNALING_ID_FIELD, id)
    }, (err: SessionStoreError) => this.#fail(err))
    this.#constructed = true
  }

  /**
   * Like ObservableV2's `on`; a `sessionStoreAvailable` listener added after the store became
   * available is still called (once, asynchronously), as the SDK's callback would be.
   */
  override on<E extends keyof SessionEvents>(name: E, listener: SessionEvents[E]): SessionEvents[E] {
    super.on(name, listener)
    if (name === 'sessionStoreAvailable' && this.status.available && this.#leaving === null) {
      queueMicrotask(() => {
        if (this._observers.get(name)?.has(listener) === true && !this.#store.closed) {
          (listener as SessionEvents['sessionStoreAvailable'])(this.#store)
        }
      })
    }
    return listener
  }

  /** The room's current document (its epoch's: it changes when the room moves, epochs.ts). */
  get doc (): Y.Doc {
    return this.#epochs.doc
  }

  /** The room's current epoch: its number and seed id (src/PROTOCOL.md "Bounded history: epochs"). */
  get epoch (): { n: number, s: number } {
    return this.#epochs.epoch
  }

  /**
   * The room's y-protocols awareness, for ephemeral per-peer state beyond metadata (cursors, say).
   * This library keeps `metadata` and `peerId` (the id in signaling) in each peer's state.
   */
  get awareness (): Awareness {
    return this.#awareness
  }

  /**
   * A protected room (`auth`): this peer's rights once its room token is verified, `{ user, write,
   * expiresAt }`; null before that, when the token could not be used (this peer is read-only),
   * and in open rooms.
   */
  get permissions (): Permissions | null {
    return this.#authority?.permissions ?? null
  }

  /** The peers in the room, this one included. */
  get peers (): Peer[] {
    return this.#peers.list
  }

  get status (): SessionStatus {
    const left = this.#leaving !== null
    return {
      signaling: !left && this.#link.sources.some((source) => source.connected),
      webrtcPeers: left ? 0 : this.#link.connections.length,
      available: this.#available,
      sync: this.#availability.state.sync,
      left
    }
  }

  /**
   * What this peer dropped or refused from others, by reason (counts since it joined), and the
   * connections being set up (pending: not open, or open and in their handshake; handshakes: of
   * those, the ones in their handshake, which only a peer that completed WebRTC can hold).
   */
  stats (): { dropped: Record<string, number>, pending: number, handshakes: number } {
    return { dropped: { ...this.#link.dropped, ...this.#dropped }, pending: this.#link.pending, handshakes: this.#link.handshakes }
  }

  /** The WebRTC connections of this session, for diagnostics (and for proving tests ran over WebRTC). */
  get connections (): ConnectionInfo[] {
    return this.#link.diagnostics()
  }

  /**
   * Uses `token` for the signaling servers from now on: the next connection attempt (at once if
   * the server refused the last one) carries it. Call it on `tokenExpiring`.
   */
  setToken (token: string): void {
    if (typeof token !== 'string' || token.length === 0) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'setToken takes a non-empty token')
    if (this.#leaving !== null) throw new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session has been left')
    this.#link.setToken(token)
    this.#token.watch(token)
  }

  /** Replaces this peer's metadata (JSON, at most `maxValueBytes`); the other peers see it. */
  setMetadata (metadata: Json): void {
    if (this.#leaving !== null) throw new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session has been left')
    this.#peers.setLocalMetadata(metadata)
  }

  /**
   * Leaves the room and releases it: resolves once `joinRoom` with the same name can succeed.
   * After it, store calls fail with NOT_AVAILABLE. Calling it again returns the same promise.
   */
  leave (): Promise<void> {
    this.#leaving ??= this.#release()
    return this.#leaving
  }

  async #release (): Promise<void> {
    this.#availability.stop()
    this.#token.stop()
    clearTimeout(this.#renewal)
    clearTimeout(this.#firstTokenTimer)
    this.#store.close()
    this.#locks.destroy()
    this.#rejectStore(new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session was left before the store became available'))
    this.#epochs.destroy()
    this.#peers.destroy()
    await this.#link.leave()
    this.#base.destroy()
    this.#emitStatus()
  }

  /**
   * Gets a room token from the app (`auth.token`), verifies and adopts it, and schedules the next
   * one TOKEN_NOTICE before it expires. Resolves the token, or undefined when it cannot be used
   * (reported as UNAUTHORIZED: this peer is read-only, with its previous token if it had one).
   */
  async #renewPermissions (fetchToken: (peerKey: JWK) => string | Promise<string>, identity: Promise<Identity>, forSignaling: boolean): Promise<string | undefined> {
    const authority = this.#authority as RoomAuthority
    try {
      const { publicJwk } = await identity
      const token = await fetchToken({ ...publicJwk })
      if (typeof token !== 'string' || token.length === 0) throw new Error('auth.token did not return a token')
      const permissions = await authority.adopt(token)
      if (this.#leaving !== null) return undefined
      if (forSignaling && this.#constructed) this.#link.setToken(token)
      this.#emit('permissions', permissions)
      this.#tokenRetry = TOKEN_RETRY
      this.#scheduleRenewal(fetchToken, identity, forSignaling, permissions.expiresAt - TOKEN_NOTICE - Date.now())
      return token
    } catch (err) {
      if (this.#leaving === null) {
        this.#emitError(new SessionStoreError(ErrorCodes.UNAUTHORIZED, `the room token cannot be used (${(err as Error).message}): this peer is read-only`, { cause: err }))
        // A backend that failed once (or a token refused while the issuer's key set was out of reach) may answer later.
        this.#scheduleRenewal(fetchToken, identity, forSignaling, this.#tokenRetry)
        this.#tokenRetry = Math.min(this.#tokenRetry * 2, TOKEN_RETRY_MAX)
      }
      return undefined
    }
  }

  #scheduleRenewal (fetchToken: (peerKey: JWK) => string | Promise<string>, identity: Promise<Identity>, forSignaling: boolean, delay: number): void {
    clearTimeout(this.#renewal)
    this.#renewal = setTimeout(() => { void this.#renewPermissions(fetchToken, identity, forSignaling) }, Math.min(Math.max(1000, delay), 2 ** 31 - 1))
  }

  /** The peer with signaling id `peerId`: this one, a neighbour (its connection's Yjs client), or one known by id only. */
  #peerOf (peerId: string): Peer {
    const list = this.#peers.list
    if (peerId === this.#link.localId) {
      const own = list.find((peer) => peer.local)
      if (own !== undefined) return own
    }
    const client = this.#link.connections.find((connection) => connection.remoteId === peerId)?.client
    return list.find((peer) => client !== undefined && peer.id === String(client)) ?? { id: peerId, metadata: null, local: false }
  }

  #onDecided = (state: AvailabilityState): void => {
    if (state.failed) {
      this.#fail(new SessionStoreError(ErrorCodes.SIGNALING_UNAVAILABLE, `no signaling server answered within the join timeout (${this.#link.sources.map((s) => s.id).join(', ')})`))
      return
    }
    const available = (): void => {
      if (this.#leaving !== null) return
      this.#available = true
      this.#resolveStore(this.#store)
      this.#emitStatus()
      this.#emit('sessionStoreAvailable', this.#store)
    }
    // A protected room's entries show once their seals are verified, and its rights once its first token is: wait for both.
    if (this.#store.protected) void Promise.all([this.#store.settled(), this.#firstToken]).then(available)
    else available()
  }

  /** The join cannot succeed: the store promise rejects, the error is reported, the room released. */
  #fail (err: SessionStoreError): void {
    if (this.#leaving !== null) return
    this.#rejectStore(err)
    this.#emitError(err)
    void this.leave()
  }

  #onPeersChange = (change: PeersChange): void => {
    // Changes made while joinRoom runs (this peer's own join) reach listeners added right after it.
    if (this.#constructed) this.#emit('peers', change)
    else queueMicrotask(() => this.#emit('peers', change))
  }

  #emitStatus (): void {
    this.#emit('status', this.status)
  }

  #emitError (error: SessionStoreError): void {
    this.#emit('error', error)
  }

  /** Emits an event; a listener that throws is reported as an 'error' event, never propagated. */
  #emit<E extends keyof SessionEvents>(name: E, payload: Parameters<SessionEvents[E]>[0]): void {
    this.emitIsolated(name, payload, (err) => {
      if (name !== 'error') this.#emitError(new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a '${name}' listener threw: ${String(err)}`, { cause: err }))
    })
  }
}

/** Signaling payloads of a protected room carry this peer's room token; others' are checked. */
const attestationOf = (authority: RoomAuthority): Attestation => ({
  current: () => authority.token,
  check: async (token, from) => await authority.checkPeer(token, from)
})

/** Joins `room` and returns its session; the store arrives with `sessionStoreAvailable`. */
export const joinRoom = (room: string, options: JoinOptions = {}, runtime: Runtime = {}): Session =>
  new Session(room, options, runtime)

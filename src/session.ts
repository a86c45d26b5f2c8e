/**
 * The room lifecycle: one Yjs document per room, synced peer-to-peer by y-webrtc, with the session
 * store facade over its map, peers from y-protocols awareness, and the availability rule of the
 * product page ("only available after join"), made precise:
 *
 * - the store becomes available when the local replica holds the room's current state: at once
 *   when the signaling server says this peer is the room's only subscriber, otherwise when a peer
 *   has sent its state (sync step 2);
 * - it never hangs: if the peers it waited for leave, or nothing arrives within `joinTimeout`, it
 *   becomes available with what it has, and `status.sync` says why;
 * - if no signaling server is reachable within `joinTimeout`, the session fails with
 *   SIGNALING_UNAVAILABLE and releases the room.
 */

import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'
import { Awareness } from 'y-protocols/awareness'
import { ObservableV2 } from 'lib0/observable'
import * as bc from 'lib0/broadcastchannel'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { createFramedWrtc, type WrtcImplementation } from './framing.js'
import { encodeValue, type Json } from './json.js'
import { utf8Length, type Limits } from './limits.js'
import { SessionStore } from './store.js'
import { encryptSignal, guardSignalingConn, type GuardedRoom } from './signal-guard.js'
import { followTurnCredentials, withSignalingIceServers } from './transport/turn.js'

export interface JoinOptions {
  /** Signaling server URLs. Default `['ws://localhost:4444']`. */
  signaling?: string[]
  /** y-webrtc's room password: encrypts signaling and BroadcastChannel traffic. Default none. */
  password?: string
  /** Appended to each signaling URL as `?token=`, for servers with access control. Default none. */
  token?: string
  /** Passed to simple-peer: `config` (iceServers), `wrtc`, ... Default `{}`. */
  peerOpts?: Record<string, unknown>
  /** Passed to y-webrtc: the most WebRTC connections this peer opens. Default y-webrtc's (20-34). */
  maxConns?: number
  /** The store's limits. Default `{ maxValueBytes: 1024, maxKeys: 100, maxTotalBytes: 65536, maxKeyBytes: 1024 }`. */
  limits?: Partial<Limits>
  /** This peer's metadata (JSON, at most `maxValueBytes`), visible to the other peers. Default null. */
  metadata?: Json
  /** Milliseconds to wait for the room's state (and for a signaling server). Default 10000. */
  joinTimeout?: number
  /** `'signaling'`: add the TURN servers the signaling server hands out to `peerOpts.config.iceServers`. Default none. */
  turn?: 'signaling'
}

export interface Peer {
  /** Stable for the peer's session: its Yjs client id, as a string. */
  id: string
  metadata: Json
  /** True for this peer itself. */
  local: boolean
}

/**
 * How the store became available: 'pending' (not yet), 'alone' (the only peer in the room),
 * 'synced' (received a peer's state), 'peers-left' (the peers it waited for left), 'timeout'
 * (nothing arrived within joinTimeout: the store may be missing what others hold).
 */
export type SyncState = 'pending' | 'alone' | 'synced' | 'peers-left' | 'timeout'

export interface SessionStatus {
  /** Connected to at least one signaling server. */
  signaling: boolean
  /** Open WebRTC data channels to other peers. */
  webrtcPeers: number
  available: boolean
  sync: SyncState
  left: boolean
}

export interface ConnectionInfo {
  connectionState: RTCPeerConnectionState
  /** The readyState of each data channel on this connection. */
  dataChannels: RTCDataChannelState[]
}

export interface SessionEvents {
  sessionStoreAvailable: (store: SessionStore) => void
  peers: (change: { joined: Peer[], left: Peer[], updated: Peer[] }) => void
  status: (status: SessionStatus) => void
  error: (error: SessionStoreError) => void
}

/** What a runtime entry point wires in: the Node entry passes `ws` and `@roamhq/wrtc`. */
export interface Runtime {
  wrtc?: WrtcImplementation
}

interface SignalingConn {
  connected: boolean
  send: (message: unknown) => void
  on: (name: string, fn: (...args: any[]) => void) => void
  off: (name: string, fn: (...args: any[]) => void) => void
}

const DEFAULT_SIGNALING = ['ws://localhost:4444']
/** While waiting for peers, how often to ask the signaling server how many are still there. */
const PROBE_INTERVAL = 1000
/**
 * The probe is a publish whose data y-webrtc peers ignore (no `from`, an unknown type, and not
 * the string an encrypted room expects); the server's echo carries the topic's subscriber count.
 */
const PROBE = { type: 'y-session-store:probe' }
/** At most one answering announce per remote peer in this many milliseconds. */
const REANNOUNCE_INTERVAL = 2000
const STORE_MAP = 'session-store'

/** Rooms joined (or still leaving) in this JavaScript realm: y-webrtc allows one each. */
const joined = new Map<string, GuardedRoom>()

export class Session extends ObservableV2<SessionEvents> {
  readonly room: string
  /** Resolves the store once it is available; rejects with SIGNALING_UNAVAILABLE or NOT_AVAILABLE. */
  readonly sessionStore: Promise<SessionStore>
  readonly doc: Y.Doc
  readonly #provider: WebrtcProvider
  readonly #awareness: Awareness
  readonly #store: SessionStore
  readonly #wrtc: ReturnType<typeof createFramedWrtc>
  readonly #signalingConns: SignalingConn[]
  readonly #clientsSeen = new Map<SignalingConn, number>()
  readonly #timer: ReturnType<typeof setTimeout>
  #probe: ReturnType<typeof setInterval> | undefined
  readonly #reannounced = new Map<string, number>()
  #resolveStore!: (store: SessionStore) => void
  #rejectStore!: (err: SessionStoreError) => void
  #sync: SyncState = 'pending'
  #waitedForPeers = false
  #signalingEverConnected = false
  #openChannels = new Set<RTCDataChannel>()
  #peers = new Map<number, Peer>()
  #leaving: Promise<void> | null = null

  constructor (room: string, options: JoinOptions = {}, runtime: Runtime = {}) {
    super()
    if (typeof room !== 'string' || room.length === 0) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'the room name must be a non-empty string')
    if (joined.has(room)) throw new SessionStoreError(ErrorCodes.ALREADY_JOINED, `room '${room}' is already joined in this JavaScript realm; leave() it first`)
    const { signaling = DEFAULT_SIGNALING, password, token, peerOpts = {}, maxConns, limits, metadata = null, joinTimeout = 10_000, turn } = options
    if (turn !== undefined && turn !== 'signaling') throw new SessionStoreError(ErrorCodes.INVALID_OPTION, "turn must be 'signaling' or absent")
    if (!Array.isArray(signaling) || signaling.some((url) => typeof url !== 'string')) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'signaling must be an array of URLs')
    if (!Number.isFinite(joinTimeout) || joinTimeout < 0) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'joinTimeout must be a non-negative number of milliseconds')
    const base = (peerOpts.wrtc as WrtcImplementation | undefined) ?? runtime.wrtc ?? browserWrtc()
    if (base === undefined) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'no WebRTC implementation: pass peerOpts.wrtc, or use y-session-store/node in Node')

    this.room = room
    this.doc = new Y.Doc()
    this.#store = new SessionStore(this.doc.getMap(STORE_MAP), { limits, onError: (err) => this.#emitError(err) })
    this.#awareness = new Awareness(this.doc)
    this.#awareness.on('change', this.#onAwarenessChange)
    this.#awareness.setLocalState({ metadata: metadataOf(metadata, this.#store.limits.maxValueBytes) })
    this.#wrtc = createFramedWrtc(base, {
      onOpen: (channel, pc) => {
        channelOwner.set(channel, pc)
        this.#openChannels.add(channel)
        this.#emitStatus()
      },
      onClose: (channel) => { if (this.#openChannels.delete(channel)) this.#emitStatus() },
      onMessage: this.#onPeerMessage,
      onError: (err) => this.#emitError(new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, `closed the connection to a peer that sent a message this peer cannot process: ${err.message}`, { cause: err }))
    })
    this.sessionStore = new Promise((resolve, reject) => {
      this.#resolveStore = resolve
      this.#rejectStore = reject
    })
    this.sessionStore.catch(() => {}) // the rejection is also an 'error' event; callers may not await

    joined.set(room, {
      peerId: () => this.#provider.room?.peerId,
      hasConnection: (peerId) => this.#provider.room?.webrtcConns.has(peerId) === true,
      key: { then: (resolve, reject) => this.#provider.key.then(resolve, reject) },
      onDrop: (reason) => this.#emitError(new SessionStoreError(ErrorCodes.PROTOCOL_ERROR, `dropped a signaling message for this room: ${reason}`)),
      reannounce: this.#reannounce
    })
    this.#provider = new WebrtcProvider(room, this.doc, {
      signaling: token === undefined ? signaling : signaling.map((url) => withToken(url, token)),
      ...(password === undefined ? {} : { password }),
      awareness: this.#awareness,
      // Tabs of one browser also connect over WebRTC, so "synced with a peer" is observable.
      filterBcConns: false,
      peerOpts: { ...peerOpts, wrtc: this.#wrtc, ...(turn === 'signaling' ? { config: withSignalingIceServers(peerOpts.config as RTCConfiguration | undefined, () => this.#signalingConns) } : {}) },
      ...(maxConns === undefined ? {} : { maxConns })
    })
    this.#provider.on('peers', this.#onWebrtcPeers)
    this.#signalingConns = this.#provider.signalingConns as unknown as SignalingConn[]
    for (const conn of this.#signalingConns) {
      guardSignalingConn(conn as unknown as Parameters<typeof guardSignalingConn>[0], (topic) => joined.get(topic))
      followTurnCredentials(conn)
      conn.on('message', this.#onSignalingMessage)
      conn.on('connect', this.#onSignalingStatus)
      conn.on('disconnect', this.#onSignalingStatus)
      if (conn.connected) this.#signalingEverConnected = true
    }
    void this.#provider.key.then(() => {
      if (this.#leaving === null) this.#awareness.setLocalStateField('peerId', this.#provider.room?.peerId)
    })
    this.#timer = setTimeout(this.#onJoinTimeout, joinTimeout)
  }

  /**
   * Like ObservableV2's `on`; a `sessionStoreAvailable` listener added after the store became
   * available is still called (once, asynchronously), as the SDK's callback would be.
   */
  override on<E extends keyof SessionEvents>(name: E, listener: SessionEvents[E]): SessionEvents[E] {
    super.on(name, listener)
    if (name === 'sessionStoreAvailable' && this.#sync !== 'pending' && this.#leaving === null) {
      queueMicrotask(() => {
        if (this._observers.get(name)?.has(listener) === true && !this.#store.closed) {
          (listener as SessionEvents['sessionStoreAvailable'])(this.#store)
        }
      })
    }
    return listener
  }

  /**
   * The room's y-protocols awareness, for ephemeral per-peer state beyond metadata (cursors, say).
   * This library keeps `metadata` and `peerId` (y-webrtc's signaling id) in each peer's state.
   */
  get awareness (): Awareness {
    return this.#awareness
  }

  /** The peers in the room, this one included. */
  get peers (): Peer[] {
    return Array.from(this.#peers.values())
  }

  get status (): SessionStatus {
    const left = this.#leaving !== null
    return {
      signaling: !left && this.#signalingConns.some((conn) => conn.connected),
      webrtcPeers: this.#openChannels.size,
      available: this.#sync !== 'pending',
      sync: this.#sync,
      left
    }
  }

  /** The WebRTC connections of this session, for diagnostics (and for proving tests ran over WebRTC). */
  get connections (): ConnectionInfo[] {
    const channels = Array.from(this.#openChannels)
    return Array.from(this.#wrtc.connections, (pc) => ({
      connectionState: pc.connectionState,
      dataChannels: channels.filter((channel) => channelOwner.get(channel) === pc).map((channel) => channel.readyState)
    }))
  }

  /** Replaces this peer's metadata (JSON, at most `maxValueBytes`); the other peers see it. */
  setMetadata (metadata: Json): void {
    if (this.#leaving !== null) throw new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session has been left')
    this.#awareness.setLocalStateField('metadata', metadataOf(metadata, this.#store.limits.maxValueBytes))
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
    clearTimeout(this.#timer)
    clearInterval(this.#probe)
    this.#store.close()
    this.#rejectStore(new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session was left before the store became available'))
    for (const conn of this.#signalingConns) {
      conn.off('message', this.#onSignalingMessage)
      conn.off('connect', this.#onSignalingStatus)
      conn.off('disconnect', this.#onSignalingStatus)
    }
    this.#provider.off('peers', this.#onWebrtcPeers)
    this.#awareness.off('change', this.#onAwarenessChange)
    // y-webrtc re-subscribes and re-announces the room when one of its WebRTC connections closes,
    // even while the room is being left, which would keep a left peer subscribed (and announced)
    // on a shared signaling connection. Its connections are closed here without those listeners.
    // The connections are also closed before y-webrtc broadcasts its goodbye (an awareness
    // removal) over them: sending on a channel whose remote is closing at the same moment crashes
    // @roamhq/wrtc (SIGSEGV in RTCDataChannel::Send, seen when peers leave together). The others
    // see this peer leave when its connection closes.
    this.#provider.room?.webrtcConns.forEach((conn) => {
      conn.peer.removeAllListeners('close')
      conn.peer.removeAllListeners('error')
      conn.peer.destroy()
    })
    // disconnect() releases the signaling connections (closing those no other room uses);
    // destroy() alone would leave them open.
    this.#provider.disconnect()
    this.#provider.destroy()
    this.#openChannels.clear()
    // y-webrtc removes the room from its registry in a callback on `key`, registered by destroy()
    // just now: awaiting `key` afterwards runs after it.
    await this.#provider.key
    await closeLeakedBroadcastChannel(this.room, this.#provider.room?.key != null)
    this.doc.destroy()
    joined.delete(this.room)
    this.#emitStatus()
  }

  #markAvailable (sync: Exclude<SyncState, 'pending'>): void {
    if (this.#sync !== 'pending' || this.#leaving !== null) return
    this.#sync = sync
    clearTimeout(this.#timer)
    clearInterval(this.#probe)
    this.#resolveStore(this.#store)
    this.#emitStatus()
    this.#emit('sessionStoreAvailable', this.#store)
  }

  #onJoinTimeout = (): void => {
    if (this.#sync !== 'pending') return
    if (this.#signalingEverConnected || this.#openChannels.size > 0) {
      this.#markAvailable('timeout')
      return
    }
    const err = new SessionStoreError(ErrorCodes.SIGNALING_UNAVAILABLE, `no signaling server answered within the join timeout (${this.#provider.signalingUrls.join(', ')})`)
    this.#rejectStore(err)
    this.#emitError(err)
    void this.leave()
  }

  /** y-webrtc relays publishes with the topic's subscriber count: 1 on our own announce means alone. */
  #onSignalingMessage = (message: { type?: unknown, topic?: unknown, clients?: unknown }, conn?: SignalingConn): void => {
    if (this.#sync !== 'pending' || message.type !== 'publish' || message.topic !== this.room || typeof message.clients !== 'number') return
    const source = conn ?? this.#signalingConns.find((c) => c.connected)
    if (source !== undefined) this.#clientsSeen.set(source, message.clients)
    if (message.clients > 1) {
      this.#waitedForPeers = true
      this.#probe ??= setInterval(this.#sendProbe, PROBE_INTERVAL)
      return
    }
    const aloneEverywhere = this.#signalingConns.every((c) => !c.connected || (this.#clientsSeen.get(c) ?? 2) <= 1)
    if (aloneEverywhere || this.#signalingConns.length === 1) this.#markAvailable(this.#waitedForPeers ? 'peers-left' : 'alone')
  }

  /** Announces this peer again so that `remotePeerId` connects to it (see signal-guard.ts). */
  #reannounce = (remotePeerId: string): void => {
    const room = this.#provider.room
    if (room === null || this.#leaving !== null || room.webrtcConns.size >= this.#provider.maxConns) return
    const now = Date.now()
    if ((this.#reannounced.get(remotePeerId) ?? 0) > now - REANNOUNCE_INTERVAL) return
    for (const [peerId, at] of this.#reannounced) if (at <= now - REANNOUNCE_INTERVAL) this.#reannounced.delete(peerId)
    this.#reannounced.set(remotePeerId, now)
    const payload = { type: 'announce', from: room.peerId }
    void Promise.resolve(room.key === null ? payload : encryptSignal(payload, room.key)).then((data) => {
      for (const conn of this.#signalingConns) {
        if (conn.connected) conn.send({ type: 'publish', topic: this.room, data })
      }
    })
  }

  /** The peers we wait for may leave before they send their state: the echo will tell. */
  #sendProbe = (): void => {
    if (this.#sync !== 'pending') return
    for (const conn of this.#signalingConns) {
      if (conn.connected) conn.send({ type: 'publish', topic: this.room, data: PROBE })
    }
  }

  #onSignalingStatus = (): void => {
    if (this.#signalingConns.some((conn) => conn.connected)) this.#signalingEverConnected = true
    this.#emitStatus()
  }

  /** A y-webrtc sync message of type step 2 carries the sender's whole state. */
  #onPeerMessage = (message: Uint8Array): void => {
    if (message[0] === 0 && message[1] === 1) this.#markAvailable('synced')
  }

  /**
   * A closed WebRTC connection removes its peer at once (awareness would take 30 s to time it out).
   * The state is only dropped locally: a peer that is still alive re-announces itself.
   */
  #onWebrtcPeers = ({ removed }: { removed: string[] }): void => {
    if (removed.length === 0) return
    const gone = new Set(removed)
    const clients: number[] = []
    this.#awareness.getStates().forEach((state, client) => {
      if (client !== this.doc.clientID && gone.has(state.peerId as string)) clients.push(client)
    })
    if (clients.length === 0) return
    for (const client of clients) {
      this.#awareness.states.delete(client)
      this.#awareness.meta.delete(client)
    }
    this.#awareness.emit('change', [{ added: [], updated: [], removed: clients }, 'peer-left'])
  }

  #onAwarenessChange = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }): void => {
    const joinedPeers: Peer[] = []
    const leftPeers: Peer[] = []
    const updatedPeers: Peer[] = []
    for (const client of removed) {
      const peer = this.#peers.get(client)
      if (peer === undefined) continue
      this.#peers.delete(client)
      leftPeers.push(peer)
    }
    for (const client of added.concat(updated)) {
      const state = this.#awareness.getStates().get(client)
      if (state === undefined) continue
      const peer: Peer = { id: String(client), metadata: sanitizeMetadata(state.metadata, this.#store.limits.maxValueBytes), local: client === this.doc.clientID }
      const known = this.#peers.has(client)
      this.#peers.set(client, peer)
      if (!known) joinedPeers.push(peer)
      else updatedPeers.push(peer)
    }
    if (joinedPeers.length + leftPeers.length + updatedPeers.length > 0) {
      this.#emit('peers', { joined: joinedPeers, left: leftPeers, updated: updatedPeers })
    }
  }

  #emitStatus (): void {
    this.#emit('status', this.status)
  }

  #emitError (error: SessionStoreError): void {
    this.#emit('error', error)
  }

  /** Emits an event; a listener that throws is reported as an 'error' event, never propagated. */
  #emit<E extends keyof SessionEvents>(name: E, payload: Parameters<SessionEvents[E]>[0]): void {
    const listeners = Array.from(this._observers.get(name) ?? []) as Array<(arg: typeof payload) => void>
    for (const listener of listeners) {
      try {
        listener(payload)
      } catch (err) {
        if (name === 'error') continue
        this.#emitError(new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a '${name}' listener threw: ${String(err)}`, { cause: err }))
      }
    }
  }
}

const channelOwner = new WeakMap<RTCDataChannel, RTCPeerConnection>()

/**
 * y-webrtc's disconnect unsubscribes from the room's BroadcastChannel and then, a few microtasks
 * later (after encrypting), posts a goodbye on it, which makes lib0 open a fresh channel that
 * nobody closes. In Node that channel is a MessagePort that keeps the process alive. Subscribing
 * and unsubscribing a no-op listener closes whatever channel the room has, once the post is done.
 */
const closeLeakedBroadcastChannel = async (room: string, encrypted: boolean): Promise<void> => {
  const noop = (): void => {}
  const close = (): void => {
    bc.subscribe(room, noop)
    bc.unsubscribe(room, noop)
  }
  await new Promise((resolve) => setTimeout(resolve, 0))
  close()
  if (encrypted) {
    // WebCrypto's encrypt completes off the main thread: give it time, then close again.
    await new Promise((resolve) => setTimeout(resolve, 50))
    close()
  }
}

const withToken = (url: string, token: string): string => {
  const parsed = new URL(url)
  parsed.searchParams.set('token', token)
  return parsed.toString()
}

const browserWrtc = (): WrtcImplementation | undefined => {
  const g = globalThis as Partial<WrtcImplementation>
  const { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate } = g
  if (RTCPeerConnection === undefined || RTCSessionDescription === undefined || RTCIceCandidate === undefined) return undefined
  return { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
}

/** Validates metadata (JSON, at most `maxBytes`) and returns its JSON copy; throws SessionStoreError. */
const metadataOf = (metadata: unknown, maxBytes: number): Json => {
  const text = encodeValue(metadata)
  if (utf8Length(text) > maxBytes) throw new SessionStoreError(ErrorCodes.VALUE_TOO_LARGE, `metadata is over the limit of ${maxBytes} bytes`)
  return JSON.parse(text) as Json
}

/** Metadata from another peer is untrusted: anything not within the rules reads as null. */
const sanitizeMetadata = (metadata: unknown, maxBytes: number): Json => {
  try {
    return metadataOf(metadata ?? null, maxBytes)
  } catch {
    return null
  }
}

/** Joins `room` and returns its session; the store arrives with `sessionStoreAvailable`. */
export const joinRoom = (room: string, options: JoinOptions = {}, runtime: Runtime = {}): Session =>
  new Session(room, options, runtime)

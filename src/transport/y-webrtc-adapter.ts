/**
 * The y-webrtc adapter: the only code that knows y-webrtc's and simple-peer's internals. It gives
 * the session a `Link` (link.ts) and keeps everything else from depending on y-webrtc's shapes.
 *
 * What y-webrtc still does: its signaling client (reconnecting WebSockets shared by the rooms of a
 * realm, subscribe and announce), and setting up one simple-peer connection per remote peer that
 * announces itself or sends an offer. What it no longer does: the data plane. Its provider is
 * given a shadow document and awareness that nothing else uses, and the data channels it opens
 * are ours (framed-wrtc.ts): what it sends on them is dropped, what arrives goes to the link's
 * `message` event. The library's replication (replication.ts) speaks over them instead.
 *
 * What the adapter adds around y-webrtc (src/PROTOCOL.md has the rules):
 * - identity on the signaling wire: y-webrtc keeps its own random peer id inside, but on the
 *   wire this peer is its self-certifying id (trust/identity.ts), and every publish y-webrtc makes
 *   for our rooms is signed (trust/signed-signal.ts) and, with a password, encrypted here;
 * - a guard in front of each signaling connection: publishes for our rooms are decrypted,
 *   verified (signature, room, recipient, no replay) and screened (signal-guard.ts) before
 *   y-webrtc reads them; unsigned ones (stock y-webrtc peers) are ignored;
 * - the initiator rule (only the smaller peer id initiates; the larger announces itself again),
 *   and a budget on announces (budgets.ts), so no one can make this peer flood the server;
 * - pending connections (set up, not open yet): capped, timed out, their peer ids backed off, and
 *   under contention shared per sender handle, the client address the signaling server tags a
 *   publish with (pending-slots.ts), so phantom ids from one address cannot keep live peers out;
 * - the probe: a publish that y-webrtc peers ignore, whose echo carries the room's count;
 * - teardown workarounds, each for a y-webrtc behaviour that would otherwise leak or crash.
 *
 * y-webrtc allows one provider per room name per JavaScript realm, and removes a room only after
 * a promise settles; the adapter keeps the realm's rooms and refuses a second with ALREADY_JOINED.
 * It relies on the shapes of y-webrtc `Y_WEBRTC_VERSION` (pinned exactly in package.json) and
 * checks them when a room is joined, failing with INCOMPATIBLE_DEPENDENCY when they differ.
 */

import * as Y from 'yjs'
import * as yWebrtc from 'y-webrtc'
import { Awareness } from 'y-protocols/awareness'
import * as bc from 'lib0/broadcastchannel'
import { ErrorCodes, SessionStoreError } from '../errors.js'
import { isRecord } from '../guards.js'
import { createFramedWrtc, type FramedChannel, type FramedWrtc, type WrtcImplementation } from './framed-wrtc.js'
import type { ArbiterChannel, ConnectionInfo, Link, LinkConnection, LinkEvents, LinkFactory, LinkOptions, SignalingSource } from './link.js'
import type { Identity } from '../trust/identity.js'
import { openSignal, routeOf, signSignal, type SignalPayload } from '../trust/signed-signal.js'
import { ANNOUNCE_BUDGET, createTokenBucket, type TokenBucket } from './budgets.js'
import { SenderStandings, senderOf, slotToTake, type PendingSlot } from './pending-slots.js'
import { decryptSignal, deriveRoomKey, encryptSignal } from './signal-crypto.js'
import { screenSignal, shouldAnswerAnnounce } from './signal-guard.js'
import { followTurnCredentials, withSignalingIceServers } from './turn.js'
import { LeanObservable } from '../events.js'

/** The y-webrtc release whose internals this module relies on. */
export const Y_WEBRTC_VERSION = '10.3.0'

/**
 * The probe is a publish whose data y-webrtc peers ignore (no `from`, an unknown type, and not
 * the string an encrypted room expects); the server's echo carries the topic's subscriber count.
 */
export const PROBE = { type: 'y-session-store:probe' }
/** At most one answering announce per remote peer in this many milliseconds. */
export const REANNOUNCE_INTERVAL = 2000
/** The same refusal (reason and sender) is reported at most once in this many milliseconds. */
export const REPORT_INTERVAL = 10_000
/** Senders whose last sequence number is remembered (replay protection); the oldest are forgotten. */
const MAX_REMEMBERED_SENDERS = 4096
/** A connection being set up that has not opened by then is given up, freeing its slot. */
export const PENDING_TIMEOUT = 8000
/** What `#admit` says of a payload that is to wait for a pending slot. */
const DEFER = Symbol('defer')
/** Connections being set up at once, apart from the `maxConns` slots of live ones. */
export const MAX_PENDING = 6
/** What a channel open before its remote description may receive before it opens for the layers above (bytes). */
const MAX_EARLY_BYTES = 64 * 1024
/**
 * Protected rooms: of the pending connections, at most this many for peers whose payloads carry
 * no valid room token (a token-less or open-room peer, or a phantom): they never take the slots
 * of attributable peers, and a flood of them is confined here.
 */
export const MAX_UNATTRIBUTED_PENDING = 2
/**
 * Attributable peers whose payloads wait, in order, while the pending connections are at their
 * cap (a joiner of a full mesh is contacted by every member at once): at most this many peers,
 * this many payloads each (an offer or announce and its ICE candidates), for this long. They are
 * handed to y-webrtc as slots free; dropped, the offerer would wait out PENDING_TIMEOUT and a
 * back-off, and nothing would make the pair try again.
 */
export const MAX_DEFERRED_PEERS = 32
export const MAX_DEFERRED_PAYLOADS = 16
export const DEFERRAL_TIMEOUT = PENDING_TIMEOUT / 2
/** A peer the bridge connects to is admitted past `maxConns` for this long. */
export const INVITE_TIMEOUT = 30_000
/** After a peer id failed to connect, it is not tried again for this long, doubling up to MAX_BACKOFF. */
export const FIRST_BACKOFF = 3000
/** After a peer misbehaved (it was refused), it is not reconnected for this long, doubling too. */
export const FIRST_PENALTY = 10_000
export const MAX_BACKOFF = 5 * 60_000
/** y-webrtc's default maxConns: 20 plus a random 0 to 14, against clusters. */
const defaultMaxConns = (): number => 20 + Math.floor(Math.random() * 15)

/** y-webrtc's SignalingConn (a lib0 WebsocketClient) as far as the adapter uses it. */
interface SignalingConn {
  url: string
  /** The current socket; lib0 makes a new one, from `url`, at each reconnect. */
  ws: { addEventListener: (name: 'close', fn: (event: { code: number, reason: string }) => void) => void } | null
  connected: boolean
  send: (message: unknown) => void
  on: (name: string, fn: (...args: any[]) => void) => void
  off: (name: string, fn: (...args: any[]) => void) => void
  _observers: Map<string, Set<(...args: any[]) => void>>
}

/** y-webrtc's WebrtcConn: a simple-peer instance keyed by the remote's peer id. */
interface WebrtcConn {
  connected: boolean
  peer: {
    _pc?: RTCPeerConnection
    destroy: () => void
    removeAllListeners: (name: string) => void
  }
}

/** Destroys a y-webrtc connection without y-webrtc's close and error listeners (which re-announce, and remove the peer's connection by id). */
const destroyQuietly = (conn: WebrtcConn): void => {
  conn.peer.removeAllListeners('close')
  conn.peer.removeAllListeners('error')
  conn.peer.destroy()
}

interface Room {
  name: string
  peerId: string
  key: CryptoKey | null
  webrtcConns: Map<string, WebrtcConn>
  /** y-webrtc's mutex around every BroadcastChannel publish and receipt. */
  mux: (f: () => void, g?: () => void) => void
  bcconnected: boolean
  _bcSubscriber: (data: ArrayBuffer) => unknown
}

interface Provider {
  room: Room | null
  key: PromiseLike<CryptoKey | null>
  maxConns: number
  signalingConns: SignalingConn[]
  signalingUrls: string[]
  connect: () => void
  disconnect: () => void
  destroy: () => void
}

/**
 * Returns what is missing from the y-webrtc module or provider for this adapter to work, or null.
 * The adapter reaches into y-webrtc's objects; a release that reshapes them must fail loudly.
 */
export const checkYWebrtc = (module: Record<string, unknown>, provider?: unknown): string | null => {
  for (const name of ['WebrtcProvider', 'SignalingConn', 'WebrtcConn', 'Room']) {
    if (typeof module[name] !== 'function') return `y-webrtc exports no ${name}`
  }
  if (provider === undefined) return null
  if (!isRecord(provider)) return 'the provider is not an object'
  if (!Array.isArray(provider.signalingConns)) return 'provider.signalingConns is not an array'
  if (typeof (provider.key as PromiseLike<unknown> | undefined)?.then !== 'function') return 'provider.key is not a promise'
  if (typeof provider.maxConns !== 'number') return 'provider.maxConns is not a number'
  for (const conn of provider.signalingConns as unknown[]) {
    if (!isRecord(conn) || !(conn._observers instanceof Map) || typeof conn.send !== 'function' || typeof conn.on !== 'function' || typeof conn.url !== 'string') {
      return 'a signaling connection lacks _observers, send, on or url'
    }
  }
  return null
}

/** Checks the room y-webrtc made (it exists only once `provider.key` has resolved). */
const checkRoom = (room: unknown): string | null => {
  if (!isRecord(room)) return 'provider.room is not an object'
  if (typeof room.peerId !== 'string') return 'room.peerId is not a string'
  if (!(room.webrtcConns instanceof Map)) return 'room.webrtcConns is not a Map'
  if (typeof room.mux !== 'function' || typeof room.bcconnected !== 'boolean' || typeof room._bcSubscriber !== 'function' || typeof room.name !== 'string') {
    return 'room.mux, bcconnected, _bcSubscriber or name is missing'
  }
  return null
}

/**
 * y-webrtc's room also syncs its document over a BroadcastChannel: on connect it posts six
 * messages (measured), on every awareness renewal (each 15 s) one more, and three on leaving. Here
 * that document is the shadow nobody reads, so the traffic never carries anything; in Node no
 * other process can even receive it. Its publishes all go through the room's mutex, after a
 * promise (encryption), so replacing the mutex right after connect() drops those already queued
 * and every later one; the channel is released and the room marked unconnected to it.
 */
const silenceBroadcastChannel = (room: Room): void => {
  room.mux = () => {}
  room.bcconnected = false
  bc.unsubscribe(room.name, room._bcSubscriber)
}

const incompatible = (problem: string): SessionStoreError =>
  new SessionStoreError(ErrorCodes.INCOMPATIBLE_DEPENDENCY, `this library needs y-webrtc ${Y_WEBRTC_VERSION} exactly (${problem}); install the version package.json pins`)

/** The rooms of this realm: joined, or still leaving. */
const rooms = new Map<string, YWebrtcLink>()

/** Sockets whose close code is watched (one listener per socket, for every link on it). */
const watchedSockets = new WeakSet<object>()
const closeWatched = new WeakSet<SignalingConn>()

/** Signaling connections whose y-webrtc listeners sit behind the guard, with their native send. */
const guarded = new WeakMap<SignalingConn, (message: unknown) => void>()

const withToken = (url: string, token: string): string => {
  const parsed = new URL(url)
  parsed.searchParams.set('token', token)
  return parsed.toString()
}

/** The WebRTC implementation of the runtime (browsers), if it has one. */
export const browserWrtc = (): WrtcImplementation | undefined => {
  const g = globalThis as Partial<WrtcImplementation>
  const { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate } = g
  if (RTCPeerConnection === undefined || RTCSessionDescription === undefined || RTCIceCandidate === undefined) return undefined
  return { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
}

/** A LinkFactory over y-webrtc, with `wrtc` as the WebRTC implementation. */
export const yWebrtcLink = (wrtc: WrtcImplementation): LinkFactory => (room, options) => new YWebrtcLink(room, options, wrtc)

/** The DTLS certificate fingerprints an SDP announces (`a=fingerprint:` lines), sorted. */
export const fingerprintsOf = (sdp: string | undefined): string =>
  (sdp ?? '').split(/\r?\n/).filter((line) => line.startsWith('a=fingerprint:')).map((line) => line.slice(14).trim().toLowerCase()).sort().join(',')

class Connection implements LinkConnection {
  readonly binding: { local: string, remote: string }

  constructor (readonly remoteId: string, readonly channel: FramedChannel) {
    this.binding = { local: fingerprintsOf(channel.pc.localDescription?.sdp), remote: fingerprintsOf(channel.pc.remoteDescription?.sdp) }
  }

  get writable (): boolean {
    return this.channel.writable
  }

  send (message: Uint8Array): boolean {
    return this.channel.send(message)
  }

  close (): void {
    this.channel.close()
  }
}

class YWebrtcLink extends LeanObservable<LinkEvents> implements Link {
  readonly ready: Promise<string>
  readonly #room: string
  readonly #provider: Provider
  readonly #shadow = new Y.Doc()
  readonly #wrtc: FramedWrtc
  readonly #connections = new Map<FramedChannel, Connection>()
  /** Channels open before their connection's remote description was set (#onOpen), with what they received meanwhile. */
  readonly #early = new Map<FramedChannel, { messages: Uint8Array[], bytes: number }>()
  readonly #reannounced = new Map<string, number>()
  readonly #identity: Promise<Identity>
  readonly #key: Promise<CryptoKey | null>
  readonly #announces: TokenBucket = createTokenBucket(ANNOUNCE_BUDGET)
  /** The last sequence number accepted from each sender. */
  readonly #seqs = new Map<string, number>()
  readonly #reported = new Map<string, number>()
  #seq = 0
  #localId: string | undefined
  /** Incoming publishes are handled one at a time, in order; so are outgoing ones. */
  #incoming: Promise<void> = Promise.resolve()
  #outgoing: Promise<void> = Promise.resolve()
  #left: Promise<void> | null = null
  /** Counts of what was dropped, by reason. */
  readonly dropped: Record<string, number> = {}
  /** Live connections this peer keeps at most (y-webrtc's own limit is this plus MAX_PENDING). */
  readonly #maxLive: number
  /** Connections being set up: when each started, and for whom (pending-slots.ts). */
  readonly #pending = new Map<string, PendingSlot>()
  /** Which senders (signaling handles) are demoted for the pending slots (pending-slots.ts). */
  readonly #standings = new SenderStandings()
  /** The pending ones whose peer is not attributable (protected rooms). */
  readonly #unattributed = new Set<string>()
  /** Payloads of peers waiting for a pending slot, oldest peer first (MAX_DEFERRED_PEERS). */
  readonly #deferred = new Map<string, { since: number, sender: string | undefined, payloads: Array<() => void> }>()
  /** A task on the incoming queue will hand deferred payloads on. */
  #draining = false
  readonly #attestation: LinkOptions['attestation']
  /**
   * Peer ids that failed to connect: until when they are not tried, how many times they failed,
   * and whether they tried meanwhile (then this peer announces itself when the back-off ends, so
   * the pair tries again: nothing else would make it).
   */
  readonly #backoff = new Map<string, { until: number, failures: number, retry?: boolean }>()
  readonly #watchdog: ReturnType<typeof setInterval>
  #signaling: string[] = []
  readonly #attached = new WeakSet<SignalingConn>()
  readonly #arbiterFrames = new Set<(frame: unknown) => void>()
  readonly #arbiterStatus = new Set<(connected: boolean) => void>()
  /** The lock arbiter: the first signaling server (one arbiter, or one Redis-backed cluster, per room). */
  readonly arbiter: ArbiterChannel = {
    send: (frame) => {
      const conn = this.#provider.signalingConns[0]
      if (conn === undefined || !conn.connected) throw new Error('the lock arbiter is not connected')
      conn.send(frame)
    },
    onFrame: (listener) => {
      this.#arbiterFrames.add(listener)
      return () => this.#arbiterFrames.delete(listener)
    },
    onStatus: (listener) => {
      this.#arbiterStatus.add(listener)
      return () => this.#arbiterStatus.delete(listener)
    },
    get connected () { return false }
  }
  /** Peers the bridge connects to past `maxConns` (`connect`): until when they are admitted. */
  readonly #invited = new Map<string, number>()

  constructor (room: string, options: LinkOptions, wrtc: WrtcImplementation) {
    super()
    const problem = checkYWebrtc(yWebrtc as unknown as Record<string, unknown>)
    if (problem !== null) throw incompatible(problem)
    if (rooms.has(room)) throw new SessionStoreError(ErrorCodes.ALREADY_JOINED, `room '${room}' is already joined in this JavaScript realm; leave() it first`)
    this.#room = room
    this.#wrtc = createFramedWrtc(wrtc, {
      onOpen: this.#onOpen,
      onMessage: (channel, message) => {
        const connection = this.#connections.get(channel)
        if (connection !== undefined) {
          this.emit('message', [{ connection, message }])
          return
        }
        const early = this.#early.get(channel)
        if (early === undefined) return
        early.bytes += message.length
        if (early.bytes > MAX_EARLY_BYTES) {
          this.#early.delete(channel)
          channel.close()
          return
        }
        early.messages.push(message)
      },
      onClose: this.#onClose,
      onError: (channel, error) => {
        const { connection } = this.#connectionOf(channel)
        if (connection !== undefined) this.penalize(connection.remoteId)
        const reason = `a peer broke the data-channel protocol: ${error.message}`
        this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
        this.emit('refused', [{ reason: `a peer broke the data-channel protocol: ${error.message}`, ...(connection === undefined ? {} : { connection }) }])
      }
    }, options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes })
    const { signaling, password, token, peerOpts, maxConns = defaultMaxConns(), identity, turn } = options
    this.#identity = identity
    this.#attestation = options.attestation
    this.#maxLive = maxConns
    this.#key = password === undefined ? Promise.resolve(null) : deriveRoomKey(password, room)
    this.#key.catch(() => {})
    rooms.set(room, this)
    try {
      // No password for y-webrtc: it only ever sees verified, decrypted payloads (see guard()).
      this.#provider = new yWebrtc.WebrtcProvider(room, this.#shadow, {
        // A token still being fetched (a protected room's): no signaling until it is known.
        signaling: typeof token === 'string' ? signaling.map((url) => withToken(url, token)) : token === undefined ? signaling : [],
        awareness: new Awareness(this.#shadow),
        // Tabs of one browser connect over WebRTC too: the data plane is only on data channels.
        filterBcConns: false,
        peerOpts: {
          ...peerOpts,
          wrtc: this.#wrtc,
          // `#provider` is unset while y-webrtc's constructor runs: no grants then.
          ...(turn === 'signaling' ? { config: withSignalingIceServers(peerOpts.config as RTCConfiguration | undefined, () => this.#provider?.signalingConns ?? []) } : {})
        },
        // Room for the pending connections beside the live ones; the adapter keeps each within its cap.
        maxConns: maxConns + MAX_PENDING
      }) as unknown as Provider
      const shapes = checkYWebrtc(yWebrtc as unknown as Record<string, unknown>, this.#provider)
      if (shapes !== null) throw incompatible(shapes)
    } catch (err) {
      rooms.delete(room)
      this.#shadow.destroy()
      throw err
    }
    this.#signaling = signaling
    this.#attachSignaling()
    if (typeof token === 'object') {
      token.then((value) => {
        if (this.#left !== null) return
        // y-webrtc's own connect(): it makes (or shares) the sockets of its signalingUrls.
        this.#provider.signalingUrls = value === undefined ? signaling : signaling.map((url) => withToken(url, value))
        this.#provider.connect()
        this.#attachSignaling()
      }, () => {})
    }
    this.#watchdog = setInterval(this.#expirePending, 1000)
    // Runs right after y-webrtc's own callback on `key`, which made the room and connected it.
    void Promise.resolve(this.#provider.key).then(() => {
      if (checkRoom(this.#provider.room) === null) silenceBroadcastChannel(this.#provider.room as Room)
    }, () => {})
    this.ready = Promise.all([this.#provider.key, identity]).then(([, { id }]) => {
      const problem = checkRoom(this.#provider.room)
      if (problem !== null) throw incompatible(problem)
      this.#localId = id
      return id
    })
    this.ready.catch(() => {})
  }

  /** Watches the signaling connections not watched yet. */
  #attachSignaling (): void {
    const first = this.#provider.signalingConns[0]
    if (first !== undefined && !this.#attached.has(first)) {
      Object.defineProperty(this.arbiter, 'connected', { get: () => first.connected })
      first.on('message', this.#onArbiterFrame)
      first.on('connect', this.#onArbiterConnect)
      first.on('disconnect', this.#onArbiterDisconnect)
      if (first.connected) this.#onArbiterConnect()
    }
    for (const conn of this.#provider.signalingConns) {
      if (this.#attached.has(conn)) continue
      this.#attached.add(conn)
      guard(conn)
      watchCloseCodes(conn)
      followTurnCredentials(conn)
      conn.on('message', this.#onSignalingMessage)
      conn.on('connect', this.#onSignalingStatus)
      conn.on('disconnect', this.#onSignalingStatus)
    }
    if (this.#provider.signalingConns.some((conn) => conn.connected)) this.#onSignalingStatus()
  }

  /** This peer's id on the signaling wire (its identity's), once known. */
  get localId (): string | undefined {
    return this.#localId
  }

  /** Whether this link's room goes through signaling connection `conn`. */
  uses (conn: SignalingConn): boolean {
    return this.#provider.signalingConns.includes(conn)
  }

  /** Whether y-webrtc has a connection (open or being set up) to `peerId`. */
  hasConnection (peerId: string): boolean {
    return this.#provider.room?.webrtcConns.has(peerId) === true
  }

  get sources (): SignalingSource[] {
    const conns = this.#provider.signalingConns
    // Before a deferred token arrives, the servers to come, not connected.
    if (conns.length === 0) return this.#signaling.map((url) => ({ id: url, connected: false }))
    return conns.map((conn) => ({ id: stripQuery(conn.url), connected: conn.connected }))
  }

  get connections (): LinkConnection[] {
    return Array.from(this.#connections.values())
  }

  diagnostics (): ConnectionInfo[] {
    return Array.from(this.#wrtc.connections, (pc) => ({
      connectionState: pc.connectionState,
      dataChannels: this.#wrtc.channelsOf(pc).map((channel) => channel.channel.readyState)
    }))
  }

  probe (): void {
    for (const conn of this.#provider.signalingConns) {
      if (conn.connected) guarded.get(conn)?.({ type: 'publish', topic: this.#room, data: PROBE })
    }
  }

  leave (): Promise<void> {
    this.#left ??= this.#teardown()
    return this.#left
  }


  get leaving (): boolean {
    return this.#left !== null
  }

  /** Counts a dropped signaling publish, and reports it (the same one at most every 10 s). */
  #drop (reason: string, from = ''): void {
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
    const key = `${reason}\u0000${from}`
    const now = Date.now()
    if ((this.#reported.get(key) ?? -Infinity) > now - REPORT_INTERVAL) return
    if (this.#reported.size > 1024) this.#reported.clear()
    this.#reported.set(key, now)
    this.emit('refused', [{ reason: `dropped a signaling message for this room: ${reason}` }])
  }

  /**
   * A publish y-webrtc makes for this room (`data` is its payload, with its own peer id as
   * `from`): signed as this peer, encrypted with the password, sent on `conn`. In order.
   */
  publish (conn: SignalingConn, data: unknown): void {
    if (!isRecord(data) || (data.type !== 'announce' && data.type !== 'signal')) return
    if (data.type === 'announce' && !this.#announces.take()) {
      this.dropped['announce over budget'] = (this.dropped['announce over budget'] ?? 0) + 1
      return
    }
    const payload: SignalPayload = { type: data.type }  as SignalPayload
    if (typeof data.to === 'string') payload.to = data.to
    if (data.signal !== undefined) payload.signal = data.signal
    if (typeof data.token === 'number') payload.token = data.token
    const attest = this.#attestation?.current() ?? null
    if (attest !== null) payload.attest = attest
    this.#outgoing = this.#outgoing.then(async () => {
      const [identity, key] = await Promise.all([this.#identity, this.#key])
      if (this.leaving) return
      const wire = await signSignal(identity, this.#room, ++this.#seq, payload)
      const sealed = key === null ? wire : await encryptSignal(wire, key)
      if (!this.leaving && conn.connected) guarded.get(conn)?.({ type: 'publish', topic: this.#room, data: sealed })
    }).catch((err: unknown) => this.#drop(`could not sign a signaling message (${String(err)})`))
  }

  /** Announces this peer again so that `remotePeerId` (a smaller id) connects to it. */
  reannounce (remotePeerId: string): void {
    const room = this.#provider.room
    if (room === null || this.leaving || this.#connections.size >= this.#maxLive) return
    const now = Date.now()
    if ((this.#reannounced.get(remotePeerId) ?? 0) > now - REANNOUNCE_INTERVAL) return
    for (const [peerId, at] of this.#reannounced) if (at <= now - REANNOUNCE_INTERVAL) this.#reannounced.delete(peerId)
    this.#reannounced.set(remotePeerId, now)
    this.#announce()
  }

  /** Announces this peer to the room, whatever its number of connections (bridge.ts). */
  announce (): void {
    if (!this.leaving) this.#announce()
  }

  /**
   * Connects to `remoteId` past `maxConns` (bridge.ts): its connection is admitted for
   * INVITE_TIMEOUT whatever the live count, and, by the initiator rule, this peer offers when its
   * id is the smaller and announces itself otherwise.
   */
  connect (remoteId: string): void {
    const room = this.#provider.room
    const conn = this.#provider.signalingConns.find((c) => c.connected)
    if (room === null || this.leaving || this.#localId === undefined || remoteId === this.#localId || room.webrtcConns.has(remoteId)) return
    this.#invited.set(remoteId, Date.now() + INVITE_TIMEOUT)
    if (this.#localId > remoteId) {
      this.#announce()
      return
    }
    if (conn === undefined || this.#pending.size >= MAX_PENDING) return
    this.#pending.set(remoteId, { peerId: remoteId, since: Date.now(), sender: undefined, takeable: false })
    room.webrtcConns.set(remoteId, new yWebrtc.WebrtcConn(conn as never, true, remoteId, room as never) as unknown as WebrtcConn)
  }

  /** Publishes this peer's announce on every connected signaling server (signed, budgeted). */
  #announce (): void {
    for (const conn of this.#provider.signalingConns) if (conn.connected) this.publish(conn, { type: 'announce' })
  }

  /**
   * A publish for this room from the signaling server: decrypted, verified and screened, then
   * handed to y-webrtc's own listeners (`forward`) with its payload in y-webrtc's terms. In order.
   */
  receive (message: Record<string, unknown>, conn: SignalingConn, forward: (message: Record<string, unknown>, conn: SignalingConn) => void): void {
    this.#incoming = this.#incoming.then(async () => {
      if (this.leaving) return
      const [identity, key] = await Promise.all([this.#identity, this.#key])
      let data = message.data
      if (key !== null) {
        if (typeof data !== 'string') return // a probe, or a peer without the password: nothing for us
        data = await decryptSignal(data, key)
        if (data === null) return this.#drop('the payload cannot be decrypted with this room\'s password')
      }
      if (isRecord(data) && data.from === undefined && data.to === undefined) return // a probe
      const route = routeOf(data)
      if (route === null) return this.#drop('not a signaling payload')
      if (route.from === identity.id) return // our own, echoed
      if (route.type === 'signal' && route.to !== identity.id) return // for another peer
      const opened = await openSignal(this.#room, data)
      if (typeof opened === 'string') return this.#drop(opened, route.from)
      if (opened.seq <= (this.#seqs.get(opened.from) ?? 0)) return this.#drop('a replayed signaling message', opened.from)
      this.#seqs.delete(opened.from)
      if (this.#seqs.size >= MAX_REMEMBERED_SENDERS) this.#seqs.delete(this.#seqs.keys().next().value as string)
      this.#seqs.set(opened.from, opened.seq)
      if (this.leaving) return
      this.emit('heard', [{ peerId: opened.from }])
      const context = { peerId: () => identity.id, hasConnection: (peerId: string) => this.hasConnection(peerId) }
      if (shouldAnswerAnnounce(opened, context)) return this.reannounce(opened.from)
      // y-webrtc knows itself by its own random id: address the payload to that.
      const plain: Record<string, unknown> = { type: opened.type, from: opened.from }
      if (opened.to !== undefined) plain.to = this.#provider.room?.peerId
      if (opened.signal !== undefined) plain.signal = opened.signal
      if (opened.token !== undefined) plain.token = opened.token
      const problem = screenSignal(plain, { peerId: () => this.#provider.room?.peerId, hasConnection: (peerId) => this.hasConnection(peerId) })
      if (problem !== null) return this.#drop(problem, opened.from)
      let attributable = true
      if (this.#attestation !== undefined) {
        const problem = opened.attest === undefined ? 'no room token' : await this.#attestation.check(opened.attest, opened.from)
        if (problem !== null) {
          attributable = false
          const counter = 'unattributable signaling payloads (no valid room token): their own small pending cap'
          this.dropped[counter] = (this.dropped[counter] ?? 0) + 1
        }
      }
      // An offer from a peer this one is connected to: the peer made a new connection (its side
      // of the old one is gone, or going). y-webrtc would hand the offer to the old connection,
      // a renegotiation towards another DTLS certificate, which the handshake then refuses
      // (authenticated-link.ts); the old connection is closed instead, and the offer answered.
      if (isRecord(opened.signal) && opened.signal.type === 'offer') this.#replaceConnection(opened.from)
      const deliver = (): void => forward({ ...message, data: plain }, conn)
      const sender = senderOf(message)
      const admission = this.#admit(opened, attributable, sender)
      if (admission === DEFER) return this.#defer(opened.from, sender, deliver)
      if (admission !== null) return this.#drop(admission)
      deliver()
    }).catch((err: unknown) => this.#drop(`a signaling message could not be handled (${String(err)})`))
  }

  /** Keeps `deliver` for when a pending slot frees, behind what `from` sent before. */
  #defer (from: string, sender: string | undefined, deliver: () => void): void {
    let waiting = this.#deferred.get(from)
    if (waiting === undefined) {
      if (this.#deferred.size >= MAX_DEFERRED_PEERS) return this.#drop('pending connections at their cap')
      this.#deferred.set(from, waiting = { since: Date.now(), sender, payloads: [] })
    }
    if (waiting.payloads.length >= MAX_DEFERRED_PAYLOADS) return this.#drop('deferred signaling payloads at their cap')
    waiting.payloads.push(deliver)
  }

  /**
   * A pending slot may have freed, or a sender been demoted: the deferred peers, oldest first, are
   * admitted into the free slots, or past the cap into the slots they may take (a demoted
   * sender's), and their payloads handed to y-webrtc, in order, on the incoming queue (so nothing
   * that arrived meanwhile passes them). Those that waited past DEFERRAL_TIMEOUT, or whose sender
   * was demoted meanwhile, are dropped.
   */
  #drainDeferred (): void {
    if (this.#deferred.size === 0 || this.#draining) return
    this.#draining = true
    this.#incoming = this.#incoming.then(() => {
      this.#draining = false
      const now = Date.now()
      for (const [peerId, waiting] of this.#deferred) {
        if (this.leaving) break
        if (waiting.since <= now - DEFERRAL_TIMEOUT) {
          this.#deferred.delete(peerId)
          this.#drop('deferred signaling payloads waited too long')
          continue
        }
        if (this.#standings.demoted(waiting.sender, now)) {
          this.#deferred.delete(peerId)
          this.#drop('deferred signaling payloads of a sender demoted meanwhile')
          continue
        }
        if (this.#pending.size >= MAX_PENDING && slotToTake(this.#pending.values(), waiting.sender, (holder) => this.#standings.demoted(holder, now)) === null) continue
        this.#deferred.delete(peerId)
        const admission = this.#admit({ from: peerId }, true, waiting.sender)
        if (admission === DEFER) continue
        if (admission !== null) {
          this.#drop(admission)
          continue
        }
        for (const deliver of waiting.payloads) deliver()
      }
    }).catch((err: unknown) => this.#drop(`a signaling message could not be handled (${String(err)})`))
  }

  /**
   * Whether a payload that would make y-webrtc set up a new connection may: a peer id in back-off
   * may not, nor one past the live slots or the pending cap, unless its sender (the handle the
   * signaling server tagged it with) is in good standing against a demoted one, or under its fair
   * share, in which case it takes another sender's oldest slot (pending-slots.ts). An attributable
   * one past the pending cap whose sender is not demoted, and holds no slot or every slot, waits
   * (DEFER), behind what the same peer sent before. Returns the reason, DEFER, or null.
   */
  #admit (payload: { from: string }, attributable: boolean, sender: string | undefined): string | typeof DEFER | null {
    // y-webrtc makes a connection for any announce or signal from a peer it has none with.
    if (this.hasConnection(payload.from)) return null
    if (this.#deferred.has(payload.from)) return DEFER
    const now = Date.now()
    const backoff = this.#backoff.get(payload.from)
    if (backoff !== undefined && backoff.until > now) {
      backoff.retry = true
      return 'a peer that failed to connect, in back-off'
    }
    if (!attributable && this.#unattributed.size >= MAX_UNATTRIBUTED_PENDING) return 'pending connections of unattributable peers at their cap'
    const invited = (this.#invited.get(payload.from) ?? 0) > now
    if (this.#connections.size >= this.#maxLive && !invited) return 'every connection slot is taken'
    if (this.#pending.size >= MAX_PENDING) {
      const taken = slotToTake(this.#pending.values(), sender, (holder) => this.#standings.demoted(holder, now))
      if (taken === null) {
        let holding = 0
        for (const slot of this.#pending.values()) if (slot.sender === sender) holding++
        // A sender in good standing waits for a slot while it holds none, or while every slot is
        // its own (a joiner of a full mesh hears every member at once, all from one sender when
        // they share an address). One that holds a slot while others hold the rest, and asks for
        // another, keeps asking: it is refused, and so demoted, and the senders waiting in good
        // standing take its slots. A demoted one is refused.
        if (attributable && !this.#standings.demoted(sender, now) && (holding === 0 || holding === this.#pending.size)) return DEFER
        this.#standings.refused(sender, holding, now)
        this.#drainDeferred()
        return sender === undefined ? 'pending connections at their cap' : 'pending connections at their cap, and this sender holds its share'
      }
      this.#giveUp(taken.peerId, taken.reason === 'share'
        ? 'pending connections given up for a sender holding fewer (fair share per sender)'
        : 'pending connections given up for a sender in good standing (theirs never opened, or asked past its share)')
    }
    this.#pending.set(payload.from, { peerId: payload.from, since: now, sender, takeable: !invited })
    if (!attributable) this.#unattributed.add(payload.from)
    return null
  }

  /** Gives up the pending connection to `peerId` (counted under `reason`), without a back-off. */
  #giveUp (peerId: string, reason: string): void {
    this.#pending.delete(peerId)
    this.#unattributed.delete(peerId)
    this.dropped[reason] = (this.dropped[reason] ?? 0) + 1
    this.#provider.room?.webrtcConns.get(peerId)?.peer.destroy()
  }

  /** Gives up connections that did not open within PENDING_TIMEOUT, and backs their peer ids off. */
  #expirePending = (): void => {
    const room = this.#provider.room
    const now = Date.now()
    for (const [peerId, { since, sender }] of this.#pending) {
      if (since > now - PENDING_TIMEOUT) continue
      this.#standings.timedOut(sender)
      this.#pending.delete(peerId)
      this.#unattributed.delete(peerId)
      const failures = (this.#backoff.get(peerId)?.failures ?? 0) + 1
      this.#backoff.set(peerId, { until: now + Math.min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1)), failures })
      this.dropped['connections that never opened'] = (this.dropped['connections that never opened'] ?? 0) + 1
      const conn = room?.webrtcConns.get(peerId)
      if (conn !== undefined && !Array.from(this.#connections.values()).some((c) => c.remoteId === peerId)) conn.peer.destroy()
    }
    this.#drainDeferred()
    for (const [peerId, until] of this.#invited) if (until <= now) this.#invited.delete(peerId)
    let retry = false
    for (const [peerId, backoff] of this.#backoff) {
      if (backoff.until > now) continue
      if (backoff.retry === true) {
        backoff.retry = false
        retry = true
      }
      if (backoff.until + MAX_BACKOFF < now) this.#backoff.delete(peerId)
    }
    if (retry && !this.leaving && this.#connections.size < this.#maxLive) {
      this.#announce()
    }
  }

  /** Closes this peer's open connection to `remoteId`, so that its new offer makes a new one. */
  #replaceConnection (remoteId: string): void {
    const room = this.#provider.room
    const existing = room?.webrtcConns.get(remoteId)
    if (room === null || room === undefined || existing === undefined || !existing.connected) return
    // Closed for the layers above at once, not after the goodbye: the new connection's handshake
    // claims the client id the old one is bound to (authenticated-link.ts).
    for (const [channel, connection] of this.#connections) {
      if (connection.remoteId !== remoteId) continue
      this.#connections.delete(channel)
      this.emit('close', [{ connection }])
    }
    // Quietly: y-webrtc's close handler would remove the new connection by peer id.
    destroyQuietly(existing)
    room.webrtcConns.delete(remoteId)
    const counter = 'connections replaced by a new offer from their peer'
    this.dropped[counter] = (this.dropped[counter] ?? 0) + 1
  }

  penalize (remoteId: string): void {
    const failures = (this.#backoff.get(remoteId)?.failures ?? 0) + 1
    this.#backoff.set(remoteId, { until: Date.now() + Math.min(MAX_BACKOFF, FIRST_PENALTY * 2 ** (failures - 1)), failures })
    this.#pending.delete(remoteId)
    this.#unattributed.delete(remoteId)
    this.#deferred.delete(remoteId)
    for (const connection of this.#connections.values()) if (connection.remoteId === remoteId) connection.close()
    this.#provider.room?.webrtcConns.get(remoteId)?.peer.destroy()
    this.#drainDeferred()
  }

  /** The signaling servers refused this peer (a close code, or an error frame for this room). */
  denied (conn: SignalingConn, code: 'UNAUTHORIZED' | 'FORBIDDEN', reason: string): void {
    if (this.leaving) return
    this.emit('denied', [{ source: stripQuery(conn.url), code, reason }])
  }

  setToken (token: string): void {
    for (const conn of this.#provider.signalingConns) conn.url = withToken(conn.url, token)
  }

  /** Connections being set up, not yet open. */
  get pending (): number {
    return this.#pending.size
  }

  #connectionOf (channel: FramedChannel): { connection?: Connection } {
    const connection = this.#connections.get(channel)
    return connection === undefined ? {} : { connection }
  }

  /** A data channel opened: find which remote peer y-webrtc made its connection for. */
  #onOpen = (channel: FramedChannel): void => {
    let remoteId: string | undefined
    this.#provider.room?.webrtcConns.forEach((conn, peerId) => {
      if (conn.peer._pc === channel.pc) remoteId = peerId
    })
    if (remoteId === undefined || this.leaving) {
      channel.close()
      return
    }
    const { pc } = channel
    if (pc.localDescription === null || pc.remoteDescription === null) {
      // Chromium can dispatch the channel's 'open' before the task that resolves
      // setRemoteDescription(answer) (seen under load: 11 ms after the answer came, the offerer's
      // remoteDescription was still null): its binding would name no remote fingerprint and each
      // handshake refuse the other's. It opens for the layers above once the answer shows; what
      // arrives meanwhile (the remote's handshake) waits, bounded. One whose answer never shows
      // stays pending, and PENDING_TIMEOUT gives it up.
      this.#early.set(channel, { messages: [], bytes: 0 })
      const onSignalingState = (): void => {
        if (pc.remoteDescription === null && pc.signalingState !== 'closed') return
        pc.removeEventListener('signalingstatechange', onSignalingState)
        const early = this.#early.get(channel)
        this.#early.delete(channel)
        if (early === undefined || pc.signalingState === 'closed') return
        this.#onOpen(channel)
        const connection = this.#connections.get(channel)
        for (const message of early.messages) {
          if (connection === undefined || this.#connections.get(channel) !== connection) return
          this.emit('message', [{ connection, message }])
        }
      }
      pc.addEventListener('signalingstatechange', onSignalingState)
      return
    }
    const connection = new Connection(remoteId, channel)
    this.#connections.set(channel, connection)
    this.#standings.opened(this.#pending.get(remoteId)?.sender)
    this.#pending.delete(remoteId)
    this.#unattributed.delete(remoteId)
    this.#backoff.delete(remoteId)
    this.#drainDeferred()
    this.emit('open', [{ connection }])
  }

  #onClose = (channel: FramedChannel): void => {
    this.#early.delete(channel)
    const connection = this.#connections.get(channel)
    if (connection === undefined) return
    this.#connections.delete(channel)
    this.emit('close', [{ connection }])
  }

  /** lib0's WebsocketClient passes itself as the second argument. */
  #onSignalingMessage = (message: unknown, conn: SignalingConn): void => {
    if (!isRecord(message) || message.type !== 'publish' || message.topic !== this.#room || typeof message.clients !== 'number') return
    this.emit('count', [{ source: stripQuery(conn.url), clients: message.clients }])
  }

  #onArbiterFrame = (message: unknown): void => {
    if (!isRecord(message) || (message.type !== 'lock-result' && message.type !== 'lock-event')) return
    for (const listener of Array.from(this.#arbiterFrames)) listener(message)
  }

  #onArbiterConnect = (): void => { for (const listener of Array.from(this.#arbiterStatus)) listener(true) }
  #onArbiterDisconnect = (): void => { for (const listener of Array.from(this.#arbiterStatus)) listener(false) }

  #onSignalingStatus = (): void => {
    this.emit('signaling', [{ sources: this.sources }])
  }

  async #teardown (): Promise<void> {
    clearInterval(this.#watchdog)
    this.#deferred.clear()
    const first = this.#provider.signalingConns[0]
    if (first !== undefined) {
      first.off('message', this.#onArbiterFrame)
      first.off('connect', this.#onArbiterConnect)
      first.off('disconnect', this.#onArbiterDisconnect)
    }
    for (const conn of this.#provider.signalingConns) {
      conn.off('message', this.#onSignalingMessage)
      conn.off('connect', this.#onSignalingStatus)
      conn.off('disconnect', this.#onSignalingStatus)
    }
    // y-webrtc re-subscribes and re-announces the room when one of its WebRTC connections closes,
    // even while the room is being left, which would keep a left peer subscribed (and announced)
    // on a shared signaling connection. Its connections are closed here without those listeners.
    // They are closed before y-webrtc's disconnect sends anything over them: sending on a channel
    // whose remote is closing at the same moment crashes @roamhq/wrtc (SIGSEGV in
    // RTCDataChannel::Send, seen when peers leave together).
    this.#provider.room?.webrtcConns.forEach(destroyQuietly)
    for (const [channel, connection] of this.#connections) {
      this.#connections.delete(channel)
      this.emit('close', [{ connection }])
    }
    // Each connection closes once its channel's goodbye is answered (framed-wrtc.ts).
    await this.#wrtc.settled()
    // disconnect() releases the signaling connections (closing those no other room uses);
    // destroy() alone would leave them open.
    this.#provider.disconnect()
    this.#provider.destroy()
    // y-webrtc removes the room from its registry in a callback on `key`, registered by destroy()
    // just now: awaiting `key` afterwards runs after it.
    await this.#provider.key
    await closeLeakedBroadcastChannel(this.#room)
    this.#shadow.destroy()
    rooms.delete(this.#room)
  }
}

const stripQuery = (url: string): string => {
  const at = url.indexOf('?')
  return at === -1 ? url : url.slice(0, at)
}

/**
 * Puts the guard in front of the 'message' listeners a y-webrtc SignalingConn has (its own,
 * registered in its constructor), and behind its `send`: publishes for rooms this realm joined
 * through the adapter go through their link both ways; others pass as they are. Once per connection.
 */
/** The links of the rooms this realm joined over `conn`. */
const linksOn = (conn: SignalingConn): YWebrtcLink[] => Array.from(rooms.values()).filter((link) => link.uses(conn))

/**
 * lib0's WebsocketClient drops a socket's close code; a signaling server says with 4401 that it
 * refused the token. Each socket (lib0 makes one per connection attempt) is watched once.
 */
const tokenOf = (url: string): string | null => {
  try {
    return new URL(url).searchParams.get('token')
  } catch {
    return null
  }
}

const watchCloseCodes = (conn: SignalingConn): void => {
  const watch = (): void => {
    const ws = conn.ws
    if (ws === null || watchedSockets.has(ws)) return
    watchedSockets.add(ws)
    // The token this socket was opened with: a renewal since (setToken) reconnects with the new one.
    const openedWith = tokenOf((ws as { url?: string }).url ?? conn.url)
    ws.addEventListener('close', ({ code, reason }) => {
      if (code !== 4401 || openedWith !== tokenOf(conn.url)) return
      for (const link of linksOn(conn)) link.denied(conn, 'UNAUTHORIZED', `the signaling server refused the access token (${String(reason).slice(0, 64) || 'unauthorized'})`)
    })
  }
  if (closeWatched.has(conn)) return
  closeWatched.add(conn)
  conn.on('connect', watch)
  watch()
}

const guard = (conn: SignalingConn): void => {
  if (guarded.has(conn)) return
  const nativeSend = conn.send.bind(conn)
  guarded.set(conn, nativeSend)
  conn.send = (message: unknown) => {
    const link = isRecord(message) && message.type === 'publish' && typeof message.topic === 'string' ? rooms.get(message.topic) : undefined
    if (link === undefined || !isRecord(message)) return nativeSend(message)
    link.publish(conn, message.data)
  }
  const listeners = Array.from(conn._observers.get('message') ?? [])
  for (const listener of listeners) conn.off('message', listener)
  const forward = (message: unknown, from: SignalingConn): void => {
    for (const listener of listeners) listener(message, from)
  }
  conn.on('message', (message: unknown, from: SignalingConn) => {
    if (isRecord(message) && message.type === 'error' && message.code === 'forbidden_topic' && typeof message.topic === 'string') {
      rooms.get(message.topic)?.denied(from, 'FORBIDDEN', 'the access token does not cover this room')
    }
    const link = isRecord(message) && message.type === 'publish' && typeof message.topic === 'string' ? rooms.get(message.topic) : undefined
    if (link === undefined || !isRecord(message)) return forward(message, from)
    link.receive(message, from, forward)
  })
}

/**
 * y-webrtc's disconnect unsubscribes from the room's BroadcastChannel and then, a few microtasks
 * later (after encrypting), posts a goodbye on it, which makes lib0 open a fresh channel that
 * nobody closes. In Node that channel is a MessagePort that keeps the process alive. Subscribing
 * and unsubscribing a no-op listener closes whatever channel the room has, once the post is done.
 */
const closeLeakedBroadcastChannel = async (room: string): Promise<void> => {
  await new Promise((resolve) => setTimeout(resolve, 0))
  const noop = (): void => {}
  bc.subscribe(room, noop)
  bc.unsubscribe(room, noop)
}

/**
 * The seam between a room's session and what carries its messages. A `Link` is one peer's view of
 * a room's network: the signaling servers it is subscribed through, and a set of connections to
 * remote peers, each carrying whole binary messages in order. The session and its replication see
 * only this interface; y-webrtc-adapter.ts implements it over y-webrtc and WebRTC data channels,
 * memory-link.ts in memory (for tests of everything above the wire).
 */

import type { ObservableV2 } from 'lib0/observable'
import type { Identity } from '../trust/identity.js'

/** One connection to a remote peer. */
export interface LinkConnection {
  /** The remote peer's id in the room's signaling: the id whose signed messages set it up. */
  readonly remoteId: string
  /**
   * What ties this connection to its two ends, as each end sees it: for WebRTC, the DTLS
   * certificate fingerprints of this side's SDP (`local`) and the remote's (`remote`). A handshake
   * that signs both proves that the signer is at the other end of this very connection.
   */
  readonly binding: { readonly local: string, readonly remote: string }
  /** Whether `send` can still deliver. */
  readonly writable: boolean
  /** Sends one whole message. Returns false (sending nothing) once the connection is closing. */
  send: (message: Uint8Array) => boolean
  /** Closes the connection; the link then emits `close` for it. */
  close: () => void
}

/** A signaling server this peer reaches the room through. */
export interface SignalingSource {
  /** Its URL, without any token. */
  readonly id: string
  readonly connected: boolean
}

/**
 * An RTCPeerConnection's `connectionState`, and an RTCDataChannel's `readyState`: the DOM's unions,
 * spelled out so that a Node program compiles against the public types without the DOM's.
 */
export type PeerConnectionState = 'closed' | 'connected' | 'connecting' | 'disconnected' | 'failed' | 'new'
export type DataChannelState = 'closed' | 'closing' | 'connecting' | 'open'

/** The state of one WebRTC connection, for diagnostics. */
export interface ConnectionInfo {
  connectionState: PeerConnectionState
  /** The readyState of each data channel on this connection. */
  dataChannels: DataChannelState[]
}

export interface LinkEvents {
  /** A connection can carry messages. */
  open: (event: { connection: LinkConnection }) => void
  /** A whole message arrived on a connection. */
  message: (event: { connection: LinkConnection, message: Uint8Array }) => void
  /** A connection closed (after `open`). */
  close: (event: { connection: LinkConnection }) => void
  /** A signaling server connected or disconnected. */
  signaling: (event: { sources: readonly SignalingSource[] }) => void
  /** A signaling server relayed a publish to this room, with the room's subscriber count. */
  count: (event: { source: string, clients: number }) => void
  /** A peer of the room was heard from in signaling (an announce or a signal that verified). */
  heard: (event: { peerId: string }) => void
  /**
   * A signaling server refused this peer: its token (`UNAUTHORIZED`, close code 4401, also when
   * it expired), or the room (`FORBIDDEN`, the token does not cover it).
   */
  denied: (event: { source: string, code: 'UNAUTHORIZED' | 'FORBIDDEN', reason: string }) => void
  /** Something a remote sent was dropped (and its connection closed, if it came over one). */
  refused: (event: { reason: string, connection?: LinkConnection }) => void
}

/**
 * A channel to the lock arbiter (the first signaling server): JSON frames both ways and its
 * connection status. The shape locks/arbiter-client.ts expects of its transport.
 */
export interface ArbiterChannel {
  send: (frame: object) => void
  onFrame: (listener: (frame: unknown) => void) => () => void
  onStatus: (listener: (connected: boolean) => void) => () => void
  readonly connected: boolean
}

export interface Link extends ObservableV2<LinkEvents> {
  /** The lock arbiter's channel, for links whose signaling server can arbitrate locks; else undefined. */
  readonly arbiter?: ArbiterChannel | undefined
  /** This peer's id in the room's signaling, once known (see `ready`). */
  readonly localId: string | undefined
  /** Resolves this peer's id in signaling. */
  readonly ready: Promise<string>
  readonly sources: readonly SignalingSource[]
  /** The open connections. */
  readonly connections: readonly LinkConnection[]
  /** What this link dropped from others, by reason (counts since it was made). */
  readonly dropped: Readonly<Record<string, number>>
  /** Connections being set up, not open yet. */
  readonly pending: number
  /** Asks every signaling server for the room's subscriber count (answered by `count`). */
  probe: () => void
  /** Uses `token` for the signaling servers from now on (the next connection attempt). */
  setToken: (token: string) => void
  /** A peer misbehaved: its connections are closed and it is not reconnected at once (a back-off). */
  penalize: (remoteId: string) => void
  /** The WebRTC connections' states (empty for links that are not WebRTC). */
  diagnostics: () => ConnectionInfo[]
  /** Announces this peer to the room, whatever its number of connections (bridge.ts). */
  announce: () => void
  /**
   * Opens a connection to `remoteId`, even beyond `maxConns` (bridge.ts); does nothing if one
   * exists or is being set up.
   */
  connect: (remoteId: string) => void
  /**
   * Leaves the room: closes every connection and subscription. Resolves once a link to a room of
   * the same name can be made again in this JavaScript realm.
   */
  leave: () => Promise<void>
}

export interface LinkOptions {
  /** Signaling server URLs. */
  signaling: string[]
  /** y-webrtc's room password: encrypts signaling. */
  password?: string
  /** Appended to each signaling URL as `?token=`; a promise defers signaling until it settles (undefined: no token). */
  token?: string | Promise<string | undefined>
  /** simple-peer options (`config` with iceServers, ...). */
  peerOpts: Record<string, unknown>
  /** The most connections to open. */
  maxConns?: number
  /** This peer's identity: its id on the wire, and the key that signs for it. */
  identity: Promise<Identity>
  /** `'signaling'`: use the TURN servers the signaling server hands out (transport/turn.ts). */
  turn?: 'signaling'
  /** The largest whole message a remote may send (framed). Default framing.ts's. */
  maxMessageBytes?: number
  /** Protected rooms: signaling payloads carry room tokens, and those without a valid one come last. */
  attestation?: Attestation
}

/**
 * How a protected room attributes signaling payloads: this peer's room token to attach, and the
 * check of a sender's (bound to the sender's id, for this room, unexpired): null, or the reason.
 */
export interface Attestation {
  current: () => string | null
  check: (token: string, from: string) => Promise<string | null>
}

/** Makes the link of one room. */
export type LinkFactory = (room: string, options: LinkOptions) => Link

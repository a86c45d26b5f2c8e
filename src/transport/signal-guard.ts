/**
 * What the guard between the signaling socket and y-webrtc decides, as pure functions over the
 * decrypted payload (the adapter, y-webrtc-adapter.ts, applies them to the socket).
 *
 * Every subscriber of a room can publish into it, and y-webrtc trusts what arrives: a publish whose
 * `signal` is missing or a string, an answer from a peer it never offered to, or (in an encrypted
 * room) data it cannot decrypt makes it throw inside the socket's message handler or leave a
 * rejected promise unhandled. In a browser that is console noise; in Node it kills the process.
 * So a peer with the wrong password, or one malicious client, could crash every Node peer of a
 * room. The guard screens each publish for a room this library joined and hands y-webrtc only
 * the ones it can process; the rest are dropped and reported.
 *
 * The shapes below are exactly what y-webrtc's SignalingConn reads (y-webrtc 10.3).
 *
 * The guard also settles who initiates a WebRTC connection. y-webrtc connects to every peer whose
 * announce it receives, so two peers that announce at the same moment both send an offer. y-webrtc
 * then relies on the browser rolling back its own offer; @roamhq/wrtc throws instead, and the pair
 * can hang without a connection (seen here under load: 2 joins in 25). With the guard, of two
 * peers only the one with the smaller peer id initiates: the larger one answers an announce by
 * announcing itself again, which makes the smaller one connect. A stock y-webrtc peer still
 * initiates on every announce, which works as it did before.
 */

import { isRecord } from '../guards.js'

/** What the guard needs to know of a room to judge a payload. */
export interface SignalContext {
  /** y-webrtc's peer id of this peer in the room, once known. */
  peerId: () => string | undefined
  /** Whether y-webrtc has a connection to `peerId`. */
  hasConnection: (peerId: string) => boolean
}

/** Whether this peer should leave the initiative to the announcing peer, and answer it instead. */
export const shouldAnswerAnnounce = (data: unknown, room: SignalContext): boolean => {
  if (!isRecord(data) || data.type !== 'announce' || typeof data.from !== 'string') return false
  const me = room.peerId()
  return me !== undefined && data.from !== me && me > data.from && !room.hasConnection(data.from)
}

/**
 * Whether y-webrtc can process this (decrypted) signaling payload without throwing.
 * Returns null when it can, or the reason it cannot.
 */
export const screenSignal = (data: unknown, room: SignalContext): string | null => {
  if (!isRecord(data)) return 'the payload is not an object'
  if (data.from === undefined && data.to === undefined) return null // y-webrtc ignores it (a probe, say)
  if (typeof data.from !== 'string') return 'from is not a string'
  if (data.to !== undefined && typeof data.to !== 'string') return 'to is not a string'
  if (data.type !== 'signal') return null // announce needs only `from`; other types are ignored
  if (data.to !== room.peerId()) return null // y-webrtc drops it before reading further
  const signal = data.signal
  if (!isRecord(signal)) return 'signal is not an object'
  if (signal.type !== undefined && typeof signal.type !== 'string') return 'signal.type is not a string'
  if (data.token !== undefined && typeof data.token !== 'number') return 'token is not a number'
  if (signal.type === 'answer' && !room.hasConnection(data.from)) return 'an answer from a peer that was sent no offer'
  return null
}

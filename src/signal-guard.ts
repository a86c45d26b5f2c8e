/**
 * A guard between the signaling socket and y-webrtc.
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

import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as buffer from 'lib0/buffer'

/** What the guard needs to know of a room to screen its messages. */
export interface GuardedRoom {
  /** y-webrtc's peer id of this peer in the room, once known. */
  peerId: () => string | undefined
  /** Whether y-webrtc has a connection to `peerId`. */
  hasConnection: (peerId: string) => boolean
  /** The room's encryption key (`provider.key`), null when not encrypted. */
  key: PromiseLike<CryptoKey | null>
  /** Called with the reason for each publish dropped. */
  onDrop: (reason: string) => void
  /** Publishes this peer's announce again, so that `remotePeerId` (a smaller id) initiates. */
  reannounce: (remotePeerId: string) => void
}

/** Whether this peer should leave the initiative to the announcing peer, and answer it instead. */
export const shouldAnswerAnnounce = (data: unknown, room: Pick<GuardedRoom, 'peerId' | 'hasConnection'>): data is { from: string } => {
  if (!isObject(data) || data.type !== 'announce' || typeof data.from !== 'string') return false
  const me = room.peerId()
  return me !== undefined && data.from !== me && me > data.from && !room.hasConnection(data.from)
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Whether y-webrtc can process this (decrypted) signaling payload without throwing.
 * Returns null when it can, or the reason it cannot.
 */
export const screenSignal = (data: unknown, room: Pick<GuardedRoom, 'peerId' | 'hasConnection'>): string | null => {
  if (!isObject(data)) return 'the payload is not an object'
  if (data.from === undefined && data.to === undefined) return null // y-webrtc ignores it (a probe, say)
  if (typeof data.from !== 'string') return 'from is not a string'
  if (data.to !== undefined && typeof data.to !== 'string') return 'to is not a string'
  if (data.type !== 'signal') return null // announce needs only `from`; other types are ignored
  if (data.to !== room.peerId()) return null // y-webrtc drops it before reading further
  const signal = data.signal
  if (!isObject(signal)) return 'signal is not an object'
  if (signal.type !== undefined && typeof signal.type !== 'string') return 'signal.type is not a string'
  if (data.token !== undefined && typeof data.token !== 'number') return 'token is not a number'
  if (signal.type === 'answer' && !room.hasConnection(data.from)) return 'an answer from a peer that was sent no offer'
  return null
}

/** Encrypts a payload as y-webrtc's crypto.js does: base64 of [varString 'AES-GCM', iv, cipher]. */
export const encryptSignal = async (data: unknown, key: CryptoKey): Promise<string> => {
  const plain = encoding.createEncoder()
  encoding.writeAny(plain, data as Parameters<typeof encoding.writeAny>[1])
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const cipher = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, encoding.toUint8Array(plain)))
  const out = encoding.createEncoder()
  encoding.writeVarString(out, 'AES-GCM')
  encoding.writeVarUint8Array(out, iv)
  encoding.writeVarUint8Array(out, cipher)
  return buffer.toBase64(encoding.toUint8Array(out))
}

/** Decrypts a y-webrtc encrypted payload (see y-webrtc's crypto.js); null when it cannot. */
export const decryptSignal = async (data: unknown, key: CryptoKey): Promise<unknown> => {
  if (typeof data !== 'string') return null
  try {
    const decoder = decoding.createDecoder(buffer.fromBase64(data))
    if (decoding.readVarString(decoder) !== 'AES-GCM') return null
    const iv = decoding.readVarUint8Array(decoder)
    const cipher = decoding.readVarUint8Array(decoder)
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, cipher))
    return decoding.readAny(decoding.createDecoder(plain))
  } catch {
    return null
  }
}

interface Listenable {
  on: (name: string, fn: (...args: any[]) => void) => void
  off: (name: string, fn: (...args: any[]) => void) => void
  _observers: Map<string, Set<(...args: any[]) => void>>
}

const guarded = new WeakSet<object>()

/**
 * Puts the guard in front of the 'message' listeners a y-webrtc SignalingConn has (its own,
 * registered in its constructor). Publishes to rooms `lookup` does not know pass through as they
 * are. Idempotent per connection.
 */
export const guardSignalingConn = (conn: Listenable, lookup: (topic: string) => GuardedRoom | undefined): void => {
  if (guarded.has(conn)) return
  guarded.add(conn)
  const listeners = Array.from(conn._observers.get('message') ?? [])
  for (const listener of listeners) conn.off('message', listener)
  const forward = (args: unknown[]): void => {
    for (const listener of listeners) listener(...args)
  }
  conn.on('message', (...args: unknown[]) => {
    const message = args[0] as { type?: unknown, topic?: unknown, data?: unknown } | null
    const room = isObject(message) && message.type === 'publish' && typeof message.topic === 'string' ? lookup(message.topic) : undefined
    if (room === undefined) return forward(args)
    void room.key.then(async (key) => {
      let data = message?.data
      if (key !== null) {
        if (typeof data !== 'string') return forward(args) // y-webrtc ignores clear data in an encrypted room
        data = await decryptSignal(data, key)
        if (data === null) return room.onDrop('the payload cannot be decrypted with this room\'s password')
      }
      const problem = screenSignal(data, room)
      if (problem !== null) return room.onDrop(problem)
      if (shouldAnswerAnnounce(data, room)) return room.reannounce(data.from)
      forward(args)
    })
  })
}

/**
 * The two key-value contenders behind one interface, so every scenario runs the same work
 * through each: stock y-webrtc with a bare Y.Map (what a user would pick instead), and this
 * library's session store. Both are loaded the way a user loads them: y-webrtc with `ws` as the
 * global WebSocket and `@roamhq/wrtc` passed in; the library from its built Node entry.
 */

import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'
import wrtc from '@roamhq/wrtc'
import { WebSocket } from 'ws'
import { joinRoom } from 'y-session-store/node'
import type { Session, SessionStore } from 'y-session-store/node'

export const KV_CONTENDERS = ['y-webrtc', 'session-store'] as const
export type KvContenderName = typeof KV_CONTENDERS[number]

export type Value = null | boolean | number | string | Value[] | { [key: string]: Value }

export interface JoinSpec {
  room: string
  /** The signaling server's URL. */
  signaling: string
  /** The most WebRTC connections a peer opens (same for both contenders). */
  maxConns: number
  /** A Yjs update applied before the peer connects: the room's history, built once elsewhere. */
  state?: Uint8Array
  /** Count data-channel traffic (it adds a listener per message received and a counter per send). */
  instrument?: boolean
  /**
   * The library's `compactAfter` (default: the library's). The join scenario's seeder writes its
   * history with 0, into one document (epoch 0), which the room's peers then load as their own.
   */
  compactAfter?: number
}

/** Data-channel traffic of one peer, seen below y-webrtc (and below the library's framing). */
export interface Traffic {
  messagesIn: number
  bytesIn: number
  /** Data-channel messages and bytes handed to the native send (below the library's framing). */
  messagesOut: number
  bytesOut: number
  /**
   * Of the messages received, those that carry document updates: y-webrtc's sync messages
   * (type 0) and the library's update batches (type 35), not awareness, checks or frames' tails.
   */
  updatesIn: number
  channelsOpened: number
  channelsClosed: number
  sendErrors: number
  largestSend: number
  lastSendError: string | null
}

export interface KvPeer {
  readonly name: KvContenderName
  readonly doc: Y.Doc
  /** Resolves when the peer may use its data: at once for y-webrtc (it has no such notion), with `sessionStore` for the library. */
  readonly ready: Promise<string>
  readonly traffic: Traffic
  /** Writes `key`. Returns the library's promise, or nothing for a synchronous Y.Map write. */
  set: (key: string, value: Value) => void | Promise<unknown>
  get: (key: string) => unknown
  /** Calls `fn(key, value)` on every change of one of `keys`. The library also calls it once at once per key (its documented behaviour). */
  observe: (keys: readonly string[], fn: (key: string, value: unknown) => void) => void
  /** Open WebRTC connections to other peers. */
  connectedPeers: () => number
  /** The number of the epoch the peer's store is in (the library's history moves), or null for y-webrtc. */
  epoch: () => number | null
  leave: () => Promise<void>
}

const emptyTraffic = (): Traffic => ({ messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, updatesIn: 0, channelsOpened: 0, channelsClosed: 0, sendErrors: 0, largestSend: 0, lastSendError: null })

type Wrtc = typeof wrtc

/**
 * Whether a data-channel message is an update: y-webrtc's sync message (0: its updates, and its
 * sync steps), or the library's batch of updates (35), which travels inside its epoch data message
 * (44, then the epoch's number and seed id as varUints: src/PROTOCOL.md).
 */
const isUpdateMessage = (bytes: Uint8Array): boolean => {
  let i = 0
  if (bytes[0] === 44) {
    i = 1
    for (let field = 0; field < 2; field++) {
      while (i < bytes.length && ((bytes[i] as number) & 0x80) !== 0) i++
      i++
    }
  }
  return i === 0 ? bytes[0] === 0 || bytes[0] === 35 : bytes[i] === 35
}

/**
 * `wrtc` whose data channels count what they receive and what fails to send. The library frames
 * on top of it (it takes `peerOpts.wrtc` as its base), so both contenders are counted on the wire.
 */
const instrumentedWrtc = (traffic: Traffic): Wrtc => {
  const watch = (channel: RTCDataChannel): void => {
    channel.addEventListener('open', () => { traffic.channelsOpened++ })
    channel.addEventListener('close', () => { traffic.channelsClosed++ })
    channel.addEventListener('message', (event: MessageEvent) => {
      const data: unknown = event.data
      traffic.messagesIn++
      traffic.bytesIn += typeof data === 'string' ? Buffer.byteLength(data) : (data as ArrayBuffer).byteLength
      if (typeof data !== 'string' && (data as ArrayBuffer).byteLength > 0) {
        if (isUpdateMessage(new Uint8Array(data as ArrayBuffer))) traffic.updatesIn++
      }
    })
    const send = channel.send.bind(channel) as (data: Uint8Array | string) => void
    channel.send = ((data: Uint8Array | string) => {
      const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
      traffic.largestSend = Math.max(traffic.largestSend, size)
      traffic.messagesOut++
      traffic.bytesOut += size
      try {
        send(data)
      } catch (err) {
        traffic.sendErrors++
        traffic.lastSendError = `${size}-byte message: ${err instanceof Error ? err.message : String(err)}`
        throw err
      }
    }) as RTCDataChannel['send']
  }
  class CountingPeerConnection extends wrtc.RTCPeerConnection {
    constructor (config?: RTCConfiguration) {
      super(config)
      this.addEventListener('datachannel', (event) => watch(event.channel))
    }

    override createDataChannel (label: string, init?: RTCDataChannelInit): RTCDataChannel {
      const channel = super.createDataChannel(label, init)
      watch(channel)
      return channel
    }
  }
  return { ...wrtc, RTCPeerConnection: CountingPeerConnection }
}

const joinYWebrtc = (spec: JoinSpec): KvPeer => {
  const g = globalThis as { WebSocket?: unknown }
  g.WebSocket ??= WebSocket
  const traffic = emptyTraffic()
  const doc = new Y.Doc()
  if (spec.state !== undefined) Y.applyUpdate(doc, spec.state)
  const map = doc.getMap<unknown>('map')
  const provider = new WebrtcProvider(spec.room, doc, {
    signaling: [spec.signaling],
    maxConns: spec.maxConns,
    peerOpts: { wrtc: spec.instrument === true ? instrumentedWrtc(traffic) : wrtc }
  })
  return {
    name: 'y-webrtc',
    doc,
    ready: Promise.resolve('n/a'),
    traffic,
    set: (key, value) => { map.set(key, value) },
    get: (key) => map.get(key),
    observe: (keys, fn) => {
      const wanted = new Set(keys)
      map.observe((event) => {
        for (const key of event.keysChanged) {
          if (wanted.has(key)) fn(key, map.get(key))
        }
      })
    },
    epoch: () => null,
    connectedPeers: () => {
      let open = 0
      provider.room?.webrtcConns.forEach((conn: { connected: boolean }) => { if (conn.connected) open++ })
      return open
    },
    leave: async () => {
      provider.disconnect()
      provider.destroy()
      await provider.key
      doc.destroy()
    }
  }
}

const joinSessionStore = (spec: JoinSpec): KvPeer => {
  const traffic = emptyTraffic()
  const session: Session = joinRoom(spec.room, {
    signaling: [spec.signaling],
    maxConns: spec.maxConns,
    ...(spec.compactAfter === undefined ? {} : { compactAfter: spec.compactAfter }),
    ...(spec.instrument === true ? { peerOpts: { wrtc: instrumentedWrtc(traffic) } } : {})
  })
  // The room's history goes in before the first connection, as if this peer had lived through it
  // (in epoch 0: the seeder wrote it there; with moves on, the peer then moves as any would).
  if (spec.state !== undefined) Y.applyUpdate(session.doc, spec.state)
  let store: SessionStore | null = null
  const ready = session.sessionStore.then((s) => {
    store = s
    return session.status.sync
  })
  const need = (): SessionStore => {
    if (store === null) throw new Error('the session store is not available yet')
    return store
  }
  return {
    name: 'session-store',
    doc: session.doc,
    ready,
    traffic,
    set: (key, value) => need().set(key, value),
    get: (key) => store?.get(key),
    observe: (keys, fn) => { need().observeChanges(keys, fn) },
    connectedPeers: () => session.status.webrtcPeers,
    epoch: () => session.epoch.n,
    leave: () => session.leave()
  }
}

export const joinAs = (name: KvContenderName, spec: JoinSpec): KvPeer =>
  name === 'y-webrtc' ? joinYWebrtc(spec) : joinSessionStore(spec)

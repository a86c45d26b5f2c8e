/**
 * The WebRTC implementation this library hands to simple-peer (its `wrtc` option). Every
 * RTCPeerConnection simple-peer creates is one of ours, and so is every data channel on it; this
 * is how the library owns the data plane while y-webrtc and simple-peer only set connections up.
 *
 * On each data channel:
 * - what simple-peer sends (y-webrtc's own sync and awareness messages, written for a document the
 *   library never uses) is dropped and counted: the library's replication sends instead;
 * - what arrives is reassembled from frames (framing.ts) and given to `hooks.onMessage`, never to
 *   simple-peer;
 * - `FramedChannel.send` frames large messages and queues them under backpressure.
 * A remote that breaks the framing protocol, or that a message handler throws on, has its channel
 * closed and is reported through `hooks.onError`; nothing it sends can reach the process.
 *
 * Closing says goodbye first (framing.ts: BYE, BYE_ACK), and a peer connection closes only after
 * its channels have: @roamhq/wrtc clears a channel's native handle on its signaling thread when
 * the channel closes, and a `send` on the main thread at that moment dereferences it (SIGSEGV in
 * RTCDataChannel::Send, seen here about once in 25 runs of a peer leaving a room of three). After a
 * goodbye neither end sends on the channel, so the native close never meets a send.
 */

import { DEFAULT_CHUNK_BYTES, DEFAULT_MAX_MESSAGE_BYTES, FRAME_BYE, FRAME_BYE_ACK, FRAME_MARKER, FrameDecoder, encodeFrames } from './framing.js'

/** The WebRTC implementation shape simple-peer takes as `wrtc` (browsers' globals, @roamhq/wrtc). */
export interface WrtcImplementation {
  RTCPeerConnection: typeof RTCPeerConnection
  RTCSessionDescription: typeof RTCSessionDescription
  RTCIceCandidate: typeof RTCIceCandidate
}

/** One data channel as the layers above see it. */
export interface FramedChannel {
  readonly pc: RTCPeerConnection
  readonly channel: RTCDataChannel
  /** Whether messages can still be sent (open, and not closing). */
  readonly writable: boolean
  /** Sends one whole message, framed when large. Returns false (and sends nothing) when not writable. */
  send: (message: Uint8Array) => boolean
  /**
   * Closes the channel: nothing is sent or delivered afterwards. What was queued goes out first,
   * then the goodbye; the native channel closes on the remote's answer, or GOODBYE_TIMEOUT after.
   */
  close: () => void
}

export interface ChannelHooks {
  /** The channel opened: it can carry messages. */
  onOpen?: (channel: FramedChannel) => void
  /** A whole message arrived. */
  onMessage?: (channel: FramedChannel, message: Uint8Array) => void
  /** The channel closed (after onOpen, or without ever opening). */
  onClose?: (channel: FramedChannel) => void
  /** The remote broke the framing protocol, or `onMessage` threw; the channel is being closed. */
  onError?: (channel: FramedChannel, error: Error) => void
}

/** Where a channel fires no 'bufferedamountlow', how often a queue over the high-water mark is drained. */
const DRAIN_POLL_MS = 5

/** A closing channel waits this long for the remote's goodbye answer (and its queue to drain) before it closes anyway. */
export const GOODBYE_TIMEOUT = 500

/** How the channels' goodbyes went (framing.ts: BYE, BYE_ACK). */
export interface Goodbyes {
  /** BYE sent by this end. */
  sent: number
  /** Of those, answered by the remote (an answer, its own BYE, or its close). */
  answered: number
  /** Of those, closed at GOODBYE_TIMEOUT without an answer. */
  timedOut: number
  /** BYE received from the remote (answered, then closed by this end). */
  received: number
}

/** A framed message not complete this long after its first frame closes the channel. */
export const FRAMED_MESSAGE_TIMEOUT = 30_000

export interface FramingOptions {
  /** Payload bytes per frame. Default 16 KiB. */
  chunkBytes?: number
  /** A framed message larger than this closes the channel. Default 64 MiB. */
  maxMessageBytes?: number
  /** A framed message must be complete within this many ms of its first frame. Default 30 s. */
  messageTimeout?: number
  /** Frames wait while the channel buffers more than this many bytes. Default 1 MiB. */
  highWaterMark?: number
}

export interface FramedWrtc extends WrtcImplementation {
  /** Peer connections created and not yet closed or failed. */
  readonly connections: Set<RTCPeerConnection>
  /** The data channels of a peer connection (simple-peer opens one). */
  channelsOf: (pc: RTCPeerConnection) => FramedChannel[]
  /** Messages simple-peer tried to send, dropped (y-webrtc's own data plane). */
  readonly muted: { messages: number, bytes: number }
  readonly goodbyes: Goodbyes
  /** Resolves once every goodbye under way has ended (each within GOODBYE_TIMEOUT). */
  settled: () => Promise<void>
}

export const createFramedWrtc = (base: WrtcImplementation, hooks: ChannelHooks = {}, options: FramingOptions = {}): FramedWrtc => {
  const connections = new Set<RTCPeerConnection>()
  const channels = new WeakMap<RTCPeerConnection, FramedChannel[]>()
  const muted = { messages: 0, bytes: 0 }
  const goodbyes: Goodbyes = { sent: 0, answered: 0, timedOut: 0, received: 0 }
  const underWay = new Set<Promise<void>>()
  const adopt = (channel: RTCDataChannel, pc: RTCPeerConnection): RTCDataChannel => {
    const framed = frameChannel(channel, pc, hooks, options, { muted, goodbyes, underWay })
    if (framed === null) return channel
    const list = channels.get(pc)
    if (list === undefined) channels.set(pc, [framed])
    else list.push(framed)
    return channel
  }
  const Base = base.RTCPeerConnection
  class FramedRTCPeerConnection extends Base {
    constructor (config?: RTCConfiguration) {
      super(config)
      connections.add(this)
      // Registered before simple-peer sets `ondatachannel`, so the channel is adopted first.
      this.addEventListener('datachannel', (event) => adopt(event.channel, this))
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'closed' || this.connectionState === 'failed') connections.delete(this)
      })
    }

    override createDataChannel (label: string, init?: RTCDataChannelInit): RTCDataChannel {
      return adopt(super.createDataChannel(label, init), this)
    }

    override close (): void {
      connections.delete(this)
      // simple-peer closes its channel, then the connection at once: the connection waits for
      // the channels' goodbyes, since closing it closes them under the remote's sends.
      const ending: Array<Promise<void>> = []
      for (const channel of channels.get(this) ?? []) {
        const goodbye = endings.get(channel)?.()
        if (goodbye !== undefined) ending.push(goodbye)
      }
      if (ending.length === 0) super.close()
      else void Promise.all(ending).then(() => super.close())
    }
  }
  return {
    RTCPeerConnection: FramedRTCPeerConnection,
    RTCSessionDescription: base.RTCSessionDescription,
    RTCIceCandidate: base.RTCIceCandidate,
    connections,
    channelsOf: (pc) => channels.get(pc) ?? [],
    muted,
    goodbyes,
    settled: async () => { await Promise.all(underWay) }
  }
}

const adopted = new WeakSet<RTCDataChannel>()
/** Per framed channel: closes it, and returns its goodbye under way if it has one. */
const endings = new WeakMap<FramedChannel, () => Promise<void> | undefined>()

const BYE = new Uint8Array([FRAME_MARKER, FRAME_BYE])
const BYE_ACK = new Uint8Array([FRAME_MARKER, FRAME_BYE_ACK])

const asBytes = (data: unknown): Uint8Array | null => {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return null
}

/**
 * Patches one channel in place: `send` and `onmessage` (what simple-peer uses) are cut off from
 * the wire, and the returned FramedChannel carries the library's messages. Other properties stay
 * native, so simple-peer still sees the channel open, drain and close.
 */
const frameChannel = (channel: RTCDataChannel, pc: RTCPeerConnection, hooks: ChannelHooks, options: FramingOptions, { muted, goodbyes, underWay }: {
  muted: { messages: number, bytes: number }
  goodbyes: Goodbyes
  underWay: Set<Promise<void>>
}): FramedChannel | null => {
  if (adopted.has(channel)) return null
  adopted.add(channel)
  channel.binaryType = 'arraybuffer'
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
  const highWaterMark = options.highWaterMark ?? 1024 * 1024
  const decoder = new FrameDecoder(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES)
  const nativeSend = channel.send.bind(channel) as (data: Uint8Array) => void
  const nativeClose = channel.close.bind(channel)
  const queue: Uint8Array[] = []
  // Once the channel or its connection is closing, native sends are refused here: @roamhq/wrtc
  // can crash (SIGSEGV) sending on a channel whose native side is being torn down.
  let closing = false
  let closed = false
  // The goodbye under way (close() was called while open): no new message is taken.
  let goodbye: Promise<void> | undefined
  let endGoodbye: (() => void) | undefined
  let poll: ReturnType<typeof setTimeout> | undefined
  let opened = false
  // Reported once: on 'open', or at adoption if the channel is open already, or before the first
  // message if that is dispatched first (seen with @roamhq/wrtc under load).
  const open = (): void => {
    if (opened || closed) return
    opened = true
    isOpen = true
    hooks.onOpen?.(framed)
  }
  const stop = (): void => {
    closing = true
    queue.length = 0
    clearTimeout(poll)
  }

  // readyState and bufferedAmount are blocking calls into libwebrtc's signaling thread in
  // @roamhq/wrtc (12-14 µs each, measured; a 100-byte send costs about 90): the state is followed
  // through events instead, and `buffered` is an upper bound of bufferedAmount (what was sent
  // since it was last read), read again only when the bound reaches the high-water mark. The
  // native send checks the state itself and throws InvalidStateError when it is not open.
  let isOpen = channel.readyState === 'open'
  let buffered = 0
  const belowHighWater = (): boolean => {
    if (buffered < highWaterMark) return true
    buffered = channel.bufferedAmount
    return buffered < highWaterMark
  }

  /** A native send that throws (the channel closed under it) marks the channel closing. */
  const sendNow = (data: Uint8Array): boolean => {
    try {
      nativeSend(data)
    } catch {
      stop()
      return false
    }
    buffered += data.length
    return true
  }

  // @roamhq/wrtc has no bufferedAmountLowThreshold and never fires 'bufferedamountlow': there,
  // a queue over the high-water mark is drained by polling instead (a 5 MB state stalled for good).
  const lowEvents = typeof channel.bufferedAmountLowThreshold === 'number'
  const flush = (): void => {
    poll = undefined
    while (queue.length > 0 && !closing && isOpen && belowHighWater()) {
      const frame = queue.shift() as Uint8Array
      if (!sendNow(frame)) return
      // BYE is the last message this end sends.
      if (frame === BYE) return stop()
    }
    if (!lowEvents && queue.length > 0 && !closing && poll === undefined) poll = setTimeout(flush, DRAIN_POLL_MS)
  }

  const framed: FramedChannel = {
    pc,
    channel,
    get writable () {
      return !closing && isOpen && goodbye === undefined
    },
    send: (message) => {
      if (closing || !isOpen || goodbye !== undefined) return false
      const frames = encodeFrames(message, chunkBytes)
      if (queue.length === 0 && frames.length === 1 && belowHighWater()) return sendNow(frames[0] as Uint8Array)
      queue.push(...frames)
      flush()
      return true
    },
    close: () => {
      end()
    }
  }

  /** Closes now: no goodbye (not open, or already closing), or the goodbye has ended. */
  const closeNow = (): void => {
    stop()
    nativeClose()
    endGoodbye?.()
  }
  /** Says goodbye when open and not closing yet, else closes now; returns the goodbye under way. */
  const end = (): Promise<void> | undefined => {
    if (goodbye !== undefined || closed) return goodbye
    if (closing || !isOpen) {
      closeNow()
      return undefined
    }
    goodbyes.sent++
    let timedOut = false
    let timer: ReturnType<typeof setTimeout> | undefined
    goodbye = new Promise<void>((resolve) => {
      // Whatever ends the goodbye but the timeout is the remote's answer: BYE_ACK, its own BYE, or its close.
      endGoodbye = () => {
        endGoodbye = undefined
        clearTimeout(timer)
        if (!timedOut) goodbyes.answered++
        underWay.delete(goodbye as Promise<void>)
        resolve()
      }
    })
    underWay.add(goodbye)
    timer = setTimeout(() => {
      timedOut = true
      goodbyes.timedOut++
      closeNow()
    }, GOODBYE_TIMEOUT)
    queue.push(BYE)
    flush()
    return goodbye
  }
  endings.set(framed, end)

  /** A goodbye frame from the remote. */
  const onGoodbye = (kind: number): void => {
    if (kind === FRAME_BYE) {
      goodbyes.received++
      // Both ends said goodbye at once: each has sent its last message; no answer is sent.
      if (goodbye !== undefined) return closeNow()
      stop()
      try {
        nativeSend(BYE_ACK)
      } catch {}
      return closeNow()
    }
    closeNow()
  }

  const fail = (error: Error): void => {
    if (closing || goodbye !== undefined) return
    try {
      hooks.onError?.(framed, error)
    } finally {
      framed.close()
    }
  }

  let unfinished: ReturnType<typeof setTimeout> | undefined
  channel.addEventListener('close', () => {
    isOpen = false
    stop()
    endGoodbye?.()
    clearTimeout(unfinished)
    if (closed) return
    closed = true
    hooks.onClose?.(framed)
  })
  channel.addEventListener('error', stop)
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'closed' || pc.connectionState === 'failed') stop()
  })
  channel.addEventListener('bufferedamountlow', flush)
  if (channel.bufferedAmountLowThreshold === 0) channel.bufferedAmountLowThreshold = highWaterMark / 4
  Object.defineProperty(channel, 'close', { configurable: true, writable: true, value: framed.close })
  Object.defineProperty(channel, 'send', {
    configurable: true,
    writable: true,
    value: (data: Uint8Array | string) => {
      muted.messages++
      muted.bytes += typeof data === 'string' ? data.length : (data as Uint8Array).byteLength
    }
  })
  // Reading `onmessage` yields null, so implementations that dispatch to `this.onmessage`
  // themselves (@roamhq/wrtc) find no handler; simple-peer's is kept and never called.
  Object.defineProperty(channel, 'onmessage', { configurable: true, get: () => null, set: () => {} })
  channel.addEventListener('message', (event: MessageEvent) => {
    if (closed) return
    const bytes = asBytes(event.data)
    if (bytes !== null && bytes.length === 2 && bytes[0] === FRAME_MARKER && (bytes[1] === FRAME_BYE || bytes[1] === FRAME_BYE_ACK)) return onGoodbye(bytes[1])
    if (closing || goodbye !== undefined) return
    if (bytes === null) return fail(new Error('a text message (the protocol is binary)'))
    let message: Uint8Array | null
    try {
      message = decoder.push(bytes)
    } catch (err) {
      return fail(err as Error)
    }
    if (message === null) {
      // A framed message that never ends would hold its pieces for good.
      unfinished ??= setTimeout(() => fail(new Error(`a framed message not finished within ${options.messageTimeout ?? FRAMED_MESSAGE_TIMEOUT} ms`)), options.messageTimeout ?? FRAMED_MESSAGE_TIMEOUT)
      return
    }
    clearTimeout(unfinished)
    unfinished = undefined
    open()
    try {
      hooks.onMessage?.(framed, message)
    } catch (err) {
      fail(err as Error)
    }
  })
  channel.addEventListener('open', open)
  if (isOpen) queueMicrotask(open)
  return framed
}

/**
 * Message framing for WebRTC data channels.
 *
 * y-webrtc sends a whole document state as one data-channel message, and a message over the
 * remote's max-message-size (256 KiB in Chromium and libwebrtc) silently kills the connection.
 * A room that lived long enough would become unjoinable. This module splits large messages into
 * chunks and reassembles them on the other side, below y-webrtc and simple-peer, so neither has to
 * change: we hand simple-peer an `RTCPeerConnection` whose data channels frame transparently.
 *
 * Wire format (per data-channel message, binary):
 * - A message whose first byte is not `FRAME_MARKER` is a whole message, passed through untouched.
 *   y-webrtc messages start with a small varuint message type, so ordinary traffic carries no
 *   overhead and stays readable by a stock y-webrtc peer.
 * - `[FRAME_MARKER, FRAME_MORE | FRAME_LAST, ...payload]` is one chunk of a framed message. Chunks
 *   of one message are sent back to back on an ordered, reliable channel, so the receiver appends
 *   payloads until it sees `FRAME_LAST`. A message that is large, or that itself starts with
 *   `FRAME_MARKER`, is always framed.
 */

export const FRAME_MARKER = 0xf8
export const FRAME_MORE = 0
export const FRAME_LAST = 1
/** The payload bytes per chunk: 16 KiB is the size every WebRTC implementation accepts. */
export const DEFAULT_CHUNK_BYTES = 16 * 1024
/** A framed message larger than this is a protocol violation: the channel is closed. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

/** Splits `message` into data-channel messages of at most `chunkBytes + 2` bytes. */
export const encodeFrames = (message: Uint8Array, chunkBytes = DEFAULT_CHUNK_BYTES): Uint8Array[] => {
  if (message.length <= chunkBytes && message[0] !== FRAME_MARKER) return [message]
  const frames: Uint8Array[] = []
  for (let offset = 0; offset < message.length || frames.length === 0; offset += chunkBytes) {
    const piece = message.subarray(offset, offset + chunkBytes)
    const frame = new Uint8Array(piece.length + 2)
    frame[0] = FRAME_MARKER
    frame[1] = offset + chunkBytes >= message.length ? FRAME_LAST : FRAME_MORE
    frame.set(piece, 2)
    frames.push(frame)
  }
  return frames
}

export class FrameError extends Error {
  override name = 'FrameError'
}

/**
 * Reassembles messages from frames received in order. `push` returns a whole message, or null
 * while a framed message is incomplete; it throws FrameError on a malformed or oversize stream.
 */
export class FrameDecoder {
  private pieces: Uint8Array[] = []
  private bytes = 0

  constructor (private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  push (frame: Uint8Array): Uint8Array | null {
    if (frame[0] !== FRAME_MARKER) {
      if (this.pieces.length > 0) throw new FrameError('whole message inside a framed message')
      return frame
    }
    const flag = frame[1]
    if (frame.length < 2 || (flag !== FRAME_MORE && flag !== FRAME_LAST)) throw new FrameError('malformed frame')
    this.bytes += frame.length - 2
    if (this.bytes > this.maxMessageBytes) throw new FrameError(`framed message over ${this.maxMessageBytes} bytes`)
    this.pieces.push(frame.subarray(2))
    if (flag === FRAME_MORE) return null
    const message = concat(this.pieces, this.bytes)
    this.pieces = []
    this.bytes = 0
    return message
  }
}

const concat = (pieces: Uint8Array[], length: number): Uint8Array => {
  if (pieces.length === 1) return pieces[0] as Uint8Array
  const out = new Uint8Array(length)
  let offset = 0
  for (const piece of pieces) {
    out.set(piece, offset)
    offset += piece.length
  }
  return out
}

/** The WebRTC implementation shape simple-peer takes as `wrtc` (browsers' globals, @roamhq/wrtc). */
export interface WrtcImplementation {
  RTCPeerConnection: typeof RTCPeerConnection
  RTCSessionDescription: typeof RTCSessionDescription
  RTCIceCandidate: typeof RTCIceCandidate
}

export interface FramingHooks {
  /** A data channel opened (its peer connection is usable). */
  onOpen?: (channel: RTCDataChannel, pc: RTCPeerConnection) => void
  /** A data channel closed. */
  onClose?: (channel: RTCDataChannel, pc: RTCPeerConnection) => void
  /** A whole message was delivered to the channel's `onmessage` handler (called after it). */
  onMessage?: (message: Uint8Array, channel: RTCDataChannel) => void
  /** The remote broke the framing protocol, or sent a message the handler threw on; the channel is closed. */
  onError?: (error: Error, channel: RTCDataChannel) => void
}

export interface FramingOptions extends FramingHooks {
  chunkBytes?: number
  maxMessageBytes?: number
  /** Chunks wait while the channel buffers more than this many bytes. Default 1 MiB. */
  highWaterMark?: number
}

/**
 * Returns a `wrtc` implementation for simple-peer whose data channels frame large messages.
 * Every peer connection it creates is tracked in `connections` until it closes.
 */
export const createFramedWrtc = (base: WrtcImplementation, options: FramingOptions = {}): WrtcImplementation & { connections: Set<RTCPeerConnection> } => {
  const connections = new Set<RTCPeerConnection>()
  const Base = base.RTCPeerConnection
  class FramedRTCPeerConnection extends Base {
    constructor (config?: RTCConfiguration) {
      super(config)
      connections.add(this)
      // Registered before simple-peer sets `ondatachannel`, so it patches the channel first.
      this.addEventListener('datachannel', (event) => frameChannel(event.channel, this, options))
      this.addEventListener('connectionstatechange', () => {
        if (this.connectionState === 'closed' || this.connectionState === 'failed') connections.delete(this)
      })
    }

    override createDataChannel (label: string, init?: RTCDataChannelInit): RTCDataChannel {
      return frameChannel(super.createDataChannel(label, init), this, options)
    }

    override close (): void {
      connections.delete(this)
      for (const stop of closers.get(this) ?? []) stop()
      super.close()
    }
  }
  return {
    RTCPeerConnection: FramedRTCPeerConnection,
    RTCSessionDescription: base.RTCSessionDescription,
    RTCIceCandidate: base.RTCIceCandidate,
    connections
  }
}

const framed = new WeakSet<RTCDataChannel>()
/** Per connection, what marks its channels closing (called before the native close). */
const closers = new WeakMap<RTCPeerConnection, Array<() => void>>()

/**
 * Patches one channel in place: `send` frames and queues under backpressure, and the
 * `onmessage` handler receives whole messages. Other properties stay native.
 */
const frameChannel = (channel: RTCDataChannel, pc: RTCPeerConnection, options: FramingOptions): RTCDataChannel => {
  if (framed.has(channel)) return channel
  framed.add(channel)
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES
  const highWaterMark = options.highWaterMark ?? 1024 * 1024
  const decoder = new FrameDecoder(options.maxMessageBytes)
  const nativeSend = channel.send.bind(channel) as (data: Uint8Array | string) => void
  const queue: Uint8Array[] = []
  let handler: ((event: MessageEvent) => void) | null = null
  // Once the channel or its connection is closing, native sends are refused here: @roamhq/wrtc
  // can crash (SIGSEGV) sending on a channel whose native side is being torn down.
  let closing = false
  const stop = (): void => { closing = true }
  channel.addEventListener('close', stop)
  channel.addEventListener('error', stop)
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'closed' || pc.connectionState === 'failed') stop()
  })
  const stoppers = closers.get(pc)
  if (stoppers === undefined) closers.set(pc, [stop])
  else stoppers.push(stop)
  const nativeClose = channel.close.bind(channel)
  Object.defineProperty(channel, 'close', {
    configurable: true,
    writable: true,
    value: () => {
      stop()
      nativeClose()
    }
  })

  const flush = (): void => {
    while (queue.length > 0 && !closing && channel.readyState === 'open' && channel.bufferedAmount < highWaterMark) {
      nativeSend(queue.shift() as Uint8Array)
    }
  }
  channel.addEventListener('bufferedamountlow', flush)
  if (channel.bufferedAmountLowThreshold === 0) channel.bufferedAmountLowThreshold = highWaterMark / 4

  Object.defineProperty(channel, 'send', {
    configurable: true,
    writable: true,
    value: (data: Uint8Array | string) => {
      if (closing) throw new DOMException('the data channel is closing', 'InvalidStateError')
      if (typeof data === 'string') return nativeSend(data)
      const frames = encodeFrames(data instanceof Uint8Array ? data : new Uint8Array(data), chunkBytes)
      if (queue.length === 0 && frames.length === 1) return nativeSend(frames[0] as Uint8Array)
      if (channel.readyState !== 'open') return nativeSend(frames[0] as Uint8Array) // throws as native would
      queue.push(...frames)
      flush()
    }
  })
  // The handler is kept here and called with whole messages; reading `onmessage` yields null so
  // implementations that dispatch to `this.onmessage` themselves (@roamhq/wrtc) do not call it twice.
  Object.defineProperty(channel, 'onmessage', {
    configurable: true,
    get: () => null,
    set: (fn: ((event: MessageEvent) => void) | null) => { handler = fn }
  })
  channel.addEventListener('message', (event: MessageEvent) => {
    const data: unknown = event.data
    if (typeof data === 'string') {
      handler?.call(channel, event)
      return
    }
    let message: Uint8Array | null
    try {
      message = decoder.push(data instanceof Uint8Array ? data : new Uint8Array(data as ArrayBuffer))
    } catch (err) {
      options.onError?.(err as Error, channel)
      channel.close()
      return
    }
    if (message === null) return
    const whole = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength ? message.buffer : message.slice().buffer
    try {
      handler?.call(channel, { data: whole } as MessageEvent)
    } catch (err) {
      // y-webrtc decodes synchronously in this call and throws on a malformed message; in Node an
      // exception here would be uncaught and kill the process. A peer that sends one is dropped.
      options.onError?.(err as Error, channel)
      channel.close()
      return
    }
    options.onMessage?.(message, channel)
  })
  channel.addEventListener('open', () => options.onOpen?.(channel, pc))
  channel.addEventListener('close', () => {
    queue.length = 0
    options.onClose?.(channel, pc)
  })
  return channel
}

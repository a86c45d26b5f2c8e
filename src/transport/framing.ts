/**
 * Message framing for WebRTC data channels.
 *
 * y-webrtc sends a whole document state as one data-channel message, and a message over the
 * remote's max-message-size (256 KiB in Chromium and libwebrtc) silently kills the connection.
 * A room that lived long enough would become unjoinable. This module is the codec: it splits large
 * messages into chunks and reassembles them on the other side. It is pure; framed-wrtc.ts applies
 * it to real data channels.
 *
 * Wire format (per data-channel message, binary):
 * - A message whose first byte is not `FRAME_MARKER` is a whole message, passed through untouched.
 *   y-webrtc messages start with a small varuint message type, so ordinary traffic carries no
 *   overhead and stays readable by a stock y-webrtc peer.
 * - `[FRAME_MARKER, FRAME_MORE | FRAME_LAST, ...payload]` is one chunk of a framed message. Chunks
 *   of one message are sent back to back on an ordered, reliable channel, so the receiver appends
 *   payloads until it sees `FRAME_LAST`. A message that is large, or that itself starts with
 *   `FRAME_MARKER`, is always framed.
 * - `[FRAME_MARKER, FRAME_BYE]` and `[FRAME_MARKER, FRAME_BYE_ACK]`, two bytes, are the goodbye of
 *   a channel being closed (framed-wrtc.ts): the closer sends BYE as its last message; the other
 *   end stops sending, answers BYE_ACK as its last message and closes; the closer closes on the
 *   answer. Neither end ever sends on a channel the other is closing.
 */

export const FRAME_MARKER = 0xf8
export const FRAME_MORE = 0
export const FRAME_LAST = 1
/** A closing channel's last message (two bytes, never inside a framed message). */
export const FRAME_BYE = 2
/** The answer to FRAME_BYE: the last message of the other end. */
export const FRAME_BYE_ACK = 3
/** The payload bytes per chunk: 16 KiB is the size every WebRTC implementation accepts. */
export const DEFAULT_CHUNK_BYTES = 16 * 1024
/** A framed message larger than this is a protocol violation: the channel is closed. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** Every frame of a framed message but the last carries at least this much (honest ones: a chunk). */
export const MIN_FRAME_PAYLOAD = 1024

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

  constructor (private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES, private readonly minFramePayload = MIN_FRAME_PAYLOAD) {}

  /** Whether a framed message has begun and not ended. */
  get inProgress (): boolean {
    return this.pieces.length > 0
  }

  push (frame: Uint8Array): Uint8Array | null {
    if (frame[0] !== FRAME_MARKER) {
      if (this.pieces.length > 0) throw new FrameError('whole message inside a framed message')
      return frame
    }
    const flag = frame[1]
    if (frame.length < 2 || (flag !== FRAME_MORE && flag !== FRAME_LAST)) throw new FrameError('malformed frame')
    // Tiny frames would make a message of many pieces, each held at a cost beyond its bytes.
    if (flag === FRAME_MORE && frame.length - 2 < this.minFramePayload) throw new FrameError(`a frame of ${frame.length - 2} bytes inside a framed message (at least ${this.minFramePayload})`)
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

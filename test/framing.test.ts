/**
 * The framing codec, pure: what goes on the wire and how it is read back (the channels that use
 * it are tested in framed-wrtc.test.ts).
 */
import { describe, expect, it } from 'vitest'
import * as prng from 'lib0/prng'
import { DEFAULT_CHUNK_BYTES, encodeFrames, FrameDecoder, FrameError, FRAME_MARKER, FRAME_LAST, FRAME_MORE } from '../src/transport/framing.js'

const bytes = (n: number, seed = 1): Uint8Array => prng.uint8Array(prng.create(seed), n)

const roundTrip = (message: Uint8Array, chunk: number): Uint8Array[] => {
  const decoder = new FrameDecoder(undefined, 1)
  const out: Uint8Array[] = []
  for (const frame of encodeFrames(message, chunk)) {
    expect(frame.length).toBeLessThanOrEqual(chunk + 2)
    const whole = decoder.push(frame)
    if (whole !== null) out.push(whole)
  }
  return out
}

describe('framing', () => {
  it('passes small messages through untouched (a stock y-webrtc peer reads them)', () => {
    const message = new Uint8Array([0, 1, 2, 3])
    const frames = encodeFrames(message, 16)
    expect(frames).toHaveLength(1)
    expect(frames[0]).toBe(message)
  })

  it.each([17, 32, 33, 1000, 300_000])('splits and reassembles a %i-byte message exactly', (n) => {
    const message = bytes(n, n)
    const frames = encodeFrames(message, 16)
    expect(frames.length).toBe(Math.ceil(n / 16))
    expect(frames.slice(0, -1).every((f) => f[0] === FRAME_MARKER && f[1] === FRAME_MORE)).toBe(true)
    expect(frames.at(-1)?.[1]).toBe(FRAME_LAST)
    expect(roundTrip(message, 16)).toEqual([message])
  })

  it('frames a small message that starts with the marker byte, so it is not mistaken for a chunk', () => {
    const message = new Uint8Array([FRAME_MARKER, 7])
    const frames = encodeFrames(message, 16)
    expect(frames).toHaveLength(1)
    expect(frames[0]).toEqual(new Uint8Array([FRAME_MARKER, FRAME_LAST, FRAME_MARKER, 7]))
    expect(roundTrip(message, 16)).toEqual([message])
  })

  it('frames an empty message starting with nothing as itself', () => {
    expect(roundTrip(new Uint8Array(0), 16)).toEqual([new Uint8Array(0)])
  })

  it('interleaves whole and framed messages in order', () => {
    const decoder = new FrameDecoder(undefined, 1)
    const messages = [bytes(5, 1), bytes(100, 2), bytes(3, 3), bytes(64, 4)]
    const out: Uint8Array[] = []
    for (const m of messages) for (const f of encodeFrames(m, 16)) { const w = decoder.push(f); if (w) out.push(w) }
    expect(out).toEqual(messages)
  })

  it('rejects a malformed stream and an oversize message', () => {
    expect(() => new FrameDecoder().push(new Uint8Array([FRAME_MARKER, 9]))).toThrow(FrameError)
    expect(() => new FrameDecoder(undefined, 1).push(new Uint8Array([FRAME_MARKER]))).toThrow(FrameError)
    const d = new FrameDecoder(undefined, 1)
    d.push(new Uint8Array([FRAME_MARKER, FRAME_MORE, 1]))
    expect(() => d.push(new Uint8Array([1, 2]))).toThrow(FrameError)
    const small = new FrameDecoder(10, 1)
    expect(() => { for (const f of encodeFrames(bytes(100), 8)) small.push(f) }).toThrow(/over 10 bytes/)
  })

  it('refuses tiny and empty frames inside a framed message: honest ones carry a whole chunk', () => {
    const d = new FrameDecoder()
    expect(() => d.push(new Uint8Array([FRAME_MARKER, FRAME_MORE]))).toThrow(/a frame of 0 bytes/)
    const e = new FrameDecoder()
    expect(() => e.push(new Uint8Array([FRAME_MARKER, FRAME_MORE, 1, 2, 3]))).toThrow(/at least 1024/)
    // A last frame may be short, and a message of one short frame too.
    expect(new FrameDecoder().push(new Uint8Array([FRAME_MARKER, FRAME_LAST, 7]))).toEqual(new Uint8Array([7]))
    const chunk = bytes(DEFAULT_CHUNK_BYTES)
    const f = new FrameDecoder()
    for (const frame of encodeFrames(bytes(DEFAULT_CHUNK_BYTES * 2 + 5))) f.push(frame)
    expect(f.push(new Uint8Array([FRAME_MARKER, FRAME_LAST, ...chunk.subarray(0, 3)]))).toHaveLength(3)
  })
})

import { describe, expect, it, onTestFinished } from 'vitest'
import * as prng from 'lib0/prng'
import Peer from 'simple-peer'
import wrtc from '@roamhq/wrtc'
import { createFramedWrtc, encodeFrames, FrameDecoder, FrameError, FRAME_MARKER, FRAME_LAST, FRAME_MORE, type WrtcImplementation } from '../src/framing.js'
import { once, withTimeout } from './helpers/wait.js'

const bytes = (n: number, seed = 1): Uint8Array => prng.uint8Array(prng.create(seed), n)

const roundTrip = (message: Uint8Array, chunk: number): Uint8Array[] => {
  const decoder = new FrameDecoder()
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
    const decoder = new FrameDecoder()
    const messages = [bytes(5, 1), bytes(100, 2), bytes(3, 3), bytes(64, 4)]
    const out: Uint8Array[] = []
    for (const m of messages) for (const f of encodeFrames(m, 16)) { const w = decoder.push(f); if (w) out.push(w) }
    expect(out).toEqual(messages)
  })

  it('rejects a malformed stream and an oversize message', () => {
    expect(() => new FrameDecoder().push(new Uint8Array([FRAME_MARKER, 9]))).toThrow(FrameError)
    expect(() => new FrameDecoder().push(new Uint8Array([FRAME_MARKER]))).toThrow(FrameError)
    const d = new FrameDecoder()
    d.push(new Uint8Array([FRAME_MARKER, FRAME_MORE, 1]))
    expect(() => d.push(new Uint8Array([1, 2]))).toThrow(FrameError)
    const small = new FrameDecoder(10)
    expect(() => { for (const f of encodeFrames(bytes(100), 8)) small.push(f) }).toThrow(/over 10 bytes/)
  })
})

describe('framed data channels over @roamhq/wrtc', () => {
  /** Two simple-peer peers in this process, connected over real WebRTC through the framed wrtc. */
  const connectPair = async (hooks: Parameters<typeof createFramedWrtc>[1] = {}, { rawSender = false } = {}) => {
    const wrtcA = rawSender ? wrtc as unknown as WrtcImplementation : createFramedWrtc(wrtc as unknown as WrtcImplementation)
    const wrtcB = createFramedWrtc(wrtc as unknown as WrtcImplementation, hooks)
    const a = new Peer({ initiator: true, wrtc: wrtcA })
    const b = new Peer({ wrtc: wrtcB })
    onTestFinished(() => { a.destroy(); b.destroy() })
    a.on('signal', (s: Peer.SignalData) => b.signal(s))
    b.on('signal', (s: Peer.SignalData) => a.signal(s))
    b.on('error', () => {})
    a.on('error', () => {})
    await Promise.all([once(a, 'connect'), once(b, 'connect')])
    return { a, b }
  }

  it('carries a 1 MB message and the small ones around it in order', async () => {
    const { a, b } = await connectPair()
    const big = bytes(1_000_000, 9)
    const received: Uint8Array[] = []
    const done = new Promise<void>((resolve) => b.on('data', (d: Uint8Array) => { received.push(d); if (received.length === 3) resolve() }))
    a.send(new Uint8Array([1]))
    a.send(big)
    a.send(new Uint8Array([2]))
    await withTimeout(done, 10_000, 'three messages')
    expect(received.map((r) => r.length)).toEqual([1, 1_000_000, 1])
    expect(new Uint8Array(received[1] as Uint8Array)).toEqual(big)
  })

  it('closes the channel, and reports, when the receiving handler throws on a message (never crashes)', async () => {
    const errors: Error[] = []
    const { a, b } = await connectPair({ onError: (err) => errors.push(err) })
    b.on('data', () => { throw new Error('cannot decode') })
    a.send(new Uint8Array([0, 9, 9]))
    await once(b, 'close')
    expect(errors.map((e) => e.message)).toEqual(['cannot decode'])
  })

  it('closes the channel, and reports, on a framing violation', async () => {
    const errors: Error[] = []
    const { a, b } = await connectPair({ onError: (err) => errors.push(err) }, { rawSender: true })
    a.send(new Uint8Array([FRAME_MARKER, 7, 1])) // a bad flag, sent by a peer that does not frame
    await once(b, 'close')
    expect(errors[0]).toBeInstanceOf(FrameError)
  })
})

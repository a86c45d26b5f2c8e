/**
 * Framed data channels over real WebRTC (@roamhq/wrtc, two simple-peer peers in this process):
 * the library's messages go through FramedChannel, simple-peer's own sends are muted, and a
 * remote that breaks the protocol is closed and reported, never able to throw into the process.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import * as prng from 'lib0/prng'
import Peer from 'simple-peer'
import wrtc from '@roamhq/wrtc'
import { createFramedWrtc, type ChannelHooks, type FramedChannel, type WrtcImplementation } from '../src/transport/framed-wrtc.js'
import { FRAME_MARKER, FrameError } from '../src/transport/framing.js'
import { once, waitFor, withTimeout } from './helpers/wait.js'

const bytes = (n: number, seed = 1): Uint8Array => prng.uint8Array(prng.create(seed), n)
const native = wrtc as unknown as WrtcImplementation

interface Side {
  peer: Peer.Instance
  channel: Promise<FramedChannel>
  received: Uint8Array[]
  errors: Error[]
  closed: Promise<void>
}

/** Two peers connected through framed (or, with `raw`, plain) wrtc implementations. */
const connectPair = async ({ raw = false, onMessage }: { raw?: boolean, onMessage?: ChannelHooks['onMessage'] } = {}) => {
  const side = (framed: boolean, initiator: boolean): Side & { wrtc: ReturnType<typeof createFramedWrtc> | WrtcImplementation } => {
    const received: Uint8Array[] = []
    const errors: Error[] = []
    let opened!: (c: FramedChannel) => void
    let closedResolve!: () => void
    const channel = new Promise<FramedChannel>((resolve) => { opened = resolve })
    const closed = new Promise<void>((resolve) => { closedResolve = resolve })
    const impl = framed
      ? createFramedWrtc(native, {
        onOpen: opened,
        onMessage: onMessage ?? ((_c, m) => { received.push(m) }),
        onError: (_c, err) => { errors.push(err) },
        onClose: () => closedResolve()
      })
      : native
    const peer = new Peer({ initiator, wrtc: impl })
    peer.on('error', () => {})
    return { peer, channel, received, errors, closed, wrtc: impl }
  }
  const a = side(!raw, true)
  const b = side(true, false)
  onTestFinished(() => { a.peer.destroy(); b.peer.destroy() })
  a.peer.on('signal', (s: Peer.SignalData) => b.peer.signal(s))
  b.peer.on('signal', (s: Peer.SignalData) => a.peer.signal(s))
  await Promise.all([once(a.peer, 'connect'), once(b.peer, 'connect')])
  return { a, b }
}

describe('framed data channels over @roamhq/wrtc', () => {
  it('carries a 1 MB message and the small ones around it, in order', async () => {
    const { a, b } = await connectPair()
    const channel = await a.channel
    const big = bytes(1_000_000, 9)
    expect(channel.send(new Uint8Array([1]))).toBe(true)
    expect(channel.send(big)).toBe(true)
    expect(channel.send(new Uint8Array([2]))).toBe(true)
    await waitFor(() => b.received.length === 3, { timeout: 10_000, what: 'three messages' })
    expect(b.received.map((r) => r.length)).toEqual([1, 1_000_000, 1])
    expect(b.received[1]).toEqual(big)
  })

  it('drains a 5 MB message, over the high-water mark, where the channel fires no bufferedamountlow (@roamhq/wrtc)', async () => {
    const { a, b } = await connectPair()
    const channel = await a.channel
    expect(channel.channel.bufferedAmountLowThreshold).toBeUndefined() // why polling is needed here
    const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251)
    channel.send(big)
    await waitFor(() => b.received.length === 1, { timeout: 20_000, what: 'the 5 MB message' })
    expect(Buffer.compare(Buffer.from(b.received[0] as Uint8Array), Buffer.from(big))).toBe(0)
  })

  it("mutes simple-peer's own sends (y-webrtc's data plane) and counts them", async () => {
    const { a, b } = await connectPair()
    a.peer.send(new Uint8Array([0, 0, 1, 0]))
    const channel = await a.channel
    channel.send(new Uint8Array([7]))
    await waitFor(() => b.received.length === 1, { what: 'the library message' })
    expect(b.received).toEqual([new Uint8Array([7])])
    expect((a.wrtc as ReturnType<typeof createFramedWrtc>).muted).toEqual({ messages: 1, bytes: 4 })
  })

  it('closes the channel, and reports, when the message handler throws (never crashes)', async () => {
    const { a, b } = await connectPair({ onMessage: () => { throw new Error('cannot decode') } })
    ;(await a.channel).send(new Uint8Array([0, 9, 9]))
    await withTimeout(b.closed, 10_000, 'the channel to close')
    expect(b.errors.map((e) => e.message)).toEqual(['cannot decode'])
  })

  it('closes the channel, and reports, on a framing violation from a peer that does not frame', async () => {
    const { a, b } = await connectPair({ raw: true })
    a.peer.send(new Uint8Array([FRAME_MARKER, 7, 1])) // a bad flag
    await withTimeout(b.closed, 10_000, 'the channel to close')
    expect(b.errors[0]).toBeInstanceOf(FrameError)
  })

  it('closes the channel, and reports, on a text message', async () => {
    const { a, b } = await connectPair({ raw: true })
    a.peer.send('hello')
    await withTimeout(b.closed, 10_000, 'the channel to close')
    expect(b.errors[0]?.message).toMatch(/text message/)
  })

  it('says goodbye before closing: the other end stops sending, answers, and closes; then this end closes', async () => {
    const { a, b } = await connectPair()
    const [ca, cb] = [await a.channel, await b.channel]
    ca.send(new Uint8Array([1]))
    ca.close()
    expect(ca.send(new Uint8Array([2]))).toBe(false)
    await withTimeout(Promise.all([a.closed, b.closed]), 10_000, 'both ends to close')
    expect(b.received).toEqual([new Uint8Array([1])]) // what was sent before the goodbye, and nothing after
    expect(cb.writable).toBe(false)
    const [wa, wb] = [a.wrtc, b.wrtc] as Array<ReturnType<typeof createFramedWrtc>>
    expect(wa?.goodbyes).toEqual({ sent: 1, answered: 1, timedOut: 0, received: 0 })
    expect(wb?.goodbyes).toEqual({ sent: 0, answered: 0, timedOut: 0, received: 1 })
    expect(b.errors).toEqual([])
  })

  it('holds a peer connection closed by simple-peer (channel, then connection) until the goodbye is answered', async () => {
    const { a, b } = await connectPair()
    const cb = await b.channel
    let sentByB = 0
    // b sends as fast as it can until its channel stops taking messages: the goodbye stops it,
    // never a native close under a send.
    const pump = (): void => {
      for (let i = 0; i < 50; i++) if (cb.send(new Uint8Array([9, i]))) sentByB++
      if (cb.writable) setImmediate(pump)
    }
    pump()
    await waitFor(() => a.received.length > 0, { what: 'b\'s messages at a' })
    a.peer.destroy()
    await withTimeout(Promise.all([a.closed, b.closed]), 10_000, 'both ends to close')
    const [wa, wb] = [a.wrtc, b.wrtc] as Array<ReturnType<typeof createFramedWrtc>>
    await wa?.settled()
    expect(wa?.goodbyes).toMatchObject({ sent: 1, answered: 1, timedOut: 0 })
    expect(wb?.goodbyes.received).toBe(1)
    expect(sentByB).toBeGreaterThan(0)
  })

  it('times a goodbye out when the remote never answers (a peer that does not frame)', async () => {
    const { a, b } = await connectPair({ raw: true })
    const cb = await b.channel
    cb.close()
    await withTimeout(b.closed, 10_000, 'the channel to close')
    const wb = b.wrtc as ReturnType<typeof createFramedWrtc>
    await wb.settled()
    expect(wb.goodbyes.sent).toBe(1)
    expect(wb.goodbyes.timedOut + wb.goodbyes.answered).toBe(1)
  })

  it('refuses to send once closing', async () => {
    const { a } = await connectPair()
    const channel = await a.channel
    channel.close()
    expect(channel.writable).toBe(false)
    expect(channel.send(new Uint8Array([1]))).toBe(false)
  })
})

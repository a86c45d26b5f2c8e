/**
 * The browser half of the bench: one page, bundled with esbuild by bench/scenarios/browser.ts,
 * holding all three contenders (this library from its browser entry, stock y-webrtc with a bare
 * Y.Map, and a raw RTCDataChannel), so each runs in the same Chromium on the same page code.
 * The orchestrator drives it through `window.bench` with Playwright, one browser context per peer.
 *
 * Times come from `performance.timeOrigin + performance.now()`, comparable across the pages of one
 * browser. A page yields to the event loop with a MessageChannel task (timers are clamped).
 */

import * as Y from 'yjs'
import { WebrtcProvider } from 'y-webrtc'
import { joinRoom, type Session, type SessionStore } from 'y-session-store'

type Value = null | boolean | number | string | Value[] | { [key: string]: Value }

interface Kv {
  set: (key: string, value: Value) => void | Promise<unknown>
  observe: (keys: readonly string[], fn: (key: string, value: unknown) => void) => void
  /** Peer connections whose connectionState is 'connected'. */
  connected: () => number
}

const now = (): number => performance.timeOrigin + performance.now()

const channel = new MessageChannel()
const resumes: Array<() => void> = []
channel.port1.onmessage = () => { resumes.shift()?.() }
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => {
  resumes.push(resolve)
  channel.port2.postMessage(null)
})

const KEYS = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(2, '0')}`)
const PAD = 'x'.repeat(80)

let kv: Kv | null = null
let raw: { pc: RTCPeerConnection, channel: Promise<RTCDataChannel> } | null = null

const need = (): Kv => {
  if (kv === null) throw new Error('not joined')
  return kv
}

const joinYWebrtc = (room: string, signaling: string, maxConns: number): Kv => {
  const doc = new Y.Doc()
  const map = doc.getMap<unknown>('map')
  const provider = new WebrtcProvider(room, doc, { signaling: [signaling], maxConns })
  return {
    set: (key, value) => { map.set(key, value) },
    observe: (keys, fn) => {
      const wanted = new Set(keys)
      map.observe((event) => {
        for (const key of event.keysChanged) if (wanted.has(key)) fn(key, map.get(key))
      })
    },
    connected: () => {
      let n = 0
      provider.room?.webrtcConns.forEach((conn: { peer: { _pc?: RTCPeerConnection } }) => {
        if (conn.peer._pc?.connectionState === 'connected') n++
      })
      return n
    }
  }
}

const joinSessionStore = async (room: string, signaling: string, maxConns: number): Promise<Kv> => {
  const session: Session = joinRoom(room, { signaling: [signaling], maxConns })
  const store: SessionStore = await session.sessionStore
  return {
    set: (key, value) => store.set(key, value),
    observe: (keys, fn) => { store.observeChanges(keys, fn) },
    connected: () => session.connections.filter((c) => c.connectionState === 'connected').length
  }
}

const write = async (key: string, value: Value): Promise<void> => {
  const pending = need().set(key, value)
  if (pending !== undefined) await pending
}

let counter = { count: 0, maxSeq: -1, maxSeqAt: 0 }
let latest = new Map<string, { seq: number, at: number }>()

const rawChannel = async (): Promise<RTCDataChannel> => {
  if (raw === null) throw new Error('no raw connection')
  return await raw.channel
}

const iceComplete = async (pc: RTCPeerConnection): Promise<void> => {
  if (pc.iceGatheringState === 'complete') return
  await new Promise<void>((resolve) => pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve() }))
}

const bench = {
  async join ({ contender, room, signaling, maxConns }: { contender: 'y-webrtc' | 'session-store', room: string, signaling: string, maxConns: number }) {
    kv = contender === 'y-webrtc' ? joinYWebrtc(room, signaling, maxConns) : await joinSessionStore(room, signaling, maxConns)
  },

  connected: (): number => raw !== null ? (raw.pc.connectionState === 'connected' ? 1 : 0) : need().connected(),

  /** The raw floor: one RTCPeerConnection, one data channel, signaled through the orchestrator. */
  async rawOffer (): Promise<RTCSessionDescriptionInit> {
    const pc = new RTCPeerConnection()
    const dc = pc.createDataChannel('bench')
    dc.binaryType = 'arraybuffer'
    raw = { pc, channel: new Promise((resolve) => dc.addEventListener('open', () => resolve(dc))) }
    await pc.setLocalDescription(await pc.createOffer())
    await iceComplete(pc)
    return pc.localDescription?.toJSON() as RTCSessionDescriptionInit
  },

  async rawAnswer (offer: RTCSessionDescriptionInit): Promise<RTCSessionDescriptionInit> {
    const pc = new RTCPeerConnection()
    raw = {
      pc,
      channel: new Promise((resolve) => pc.addEventListener('datachannel', (event) => {
        event.channel.binaryType = 'arraybuffer'
        event.channel.addEventListener('open', () => resolve(event.channel))
        if (event.channel.readyState === 'open') resolve(event.channel)
      }))
    }
    await pc.setRemoteDescription(offer)
    await pc.setLocalDescription(await pc.createAnswer())
    await iceComplete(pc)
    return pc.localDescription?.toJSON() as RTCSessionDescriptionInit
  },

  async rawAccept (answer: RTCSessionDescriptionInit): Promise<void> {
    await raw?.pc.setRemoteDescription(answer)
    await rawChannel()
  },

  async respond (): Promise<void> {
    if (raw !== null) {
      const dc = await rawChannel()
      dc.addEventListener('message', (event: MessageEvent) => dc.send(event.data as ArrayBuffer))
      return
    }
    const p = need()
    p.observe(['ping'], (_key, value) => {
      if (typeof value !== 'number') return
      const pending = p.set('pong', value)
      if (pending !== undefined) pending.catch(() => {})
    })
  },

  /** Round trips, as in Node: A writes `ping`, B answers `pong`, A sees it; the next after one yield. */
  async pingLoop ({ warmup, iterations }: { warmup: number, iterations: number }): Promise<number[]> {
    let expected = -1
    let answered: ((at: number) => void) | null = null
    let send: (i: number) => Promise<void>
    if (raw !== null) {
      const dc = await rawChannel()
      dc.addEventListener('message', (event: MessageEvent) => {
        if (new Float64Array(event.data as ArrayBuffer)[0] === expected) answered?.(now())
      })
      send = async (i) => { dc.send(new Float64Array([i])) }
    } else {
      need().observe(['pong'], (_key, value) => { if (value === expected) answered?.(now()) })
      send = async (i) => { await write('ping', i) }
    }
    const samples: number[] = []
    for (let i = 0; i < warmup + iterations; i++) {
      expected = i
      const round = new Promise<number>((resolve) => { answered = resolve })
      const sentAt = now()
      await send(i)
      const at = await round
      if (i >= warmup) samples.push(at - sentAt)
      await yieldToEventLoop()
    }
    return samples
  },

  async countUpdates (): Promise<void> {
    counter = { count: 0, maxSeq: -1, maxSeqAt: 0 }
    latest = new Map()
    const seen = (key: string, seq: number): void => {
      const at = now()
      counter.count++
      if (seq > counter.maxSeq) {
        counter.maxSeq = seq
        counter.maxSeqAt = at
      }
      if ((latest.get(key)?.seq ?? -1) < seq) latest.set(key, { seq, at })
    }
    if (raw !== null) {
      const dc = await rawChannel()
      dc.addEventListener('message', (event: MessageEvent) => {
        const data = event.data as ArrayBuffer
        if (data.byteLength === 104) {
          const seq = new Float64Array(data, 0, 1)[0] as number
          seen(KEYS[seq % KEYS.length] as string, seq)
        }
      })
      return
    }
    need().observe(KEYS, (key, value) => {
      const seq = (value as { seq?: unknown } | undefined)?.seq
      if (typeof seq === 'number') seen(key, seq)
    })
  },

  async countResult ({ lastSeq, timeout }: { lastSeq: number, timeout: number }) {
    const finalSeq = (i: number): number => lastSeq - ((lastSeq - i) % KEYS.length + KEYS.length) % KEYS.length
    const final = (): boolean => counter.maxSeq >= lastSeq && KEYS.every((key, i) => finalSeq(i) < 0 || (latest.get(key)?.seq ?? -1) >= finalSeq(i))
    const deadline = Date.now() + timeout
    while (!final() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    const complete = final()
    return { complete, count: counter.count, allFinalAt: Math.max(...KEYS.map((key) => latest.get(key)?.at ?? 0)) }
  },

  /** A writes 100 keys round-robin, ~100-byte values, as fast as it can, yielding every `yieldEvery`. */
  async writeBurst ({ durationMs, yieldEvery }: { durationMs: number, yieldEvery: number }) {
    const dc = raw !== null ? await rawChannel() : null
    const firstAt = now()
    const end = firstAt + durationMs
    let seq = 0
    let lastAt = firstAt
    let lastWriteAt = firstAt
    while (lastAt < end) {
      for (let j = 0; j < yieldEvery; j++, seq++) {
        lastWriteAt = now()
        if (dc !== null) {
          // The raw floor waits while its channel buffers more than 1 MiB, as an application
          // must: Chromium closes a channel whose send queue overflows.
          if (dc.bufferedAmount > 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 1))
          const message = new Float64Array(13)
          message[0] = seq
          dc.send(message)
        } else {
          await write(KEYS[seq % KEYS.length] as string, { seq, pad: PAD })
        }
      }
      lastAt = now()
      await yieldToEventLoop()
    }
    return { writes: seq, firstAt, lastAt, lastWriteAt, lastSeq: seq - 1 }
  }
}

declare global {
  interface Window {
    bench: typeof bench
  }
}
window.bench = bench

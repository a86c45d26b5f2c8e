/**
 * The signed-phantom flood of issue 17: a plain WebSocket client (no WebRTC) that makes a fresh
 * Ed25519 key pair for every phantom, so each announce and offer verifies, and keeps publishing
 * them: announces, offers with garbage SDP to every honest peer it has heard, and garbage answers
 * to every offer an honest peer makes to one of its phantoms. Half of the phantoms sort above the
 * honest ids and half below, so both sides of the initiator rule are attacked (above: the honest
 * peer offers to the phantom, which answers with garbage; below: it announces itself again and
 * the phantom offers garbage). Stopped when the test ends.
 */
import { onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { createIdentity, type Identity } from '../../src/trust/identity.js'
import { signSignal } from '../../src/trust/signed-signal.js'
import { once } from '../helpers/wait.js'

export interface FloodOptions {
  url: string
  room: string
  /** The honest id the phantoms sort around (above and below, alternately). */
  pivot: string
  /** Phantoms per second, each an announce and an offer (the 60 messages a second: 30). */
  rate?: number
  /** Phantoms published at once when the flood starts. */
  burst?: number
  /** The local address the attacker's socket comes from (a loopback address other than the peers'). */
  localAddress?: string
}

export interface FloodCounts {
  announces: number
  offers: number
  /** Garbage answers sent to offers honest peers made to phantoms. */
  answers: number
  above: number
  below: number
  /** Honest ids heard (signed payloads from ids the flood did not make). */
  honest: number
}

export interface Flood {
  readonly counts: FloodCounts
  /** The close code of the flood's socket if the server closed it (the flood then goes silent), else null. */
  readonly closedWith: number | null
  stop: () => void
}

/** Phantoms whose key is kept, to answer offers made to them (the newest). */
const KEPT = 2000
/** Every phantom id made in this process, so that floods from several addresses know each other's. */
const phantomIds = new Set<string>()
const GARBAGE = { type: 'offer', sdp: 'v=0 garbage' }

/** A fresh identity on the wanted side of `pivot`. */
const phantomOn = async (above: boolean, pivot: string): Promise<Identity> => {
  for (;;) {
    const identity = await createIdentity()
    if ((identity.id > pivot) === above) return identity
  }
}

export const startPhantomFlood = async ({ url, room, pivot, rate = 30, burst = 60, localAddress }: FloodOptions): Promise<Flood> => {
  const ws = new WebSocket(url, localAddress === undefined ? {} : { localAddress })
  // The server may drop a flooding connection; a write racing that fails (EPIPE), and an 'error'
  // event nobody listens to would fail the whole test run. The flood just stops being heard.
  ws.on('error', () => {})
  await once(ws, 'open')
  const counts: FloodCounts = { announces: 0, offers: 0, answers: 0, above: 0, below: 0, honest: 0 }
  const phantoms = new Map<string, { identity: Identity, seq: number, answered?: boolean }>()
  const honest = new Set<string>()
  let stopped = false
  let closedWith: number | null = null
  ws.on('close', (code) => { if (!stopped) closedWith = code })
  let made = 0

  const publish = async (phantom: { identity: Identity, seq: number }, payload: Parameters<typeof signSignal>[3]): Promise<void> => {
    const data = await signSignal(phantom.identity, room, ++phantom.seq, payload)
    if (!stopped && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'publish', topic: room, data }))
  }

  const wave = async (count: number): Promise<void> => {
    for (let i = 0; i < count && !stopped; i++) {
      const above = made++ % 2 === 0
      const phantom = { identity: await phantomOn(above, pivot), seq: 0 }
      counts[above ? 'above' : 'below']++
      phantoms.set(phantom.identity.id, phantom)
      phantomIds.add(phantom.identity.id)
      if (phantoms.size > KEPT) phantoms.delete(phantoms.keys().next().value as string)
      await publish(phantom, { type: 'announce', from: phantom.identity.id })
      counts.announces++
      const targets = Array.from(honest)
      const to = targets[i % Math.max(1, targets.length)]
      if (to === undefined) continue
      await publish(phantom, { type: 'signal', from: phantom.identity.id, to, token: Date.now() + Math.random(), signal: GARBAGE })
      counts.offers++
    }
  }

  ws.on('message', (raw) => {
    let message: { topic?: unknown, data?: { type?: unknown, from?: unknown, to?: unknown } }
    try {
      message = JSON.parse(String(raw))
    } catch {
      return
    }
    const data = message.data
    if (message.topic !== room || typeof data !== 'object' || data === null || typeof data.from !== 'string') return
    if (!phantomIds.has(data.from) && /^[A-Za-z0-9_-]{43}$/.test(data.from) && !honest.has(data.from)) {
      honest.add(data.from)
      counts.honest = honest.size
    }
    // An honest peer offering to a phantom (or sending it candidates): answer with garbage.
    const phantom = typeof data.to === 'string' ? phantoms.get(data.to) : undefined
    if (phantom === undefined || data.type !== 'signal' || phantom.answered === true) return
    phantom.answered = true
    counts.answers++
    void publish(phantom, { type: 'signal', from: phantom.identity.id, to: data.from, token: 1, signal: { type: 'answer', sdp: 'v=0 garbage answer' } })
  })
  ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))

  await wave(burst)
  let credit = 0
  const timer = setInterval(() => {
    credit += rate / 10
    const count = Math.floor(credit)
    credit -= count
    if (count > 0) void wave(count)
  }, 100)
  const stop = (): void => {
    stopped = true
    clearInterval(timer)
    ws.terminate()
  }
  onTestFinished(stop)
  return { counts, stop, get closedWith () { return closedWith } }
}

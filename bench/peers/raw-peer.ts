/**
 * The physical floor: a bare simple-peer data channel between two processes, one echoing what
 * the other sends. Signals travel through the orchestrator (IPC), so no server is involved.
 */

import SimplePeer from 'simple-peer'
import wrtc from '@roamhq/wrtc'
import { emit, serve } from '../lib/child.js'
import { now, until, withTimeout, yieldToEventLoop } from '../lib/clock.js'

let peer: SimplePeer | null = null
let counter = { count: 0, maxSeq: -1, maxSeqAt: 0, firstAt: 0 }
let isOpen = false
let connected: Promise<void> = Promise.reject(new Error('not started'))
connected.catch(() => {})

const need = (): SimplePeer => {
  if (peer === null) throw new Error('not started')
  return peer
}

const commands = {
  start ({ initiator }: { initiator: boolean }) {
    const p = peer = new SimplePeer({ initiator, wrtc })
    p.on('signal', (signal) => emit('signal', signal))
    p.on('error', (err) => emit('error', err.message))
    connected = new Promise((resolve) => p.on('connect', resolve))
    p.on('connect', () => { isOpen = true })
    p.on('close', () => { isOpen = false })
  },

  signal: (signal: unknown) => need().signal(signal),

  waitConnected: ({ timeout }: { timeout: number }) => withTimeout(connected, timeout, 'simple-peer connect'),

  echo () {
    const p = need()
    p.on('data', (data) => p.send(data))
  },

  /** Same loop as the key-value contenders: send i (8 binary bytes), wait for it to come back, yield, next. */
  async pingLoop ({ warmup, iterations, timeout }: { warmup: number, iterations: number, timeout: number }) {
    const p = need()
    let expected = -1
    let answered: ((at: number) => void) | null = null
    p.on('data', (data) => {
      if (data.length === 8 && data.readDoubleLE(0) === expected && answered !== null) answered(now())
    })
    const samples: number[] = []
    for (let i = 0; i < warmup + iterations; i++) {
      expected = i
      const round = new Promise<number>((resolve) => { answered = resolve })
      const sentAt = now()
      const message = Buffer.alloc(8)
      message.writeDoubleLE(i)
      p.send(message)
      const at = await withTimeout(round, timeout, `echo ${i}`)
      if (i >= warmup) samples.push(at - sentAt)
      await yieldToEventLoop()
    }
    return { samples, moves: null as number | null }
  },

  /** The throughput floor: ~100-byte binary messages (the write number first), same loop shape as the key-value writers. */
  async writeBurst ({ durationMs, yieldEvery }: { durationMs: number, yieldEvery: number }) {
    const p = need()
    const cpu = process.cpuUsage()
    const firstAt = now()
    const end = firstAt + durationMs
    let seq = 0
    let lastAt = firstAt
    let lastWriteAt = firstAt
    let inWrites = 0
    while (lastAt < end) {
      const batchStart = now()
      for (let j = 0; j < yieldEvery; j++, seq++) {
        lastWriteAt = now()
        const message = Buffer.alloc(104)
        message.writeDoubleLE(seq)
        p.send(message)
      }
      lastAt = now()
      inWrites += lastAt - batchStart
      await yieldToEventLoop()
    }
    const used = process.cpuUsage(cpu)
    return {
      writes: seq,
      firstAt,
      lastAt,
      lastWriteAt,
      lastSeq: seq - 1,
      inWritesMs: inWrites,
      betweenBatchesMs: lastAt - firstAt - inWrites,
      cpuMs: (used.user + used.system) / 1000,
      messagesOut: seq,
      bytesOut: seq * 104,
      broadcastPosts: 0
    }
  },

  countUpdates () {
    counter = { count: 0, maxSeq: -1, maxSeqAt: 0, firstAt: 0 }
    need().on('data', (data) => {
      if (data.length !== 104) return
      const seq = data.readDoubleLE(0)
      const at = now()
      if (counter.count === 0) counter.firstAt = at
      counter.count++
      if (seq > counter.maxSeq) {
        counter.maxSeq = seq
        counter.maxSeqAt = at
      }
    })
  },

  async countResult ({ lastSeq, timeout }: { lastSeq: number, timeout: number }) {
    const complete = await until(() => counter.maxSeq >= lastSeq, timeout, 'the last message', 5).then(() => true, () => false)
    return { ...counter, complete, allFinalAt: counter.maxSeqAt, connected: isOpen ? 1 : 0 }
  },

  leave () {
    peer?.destroy()
    peer = null
  }
}

export type RawCommands = typeof commands

serve(commands)

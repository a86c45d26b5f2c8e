/**
 * Scenario 6, mesh size: N peers (processes) in one room, fully connected. One peer writes a
 * key at a steady pace (every `intervalMs`, light enough not to saturate 20 processes on two
 * cores); every other peer records when each write arrives, on the machine-wide clock. A
 * write's time to reach every peer is its latest arrival. CPU per peer is process.cpuUsage over
 * the measured window, as a share of one core. Each receiver's data channels count what they get
 * over the window (every message, and those carrying updates), reported per write.
 */

import { sleep } from '../lib/clock.js'
import { dismiss, freshRoom, spawnMesh, type KvChild } from '../lib/peers.js'
import { summarize, type Summary } from '../lib/stats.js'
import type { KvContenderName } from '../peers/contenders.js'
import { KV_CONTENDERS } from '../peers/contenders.js'
import { failure, MAX_CONNS, turnOrder, type Context, type Failure } from './context.js'

export interface MeshRow {
  contender: KvContenderName
  peers: number
  /** Milliseconds until every peer had the write. */
  toEveryPeer: Summary
  /** Milliseconds until one peer had it, over all (write, peer) pairs. */
  toOnePeer: Summary
  /** Deliveries that never arrived. */
  missing: number
  /** What each receiver's data channels got per write, on average: every message, update messages, bytes. */
  messagesPerWrite: number
  updateMessagesPerWrite: number
  bytesPerWrite: number
  /** CPU per peer over the window, percent of one core. */
  writerCpuPercent: number
  receiverCpuPercent: number
  /** Seconds from spawning the processes until the mesh was complete (peers join one at a time). */
  setupS: number
  /** Why the mesh had to be formed again (empty when it formed at the first try). */
  setupRetries: string[]
}

export interface MeshResult {
  writes: number
  intervalMs: number
  rows: Array<MeshRow | (Failure & { contender: KvContenderName, peers: number })>
}

const measure = async (ctx: Context, contender: KvContenderName, size: number, writes: number, warmup: number, intervalMs: number): Promise<MeshRow> => {
  const t0 = Date.now()
  const spec = { room: freshRoom('mesh'), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS, instrument: true }
  const { peers, retries } = await spawnMesh(contender, size, spec)
  try {
    const setupS = (Date.now() - t0) / 1000
    const [writer, ...receivers] = peers as [KvChild, ...KvChild[]]
    await Promise.all(receivers.map((peer) => peer.call('recordTicks', undefined)))
    await Promise.all(peers.map((peer) => peer.call('cpuStart', undefined)))
    const trafficBefore = await Promise.all(receivers.map((peer) => peer.call('traffic', undefined)))
    await writer.call('writeTicks', { count: warmup + writes, intervalMs }, (warmup + writes) * intervalMs + 60_000)
    // The last write may still be travelling; wait (bounded) until every receiver has it.
    const last = warmup + writes - 1
    const arrivals = new Map<KvChild, Array<[number, number]>>()
    const deadline = Date.now() + 5_000
    for (const peer of receivers) {
      for (;;) {
        const { arrivals: got } = await peer.call('ticks', undefined)
        arrivals.set(peer, got)
        if (got.some(([i]) => i === last) || Date.now() > deadline) break
        await sleep(50)
      }
    }
    const cpu = await Promise.all(peers.map((peer) => peer.call('cpuStop', undefined)))
    const trafficAfter = await Promise.all(receivers.map((peer) => peer.call('traffic', undefined)))
    const perWriteOf = (field: 'messagesIn' | 'updatesIn' | 'bytesIn'): number =>
      trafficAfter.reduce((sum, t, i) => sum + t[field] - (trafficBefore[i]?.[field] ?? 0), 0) / receivers.length / (warmup + writes)
    const percent = (c: { cpuMs: number, wallMs: number }): number => 100 * c.cpuMs / c.wallMs
    const perWrite = new Map<number, number[]>()
    for (const list of arrivals.values()) {
      for (const [i, ms] of list) {
        if (i < warmup) continue
        let got = perWrite.get(i)
        if (got === undefined) perWrite.set(i, got = [])
        got.push(ms)
      }
    }
    const everyPeer: number[] = []
    const onePeer: number[] = []
    let missing = 0
    for (let i = warmup; i <= last; i++) {
      const got = perWrite.get(i) ?? []
      missing += receivers.length - got.length
      onePeer.push(...got)
      if (got.length === receivers.length) everyPeer.push(Math.max(...got))
    }
    const receiverCpu = cpu.slice(1).map(percent)
    return {
      contender,
      peers: size,
      toEveryPeer: summarize(everyPeer),
      toOnePeer: summarize(onePeer),
      missing,
      messagesPerWrite: perWriteOf('messagesIn'),
      updateMessagesPerWrite: perWriteOf('updatesIn'),
      bytesPerWrite: perWriteOf('bytesIn'),
      writerCpuPercent: percent(cpu[0] as { cpuMs: number, wallMs: number }),
      receiverCpuPercent: receiverCpu.reduce((a, b) => a + b, 0) / receiverCpu.length,
      setupS,
      setupRetries: retries
    }
  } finally {
    await dismiss(peers)
  }
}

export const runMesh = async (ctx: Context): Promise<MeshResult> => {
  const sizes = ctx.quick ? [2, 5] : [5, 10, 20]
  const writes = ctx.quick ? 30 : 100
  const warmup = 10
  // y-webrtc re-sends each update it receives to all its peers, so a write costs it N(N-1)
  // messages (the library: N-1): 10 writes/s keep 20 stock peers off saturation.
  const intervalMs = 100
  const rows: MeshResult['rows'] = []
  for (const [turn, size] of sizes.entries()) {
    for (const contender of turnOrder(KV_CONTENDERS, turn)) {
      const row = await measure(ctx, contender, size, writes, warmup, intervalMs).catch((err: unknown) => ({ contender, peers: size, ...failure(err) }))
      rows.push(row)
      ctx.log(`${contender}, ${size} peers: ${'error' in row ? row.error : `p50 ${row.toEveryPeer.p50.toFixed(2)} ms, p99 ${row.toEveryPeer.p99.toFixed(2)} ms to every peer; receivers ${row.receiverCpuPercent.toFixed(1)} % CPU (mesh ready in ${row.setupS.toFixed(1)} s)`}`)
    }
  }
  return { writes, intervalMs, rows }
}

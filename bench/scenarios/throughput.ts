/**
 * Scenario 2, throughput: A writes 100 keys round-robin (values of about 100 bytes) as fast as
 * its API allows for a fixed time; B counts the writes it observes. A synchronous write loop
 * never lets the event loop run (nothing would be sent), so A yields with setImmediate every
 * `yieldEvery` writes, identically for both contenders; the library's writes are awaited (its
 * API returns a promise), y-webrtc's Y.Map writes are synchronous.
 *
 * Delivered updates per second = writes B observed / (time B saw A's last write - time of A's
 * first write). B's lag = when B held every key's final value - when A made its last write. Each
 * contender runs `rounds` times on a fresh pair, taking turns (A, B, C, C, B, A, ...); the round with the median
 * write rate is reported, and the target is judged on the median of the round-by-round ratios.
 * A's data channels count what it hands them (messages and bytes on the wire, below framing).
 * A raw simple-peer pair sending ~100-byte messages in the same loop is the floor: in Node, each
 * data-channel send is a synchronous call into libwebrtc's threads, and it sets the pace.
 */

import type { Child } from '../lib/child.js'
import { dismiss } from '../lib/peers.js'
import type { RawCommands } from '../peers/raw-peer.js'
import { failure, turnOrder, type ContenderName, type Context, type Failure } from './context.js'
import { kvPair, rawPair } from './latency.js'

export interface ThroughputRound {
  writes: number
  writesPerSecond: number
  observed: number
  deliveredPerSecond: number
  /** Milliseconds from A's last write until B held every key's final value; null if it never did. */
  lagMs: number | null
  complete: boolean
  /** WebRTC connections B still had at the end (a dead channel shows here). */
  connectedAtEnd: number
  /** Where A's time went: inside write calls, and in the event-loop turns between batches. */
  inWritesMs: number
  betweenBatchesMs: number
  /** A's process CPU (every thread, libwebrtc's included) per write, during the burst. */
  cpuUsPerWrite: number
  /** What A handed to its data channel during the burst, per second of the burst. */
  messagesPerSecond: number
  bytesPerSecond: number
  /** BroadcastChannel posts A made per write (in Node nobody else can receive them). */
  broadcastPostsPerWrite: number
}

export interface ThroughputRow {
  contender: ContenderName
  /** The round with the median write rate. */
  median: ThroughputRound | null
  rounds: Array<ThroughputRound | Failure>
}

export interface ThroughputResult {
  durationMs: number
  yieldEvery: number
  rows: ThroughputRow[]
  /**
   * The library's write rate over stock y-webrtc's, round by round (the two ran back to back in
   * each round), and their median: steadier than a ratio of medians when the load drifts. A
   * round of ours counts only when B held every final value in the end.
   */
  roundRatios: number[]
  medianRoundRatio: number | null
}

/** The issue's setting: a writer that yields every 200 writes, as a UI's event handler might. */
const YIELD_EVERY = 200

type Side = Child<Pick<RawCommands, 'countUpdates' | 'countResult' | 'writeBurst' | 'leave'>>

const round = async (ctx: Context, contender: ContenderName, durationMs: number): Promise<ThroughputRound> => {
  const { a, b }: { a: Side, b: Side } = contender === 'simple-peer' ? await rawPair() : await kvPair(ctx, contender, 'throughput', { instrument: true })
  try {
    await b.call('countUpdates', undefined)
    const written = await a.call('writeBurst', { durationMs, yieldEvery: YIELD_EVERY }, durationMs + 60_000)
    const seen = await b.call('countResult', { lastSeq: written.lastSeq, timeout: 30_000 }, 60_000)
    const elapsed = seen.complete ? seen.maxSeqAt - written.firstAt : Number.NaN
    const burstS = (written.lastAt - written.firstAt) / 1000
    return {
      writes: written.writes,
      writesPerSecond: written.writes / burstS,
      observed: seen.count,
      deliveredPerSecond: seen.complete ? seen.count / (elapsed / 1000) : 0,
      lagMs: seen.complete ? seen.allFinalAt - written.lastWriteAt : null,
      complete: seen.complete,
      connectedAtEnd: seen.connected,
      inWritesMs: written.inWritesMs,
      betweenBatchesMs: written.betweenBatchesMs,
      cpuUsPerWrite: 1000 * written.cpuMs / written.writes,
      messagesPerSecond: written.messagesOut / burstS,
      bytesPerSecond: written.bytesOut / burstS,
      broadcastPostsPerWrite: written.broadcastPosts / written.writes
    }
  } finally {
    await dismiss([a, b])
  }
}

export const runThroughput = async (ctx: Context): Promise<ThroughputResult> => {
  const durationMs = ctx.quick ? 1_000 : 5_000
  const rounds = ctx.quick ? 1 : 5
  const contenders: ContenderName[] = ['simple-peer', 'y-webrtc', 'session-store']
  const all = new Map<ContenderName, Array<ThroughputRound | Failure>>(contenders.map((c) => [c, []]))
  for (let r = 0; r < rounds; r++) {
    for (const contender of turnOrder(contenders, r)) {
      const result = await round(ctx, contender, durationMs).catch(failure)
      all.get(contender)?.push(result)
      ctx.log(`${contender} round ${r + 1}/${rounds}: ${'error' in result ? result.error : `${Math.round(result.writesPerSecond)} writes/s, ${result.cpuUsPerWrite.toFixed(0)} µs CPU per write, ${Math.round(result.messagesPerSecond)} messages/s, lag ${result.lagMs?.toFixed(1) ?? 'n/a'} ms`}`)
    }
  }
  const ours = all.get('session-store') ?? []
  const stock = all.get('y-webrtc') ?? []
  const roundRatios = ours.flatMap((o, i) => {
    const s = stock[i]
    return 'error' in o || !o.complete || s === undefined || 'error' in s ? [] : [o.writesPerSecond / s.writesPerSecond]
  })
  const sortedRatios = [...roundRatios].sort((a, b) => a - b)
  return {
    durationMs,
    yieldEvery: YIELD_EVERY,
    roundRatios,
    medianRoundRatio: sortedRatios.length === 0 ? null : sortedRatios[Math.floor((sortedRatios.length - 1) / 2)] as number,
    rows: contenders.map((contender) => {
      const results = all.get(contender) ?? []
      const ok = results.filter((r): r is ThroughputRound => !('error' in r)).sort((x, y) => x.writesPerSecond - y.writesPerSecond)
      return { contender, median: ok[Math.floor((ok.length - 1) / 2)] ?? null, rounds: results }
    })
  }
}

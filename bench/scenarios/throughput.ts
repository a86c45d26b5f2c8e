/**
 * Scenario 2, throughput: A writes 100 keys round-robin (values of about 100 bytes) as fast as
 * its API allows for a fixed time; B counts the writes it observes. A synchronous write loop
 * never lets the event loop run (nothing would be sent), so A yields with setImmediate every
 * `yieldEvery` writes, identically for both contenders; the library's writes are awaited (its
 * API returns a promise), y-webrtc's Y.Map writes are synchronous.
 *
 * Delivered updates per second = writes B observed / (time B saw A's last write - time of A's
 * first write). B's lag = time B saw A's last write - time A called it. Each contender runs
 * `rounds` times on a fresh pair, taking turns (A, B, C, C, B, A, ...); the round with the median
 * delivered rate is reported, and the target is judged on the median of the round-by-round ratios.
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
  /** Milliseconds from A's last write until B saw it; null if B never did. */
  lagMs: number | null
  complete: boolean
  /** WebRTC connections B still had at the end (a dead channel shows here). */
  connectedAtEnd: number
  /** Where A's time went: inside write calls, and in the event-loop turns between batches. */
  inWritesMs: number
  betweenBatchesMs: number
}

export interface ThroughputRow {
  contender: ContenderName
  /** The round with the median delivered rate. */
  median: ThroughputRound | null
  rounds: Array<ThroughputRound | Failure>
}

export interface ThroughputResult {
  durationMs: number
  yieldEvery: number
  rows: ThroughputRow[]
  /**
   * The library's delivered rate over stock y-webrtc's, round by round (the two ran back to back
   * in each round), and their median: steadier than a ratio of medians when the load drifts.
   */
  roundRatios: number[]
  medianRoundRatio: number | null
}

const YIELD_EVERY = 10

type Side = Child<Pick<RawCommands, 'countUpdates' | 'countResult' | 'writeBurst' | 'leave'>>

const round = async (ctx: Context, contender: ContenderName, durationMs: number): Promise<ThroughputRound> => {
  const { a, b }: { a: Side, b: Side } = contender === 'simple-peer' ? await rawPair() : await kvPair(ctx, contender, 'throughput')
  try {
    await b.call('countUpdates', undefined)
    const written = await a.call('writeBurst', { durationMs, yieldEvery: YIELD_EVERY }, durationMs + 60_000)
    const seen = await b.call('countResult', { lastSeq: written.lastSeq, timeout: 30_000 }, 60_000)
    const elapsed = seen.complete ? seen.maxSeqAt - written.firstAt : Number.NaN
    return {
      writes: written.writes,
      writesPerSecond: written.writes / ((written.lastAt - written.firstAt) / 1000),
      observed: seen.count,
      deliveredPerSecond: seen.complete ? seen.count / (elapsed / 1000) : 0,
      lagMs: seen.complete ? seen.maxSeqAt - written.lastWriteAt : null,
      complete: seen.complete,
      connectedAtEnd: seen.connected,
      inWritesMs: written.inWritesMs,
      betweenBatchesMs: written.betweenBatchesMs
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
      ctx.log(`${contender} round ${r + 1}/${rounds}: ${'error' in result ? result.error : `${Math.round(result.deliveredPerSecond)} updates/s delivered, lag ${result.lagMs?.toFixed(1) ?? 'n/a'} ms`}`)
    }
  }
  const ours = all.get('session-store') ?? []
  const stock = all.get('y-webrtc') ?? []
  const roundRatios = ours.flatMap((o, i) => {
    const s = stock[i]
    return 'error' in o || s === undefined || 'error' in s || s.deliveredPerSecond === 0 ? [] : [o.deliveredPerSecond / s.deliveredPerSecond]
  })
  const sortedRatios = [...roundRatios].sort((a, b) => a - b)
  return {
    durationMs,
    yieldEvery: YIELD_EVERY,
    roundRatios,
    medianRoundRatio: sortedRatios.length === 0 ? null : sortedRatios[Math.floor((sortedRatios.length - 1) / 2)] as number,
    rows: contenders.map((contender) => {
      const results = all.get(contender) ?? []
      const ok = results.filter((r): r is ThroughputRound => !('error' in r)).sort((x, y) => x.deliveredPerSecond - y.deliveredPerSecond)
      return { contender, median: ok[Math.floor((ok.length - 1) / 2)] ?? null, rounds: results }
    })
  }
}

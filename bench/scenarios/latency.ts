/**
 * Scenario 1, round-trip latency: A sets `ping`, B's change callback answers with `pong`, A's
 * callback sees it. A times each round trip on its own clock; the next round starts after one
 * turn of A's event loop (setImmediate), the same for every contender. The raw simple-peer echo
 * is the floor: one data-channel message each way and nothing else.
 *
 * The contenders' pairs are all connected first, then measured in interleaved chunks (A, B, C,
 * C, B, A, ...) so that a change in background load during the run hits every contender alike.
 */

import type { Child, Commands } from '../lib/child.js'
import { dismiss, freshRoom, spawnMesh, spawnRaw, type KvChild, type RawChild } from '../lib/peers.js'
import { threadCpuMs, type ThreadCpu } from '../lib/proc.js'
import { quantileCurve, summarize, type Summary } from '../lib/stats.js'
import type { KvContenderName } from '../peers/contenders.js'
import type { RawCommands } from '../peers/raw-peer.js'
import { MAX_CONNS, turnOrder, type ContenderName, type Context } from './context.js'

export interface LatencyRow {
  contender: ContenderName
  summary: Summary
  /** [quantile, ms] pairs for the chart. */
  curve: Array<[number, number]>
  /** The p50 of each chunk, in order: how much the machine drifted during the run. */
  chunkP50s: number[]
  /** The p99 of each chunk, in order: where in the run the tail was made. */
  chunkP99s: number[]
  /** Per chunk, the epoch moves A's store made in it (warm-up included), or null for contenders without epochs. */
  chunkMoves: Array<number | null>
  /**
   * Per chunk (warm-up included), CPU milliseconds of A's and B's threads together, by kind. On a
   * small machine the helpers' share (V8 compiling in the background) takes cores from the main
   * and libwebrtc threads of both peers: where it is high, the chunk's tail is long.
   */
  chunkThreads: ThreadCpu[]
  /** The round trips of the warm-up (V8 compiling the pair's code), before any chunk. */
  warmupRoundTrips: number
  /** Their latency: what the first seconds of a session cost. */
  cold: Summary
  /** Both peers' helper-thread CPU ms in each warm-up round. */
  warmupHelpers: number[]
}

export interface LatencyResult {
  /** Round trips per warm-up round, and the helper-thread CPU ms under which a round counts as settled. */
  warmup: { round: number, settledHelperMs: number, max: number }
  iterations: number
  chunks: number
  rows: LatencyRow[]
}

/** A pair whose `a` side runs the ping loop (both kinds of peer share its signature). */
interface Pair {
  a: Child<Pick<RawCommands, 'pingLoop'>>
  b: Child<Commands>
}

const CONNECT_TIMEOUT = 30_000

export const rawPair = async (): Promise<{ a: RawChild, b: RawChild }> => {
  const [a, b] = await Promise.all([spawnRaw('a'), spawnRaw('b')])
  a.on('signal', (signal) => b.tell('signal', signal))
  b.on('signal', (signal) => a.tell('signal', signal))
  await b.call('start', { initiator: false })
  await a.call('start', { initiator: true })
  await Promise.all([a.call('waitConnected', { timeout: CONNECT_TIMEOUT }), b.call('waitConnected', { timeout: CONNECT_TIMEOUT })])
  return { a, b }
}

/**
 * Two peers of `contender` in a fresh room, connected to each other. A pair that does not connect
 * (stock y-webrtc peers sometimes hang on offer glare) is formed once more with fresh processes.
 */
export const kvPair = async (ctx: Context, contender: KvContenderName, what: string, { instrument = false } = {}): Promise<{ a: KvChild, b: KvChild }> => {
  const { peers } = await spawnMesh(contender, 2, { room: freshRoom(what), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS, instrument }, `${what}-`)
  const [a, b] = peers as [KvChild, KvChild]
  return { a, b }
}

/**
 * Each pair warms up in rounds of WARMUP_ROUND round trips until V8 is done compiling its code:
 * two rounds in a row in which both peers' helper threads (V8's background compiler, mostly) used
 * at most SETTLED_HELPER_MS (one quiet round can be a lull), or WARMUP_MAX round trips. Measured
 * here: the raw pair settles in 1,000, stock y-webrtc's in 3,000-4,000, this library's (a larger
 * data plane) in 3,500-4,500. A fixed warm-up of 500 left both compiling through the first chunks,
 * and the library longer, so their p99 measured V8 more than the data plane. What the warm-up
 * cost is reported apart: its round trips, and their p50 and p99.
 */
const WARMUP_ROUND = 500
const SETTLED_HELPER_MS = 20
const WARMUP_MAX = 10_000

export const runLatency = async (ctx: Context): Promise<LatencyResult> => {
  const warmup = { round: ctx.quick ? 100 : WARMUP_ROUND, settledHelperMs: SETTLED_HELPER_MS, max: ctx.quick ? 100 : WARMUP_MAX }
  const iterations = ctx.quick ? 300 : 6000
  const chunks = ctx.quick ? 1 : 6
  const contenders: ContenderName[] = ['simple-peer', 'y-webrtc', 'session-store']
  const pairs = new Map<ContenderName, Pair>()
  const samples = new Map<ContenderName, number[]>(contenders.map((c) => [c, []]))
  const chunkP50s = new Map<ContenderName, number[]>(contenders.map((c) => [c, []]))
  const chunkP99s = new Map<ContenderName, number[]>(contenders.map((c) => [c, []]))
  const chunkMoves = new Map<ContenderName, Array<number | null>>(contenders.map((c) => [c, []]))
  const chunkThreads = new Map<ContenderName, ThreadCpu[]>(contenders.map((c) => [c, []]))
  const warmups = new Map<ContenderName, { samples: number[], helpers: number[] }>()
  /** Both peers' thread CPU so far, summed by kind. */
  const pairCpu = (pair: Pair): ThreadCpu => {
    const [a, b] = [threadCpuMs(pair.a.pid), threadCpuMs(pair.b.pid)]
    return { main: a.main + b.main, helpers: a.helpers + b.helpers, native: a.native + b.native }
  }
  try {
    for (const contender of contenders) {
      ctx.log(`connecting a ${contender} pair`)
      if (contender === 'simple-peer') {
        const { a, b } = await rawPair()
        await b.call('echo', undefined)
        pairs.set(contender, { a, b })
      }
      else {
        const { a, b } = await kvPair(ctx, contender, 'latency')
        await b.call('respond', undefined)
        pairs.set(contender, { a, b })
      }
    }
    for (const contender of contenders) {
      const pair = pairs.get(contender) as Pair
      const cold = { samples: [] as number[], helpers: [] as number[] }
      warmups.set(contender, cold)
      while (cold.samples.length < warmup.max) {
        const before = pairCpu(pair).helpers
        const { samples: round } = await pair.a.call('pingLoop', { warmup: 0, iterations: warmup.round, timeout: 5_000 }, 120_000)
        const helpers = pairCpu(pair).helpers - before
        cold.samples.push(...round)
        cold.helpers.push(helpers)
        if (cold.helpers.length >= 2 && cold.helpers.slice(-2).every((ms) => ms <= warmup.settledHelperMs)) break
      }
      ctx.log(`${contender} warmed up in ${cold.samples.length} round trips (helper ms per round: ${cold.helpers.join(', ')}); p99 meanwhile ${summarize(cold.samples).p99.toFixed(3)} ms`)
    }
    for (let chunk = 0; chunk < chunks; chunk++) {
      for (const contender of turnOrder(contenders, chunk)) {
        const pair = pairs.get(contender) as Pair
        const args = { warmup: 50, iterations: Math.ceil(iterations / chunks), timeout: 5_000 }
        const cpuBefore = pairCpu(pair)
        const { samples: chunkSamples, moves } = await pair.a.call('pingLoop', args, 120_000)
        const cpuAfter = pairCpu(pair)
        const threads = { main: cpuAfter.main - cpuBefore.main, helpers: cpuAfter.helpers - cpuBefore.helpers, native: cpuAfter.native - cpuBefore.native }
        chunkThreads.get(contender)?.push(threads)
        samples.get(contender)?.push(...chunkSamples)
        const { p50, p99 } = summarize(chunkSamples)
        chunkP50s.get(contender)?.push(p50)
        chunkP99s.get(contender)?.push(p99)
        chunkMoves.get(contender)?.push(moves)
        ctx.log(`${contender} chunk ${chunk + 1}/${chunks}: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms${moves === null ? '' : `, epoch moves: ${moves}`}, CPU ms main/helpers/native ${threads.main}/${threads.helpers}/${threads.native}`)
      }
    }
  } finally {
    await dismiss([...pairs.values()].flatMap((pair) => [pair.a, pair.b]))
  }
  return {
    warmup,
    iterations,
    chunks,
    rows: contenders.map((contender) => {
      const all = samples.get(contender) as number[]
      return { contender, summary: summarize(all), curve: quantileCurve(all), chunkP50s: chunkP50s.get(contender) ?? [], chunkP99s: chunkP99s.get(contender) ?? [], chunkMoves: chunkMoves.get(contender) ?? [], chunkThreads: chunkThreads.get(contender) ?? [], warmupRoundTrips: warmups.get(contender)?.samples.length ?? 0, cold: summarize(warmups.get(contender)?.samples ?? []), warmupHelpers: warmups.get(contender)?.helpers ?? [] }
    })
  }
}

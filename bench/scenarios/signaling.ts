/**
 * Scenario 4, signaling server load: the same load generator against y-webrtc's bin/server.js
 * and ours, each server in its own process (memory is its /proc VmRSS, CPU its /proc times).
 *
 * - Load: `connections` WebSocket clients in rooms of 10, from 2 generator processes per
 *   server. Both servers are pinned to CPU 0 and all generators to CPU 1 (taskset), so a server
 *   never competes with its own load for a core. First a fixed publish rate, then a ladder of
 *   rates (doubling, then two bisection steps between the last rate held and the first one
 *   missed), the two servers taking turns at each rate so that background load hits both alike.
 *   A rate is held when at least 99 % of the relayed messages (10 per publish: every subscriber,
 *   the publisher included) arrive within the step plus 2 s, their p99 relay latency is at most
 *   250 ms, and no client was dropped; a rate missed is tried once more. Then both servers run
 *   at the highest rate both held, twice each, taking turns: p99 is compared there, on the
 *   better attempt of each (background load only ever adds latency). Server CPU per relayed message is reported too: unlike
 *   the ladder, it does not depend on who else uses the machine.
 * - Idle: a fresh server holding 10,000 idle, subscribed clients (from 4 processes, to stay
 *   within the per-process file limit); memory per connection is the difference of the server's
 *   RSS, after a full GC, with and without them, divided by their number (V8 heap likewise). Both
 *   readings are of a steady process: once V8 has shrunk its young generation back, which the
 *   burst of handshakes grew by tens of MiB (a cost of the burst, not of the connections held).
 *   The reading 2 s after the burst, young generation included, is reported beside it.
 */

import type { SignalingServerOptions } from 'y-session-store/signaling'
import type { LoadCommands } from '../load/client.js'
import { Child } from '../lib/child.js'
import { now, sleep } from '../lib/clock.js'
import { canPin, pin } from '../lib/proc.js'
import { ONE_ADDRESS_FOR_ALL, SERVERS, startServer, type RunningServer, type ServerName } from '../lib/servers.js'
import { merge, summarizeHistogram, type Summary } from '../lib/stats.js'
import { failure, type Context, type Failure } from './context.js'

export interface LoadStep {
  /** Publishes per second offered, all clients together. */
  publishRate: number
  /** Relayed messages per second received (in-window messages, counted by their send time). */
  relayedPerSecond: number
  /** Received / expected (10 per publish). */
  deliveredRatio: number
  latency: Summary
  clientsDropped: number
  held: boolean
  serverCpuPercent: number
  /** Server CPU microseconds per relayed message. */
  serverCpuUsPerRelayed: number
  serverPeakRssMiB: number
  /** CPU of all generator processes together, percent of one core (100 = the whole of CPU 1). */
  generatorCpuPercent: number
}

export interface IdleResult {
  connections: number
  baselineRssMiB: number
  loadedRssMiB: number
  /** RSS growth per connection held, both readings steady: the target's measure. */
  bytesPerConnection: number
  /** V8 heap growth per connection: steadier than RSS, which moves by whole pages and arenas. */
  heapBytesPerConnection: number
  externalBytesPerConnection: number
  /** RSS growth per connection 2 s after the last handshake, the young generation's growth included. */
  burstBytesPerConnection: number
  /** The young generation 2 s after the burst, and when held. */
  youngMiB: { burst: number, held: number }
  /** How long after the burst reading the held one came. */
  heldAfterS: number
}

export interface ServerLoad {
  server: ServerName
  fixed: LoadStep | Failure
  ladder: LoadStep[]
  /** The highest step held, or null if none was. */
  best: LoadStep | null
  /** True when the best step is the top of the ladder: the generators, not the server, set the limit. */
  bestIsCeiling: boolean
  /**
   * Both servers at the same rate, the highest both held, measured twice each (once when quick), taking turns:
   * where "no worse p99" is judged. `matchedBest` is the attempt with the lower p99.
   */
  matched: LoadStep[]
  matchedBest: LoadStep | null
  idle: IdleResult | Failure
  /** Our server's rejection counters after the load (null for y-webrtc's, which has none). */
  rejections: Record<string, number> | null
}

export interface SignalingResult {
  connections: number
  rooms: number
  fixedRate: number
  maxRate: number
  stepSeconds: number
  idleConnections: number
  pinned: boolean
  /** What our server was started with for this scenario (its defaults would refuse the load). */
  ourOptions: SignalingServerOptions
  servers: ServerLoad[]
}

export const OUR_LOAD_OPTIONS: SignalingServerOptions = { maxConnections: 20_000, messagesPerSecond: 10_000, messageBurst: 100_000, ...ONE_ADDRESS_FOR_ALL }
const ROOM_SIZE = 10
export const MAX_P99_MS = 250
export const MIN_DELIVERED = 0.99
/** How long a fresh server idles before the baseline, and holds the idle clients before the reading. */
export const IDLE_HOLD_S = 20
const HOLD_MS = IDLE_HOLD_S * 1000

type Generator = Child<LoadCommands>
interface CpuMark { at: number, ms: number }

interface Rig {
  name: ServerName
  server: RunningServer
  generators: Generator[]
  ladder: LoadStep[]
  held: LoadStep | null
  missed: LoadStep | null
  matched: LoadStep[]
}

interface Params {
  connections: number
  rooms: number
  generators: number
  fixedRate: number
  maxRate: number
  stepSeconds: number
  bisections: number
  idleConnections: number
  idleGenerators: number
  /** Turns each server gets at the highest rate both held. */
  matchedTurns: number
}

const spawnGenerators = (count: number, cpu: number | null): Promise<Generator[]> =>
  Promise.all(Array.from({ length: count }, async (_, i) => {
    const generator = await Child.spawn<LoadCommands>(`load${i}`, 'bench/load/client.ts')
    if (cpu !== null) pin(generator.pid, cpu)
    return generator
  }))

const connectAll = async (generators: Generator[], url: string, total: number, rooms: number): Promise<number> => {
  const share = Math.ceil(total / generators.length)
  const results = await Promise.all(generators.map((g, i) => g.call('connect', { url, count: Math.min(share, total - i * share), firstIndex: i * share, rooms }, 300_000)))
  const opened = results.reduce((n, r) => n + r.opened, 0)
  const subscribed = results.reduce((n, r) => n + r.subscribed, 0)
  if (opened < total || subscribed < total) throw new Error(`only ${opened} of ${total} clients opened, ${subscribed} subscribed`)
  return opened
}

const step = async ({ server, generators }: Rig, publishRate: number, p: Params): Promise<LoadStep> => {
  await Promise.all(generators.map((g) => g.call('heal', { url: server.url, rooms: p.rooms }, 120_000)))
  await Promise.all(generators.map((g) => g.call('quiet', { quietMs: 300, timeout: 30_000 }, 40_000)))
  const from = now() + 1_000
  const to = from + p.stepSeconds * 1000
  const drainUntil = to + 2_000
  const cpu: { from: CpuMark | null, to: CpuMark | null } = { from: null, to: null }
  let peakRss = server.rss()
  const sampler = setInterval(() => {
    const t = now()
    if (cpu.from === null && t >= from) cpu.from = { at: t, ms: server.cpuMs() }
    if (cpu.to === null && t >= to) cpu.to = { at: t, ms: server.cpuMs() }
    if (server.alive()) peakRss = Math.max(peakRss, server.rss())
  }, 50)
  try {
    const parts = await Promise.all(generators.map((g) => g.call('load', { rate: publishRate / generators.length, from, to, drainUntil }, (drainUntil - now()) + 60_000)))
    const sent = parts.reduce((n, part) => n + part.sent, 0)
    const received = parts.reduce((n, part) => n + part.received, 0)
    const latency = summarizeHistogram(merge(parts.map((part) => part.histogram)))
    const deliveredRatio = sent === 0 ? 0 : received / (sent * ROOM_SIZE)
    const clientsDropped = parts.reduce((n, part) => n + part.closed, 0)
    const cpuMs = cpu.from === null || cpu.to === null ? Number.NaN : cpu.to.ms - cpu.from.ms
    const cpuWall = cpu.from === null || cpu.to === null ? Number.NaN : cpu.to.at - cpu.from.at
    return {
      publishRate,
      relayedPerSecond: received / p.stepSeconds,
      deliveredRatio,
      latency,
      clientsDropped,
      held: deliveredRatio >= MIN_DELIVERED && latency.p99 <= MAX_P99_MS && clientsDropped === 0,
      serverCpuPercent: 100 * cpuMs / cpuWall,
      serverCpuUsPerRelayed: 1000 * cpuMs / Math.max(1, received),
      serverPeakRssMiB: peakRss / 2 ** 20,
      generatorCpuPercent: parts.reduce((n, part) => n + part.cpuPercent, 0)
    }
  } finally {
    clearInterval(sampler)
  }
}

const describe = (s: LoadStep): string =>
  `${s.publishRate} publishes/s: ${Math.round(s.relayedPerSecond)} relayed/s, ${(100 * s.deliveredRatio).toFixed(1)} % delivered, p99 ${s.latency.p99.toFixed(1)} ms, ` +
  `${s.clientsDropped} dropped, server ${s.serverCpuPercent.toFixed(0)} % CPU (${s.serverCpuUsPerRelayed.toFixed(1)} µs/msg) ${s.serverPeakRssMiB.toFixed(0)} MiB, ` +
  `generators ${s.generatorCpuPercent.toFixed(0)} % CPU${s.held ? '' : ' (not held)'}`

/** A rate missed is tried once more before it counts: a burst of someone else's work can sink one step. */
const runStep = async (ctx: Context, rig: Rig, rate: number, p: Params, what: string): Promise<void> => {
  for (let attempt = 0; attempt < 2 && rig.server.alive(); attempt++) {
    const s = await step(rig, rate, p)
    rig.ladder.push(s)
    ctx.log(`${rig.name} ${what}: ${describe(s)}`)
    if (s.held) {
      rig.held = s
      return
    }
    if (attempt === 1) rig.missed = s
  }
}

const loadBoth = async (ctx: Context, p: Params, pinned: boolean): Promise<Array<Omit<ServerLoad, 'idle'>>> => {
  const rigs: Rig[] = []
  try {
    for (const name of SERVERS) {
      const server = await startServer(name, name === 'ours' ? OUR_LOAD_OPTIONS : {})
      if (pinned) pin(server.pid, 0)
      const rig: Rig = { name, server, generators: [], ladder: [], held: null, missed: null, matched: [] }
      rigs.push(rig)
      rig.generators = await spawnGenerators(p.generators, pinned ? 1 : null)
      await connectAll(rig.generators, server.url, p.connections, p.rooms)
    }
    const fixed = new Map<ServerName, LoadStep | Failure>()
    for (const rig of rigs) {
      const s = await step(rig, p.fixedRate, p).catch(failure)
      fixed.set(rig.name, s)
      ctx.log(`${rig.name} fixed: ${'error' in s ? s.error : describe(s)}`)
    }
    for (let rate = p.fixedRate * 2; rate <= p.maxRate; rate *= 2) {
      const climbing = rigs.filter((rig) => rig.missed === null)
      if (climbing.length === 0) break
      for (const rig of climbing) await runStep(ctx, rig, rate, p, 'ladder')
    }
    for (let b = 0; b < p.bisections; b++) {
      for (const rig of rigs) {
        if (rig.held === null || rig.missed === null) continue
        await runStep(ctx, rig, Math.round((rig.held.publishRate + rig.missed.publishRate) / 2), p, 'bisect')
      }
    }
    const matchedRate = Math.min(...rigs.map((rig) => rig.held?.publishRate ?? 0))
    for (let attempt = 0; matchedRate > 0 && attempt < p.matchedTurns; attempt++) {
      for (const rig of rigs) {
        if (!rig.server.alive()) continue
        const s = await step(rig, matchedRate, p)
        rig.matched.push(s)
        ctx.log(`${rig.name} matched: ${describe(s)}`)
      }
    }
    return await Promise.all(rigs.map(async (rig) => {
      const stats = await rig.server.stats().catch(() => null)
      return {
        server: rig.name,
        fixed: fixed.get(rig.name) as LoadStep | Failure,
        ladder: rig.ladder,
        best: rig.held,
        bestIsCeiling: rig.missed === null,
        matched: rig.matched,
        matchedBest: rig.matched.reduce<LoadStep | null>((best, s) => best === null || s.latency.p99 < best.latency.p99 ? s : best, null),
        rejections: stats === null ? null : { ...stats.rejections }
      }
    }))
  } finally {
    for (const rig of rigs) {
      await Promise.all(rig.generators.map((g) => g.kill()))
      await rig.server.close()
    }
  }
}

const idleServer = async (ctx: Context, name: ServerName, p: Params): Promise<IdleResult> => {
  const server = await startServer(name, name === 'ours' ? OUR_LOAD_OPTIONS : {})
  const generators = await spawnGenerators(p.idleGenerators, null)
  try {
    const baseline = await server.steady(HOLD_MS)
    const opened = await connectAll(generators, server.url, p.idleConnections, p.idleConnections / ROOM_SIZE)
    await sleep(2_000)
    const burst = await server.settle()
    const held = await server.steady(HOLD_MS)
    const result: IdleResult = {
      connections: opened,
      baselineRssMiB: baseline.rss / 2 ** 20,
      loadedRssMiB: held.rss / 2 ** 20,
      bytesPerConnection: (held.rss - baseline.rss) / opened,
      heapBytesPerConnection: (held.heapUsed - baseline.heapUsed) / opened,
      externalBytesPerConnection: (held.external - baseline.external) / opened,
      burstBytesPerConnection: (burst.rss - baseline.rss) / opened,
      youngMiB: { burst: burst.young / 2 ** 20, held: held.young / 2 ** 20 },
      heldAfterS: held.waitedMs / 1000
    }
    ctx.log(`${name} idle: ${opened} connections, RSS ${result.baselineRssMiB.toFixed(1)} -> ${result.loadedRssMiB.toFixed(1)} MiB: ${Math.round(result.bytesPerConnection)} bytes per connection held ` +
      `(heap ${Math.round(result.heapBytesPerConnection)}, external ${Math.round(result.externalBytesPerConnection)}); 2 s after the burst ${Math.round(result.burstBytesPerConnection)}, ` +
      `young generation ${result.youngMiB.burst.toFixed(1)} MiB then, ${result.youngMiB.held.toFixed(1)} MiB ${result.heldAfterS.toFixed(0)} s later`)
    return result
  } finally {
    await Promise.all(generators.map((g) => g.kill()))
    await server.close()
  }
}

const paramsFor = (quick: boolean): Params => quick
  ? { connections: 100, rooms: 10, generators: 2, fixedRate: 100, maxRate: 200, stepSeconds: 1, bisections: 0, idleConnections: 500, idleGenerators: 2, matchedTurns: 1 }
  : { connections: 1_000, rooms: 100, generators: 2, fixedRate: 1_000, maxRate: 32_000, stepSeconds: 5, bisections: 2, idleConnections: 10_000, idleGenerators: 4, matchedTurns: 2 }

/** The idle measurement alone, for one server (the scenario runs it after the load). */
export const measureIdle = (ctx: Context, name: ServerName): Promise<IdleResult> => idleServer(ctx, name, paramsFor(ctx.quick))

export const runSignaling = async (ctx: Context): Promise<SignalingResult> => {
  const p = paramsFor(ctx.quick)
  const pinned = canPin()
  const loads = await loadBoth(ctx, p, pinned)
  const servers: ServerLoad[] = []
  for (const load of loads) servers.push({ ...load, idle: await idleServer(ctx, load.server, p).catch(failure) })
  return {
    connections: p.connections,
    rooms: p.rooms,
    fixedRate: p.fixedRate,
    maxRate: p.maxRate,
    stepSeconds: p.stepSeconds,
    idleConnections: p.idleConnections,
    pinned,
    ourOptions: OUR_LOAD_OPTIONS,
    servers
  }
}

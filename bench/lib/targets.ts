/**
 * The issue's targets, judged from one run's results: pass or short per row, with the numbers
 * on both sides and their ratio. A scenario that did not run or failed makes its rows 'n/a'.
 */

import type { Results, TargetRow } from './results.js'
import type { Failure } from '../scenarios/context.js'
import type { JoinAttempt } from '../scenarios/join.js'
import type { LatencyRow } from '../scenarios/latency.js'
import type { RoomContender, RoomPoint, RoomsResult } from '../scenarios/rooms.js'

const ok = <T extends object>(x: T | Failure | undefined): x is T => x !== undefined && !('error' in x)

const ms = (x: number): string => `${x.toFixed(x < 10 ? 3 : 1)} ms`
const perSecond = (x: number): string => `${Math.round(x).toLocaleString('en-US')}/s`
const bytes = (x: number): string => `${Math.round(x).toLocaleString('en-US')} B`
const times = (x: number): string => `${x.toFixed(2)}×`
const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const kibibytes = (x: number): string => `${(x / 1024).toLocaleString('en-US', { maximumFractionDigits: 1 })} KiB`
const mebibytes = (x: number): string => `${x.toFixed(2)} MiB`

/** Issue 15: each peer's heap growth above its live data, after 10^6 overwrites in a live room. */
const MAX_HEAP_ABOVE_LIVE_MIB = 8
/** Issue 15: what a joiner receives (from one peer), over the live data. */
const MAX_JOINER_OVER_LIVE = 2

/** Issue 16: 4 KB of RSS per idle connection held. */
const MAX_IDLE_BYTES = 4_000

const na = (target: string, note: string): TargetRow => ({ target, ours: '', anchor: '', ratio: '', verdict: 'n/a', note })

/** The p99 of each chunk, with the epoch moves made in it. */
export const chunkTails = (r: LatencyRow): string =>
  r.chunkP99s.map((x, i) => {
    const moves = r.chunkMoves[i] ?? 0
    return moves > 0 ? `${x.toFixed(3)} (${moves === 1 ? 'a move' : `${moves} moves`})` : x.toFixed(3)
  }).join(', ')

/** The CPU milliseconds of both peers' helper threads (V8's background compiler, mostly) in each chunk. */
export const chunkHelpers = (r: LatencyRow): string => (r.chunkThreads ?? []).map((t) => String(Math.round(t.helpers))).join(', ')

const compare = (target: string, ours: number, anchor: number, format: (x: number) => string, pass: (ratio: number) => boolean, note = ''): TargetRow => {
  const ratio = ours / anchor
  return { target, ours: format(ours), anchor: format(anchor), ratio: times(ratio), verdict: pass(ratio) ? 'pass' : 'short', note }
}

export const judgeTargets = (results: Results): TargetRow[] => {
  const rows: TargetRow[] = []
  const { latency, throughput, signaling, join, history, mesh, rooms } = results.scenarios

  if (ok(latency)) {
    const ours = latency.rows.find((r) => r.contender === 'session-store')?.summary
    const floor = latency.rows.find((r) => r.contender === 'simple-peer')?.summary
    const anchor = latency.rows.find((r) => r.contender === 'y-webrtc')?.summary
    if (ours !== undefined && floor !== undefined) {
      rows.push(compare('Round trip p50 at most 1.3× the raw data channel', ours.p50, floor.p50, ms, (r) => r <= 1.3,
        `p50 of each chunk: ${latency.rows.find((r) => r.contender === 'session-store')?.chunkP50s.map((x) => x.toFixed(3)).join(', ') ?? ''} (raw: ${latency.rows.find((r) => r.contender === 'simple-peer')?.chunkP50s.map((x) => x.toFixed(3)).join(', ') ?? ''})`))
    }
    if (ours !== undefined && anchor !== undefined) {
      const row = latency.rows.find((r) => r.contender === 'session-store')
      const stockRow = latency.rows.find((r) => r.contender === 'y-webrtc')
      rows.push(compare('Round trip p99 no worse than stock y-webrtc', ours.p99, anchor.p99, ms, (r) => r <= 1,
        row === undefined || stockRow === undefined ? '' : `p99 of each chunk: ${chunkTails(row)} (y-webrtc: ${chunkTails(stockRow)}); helper-thread CPU ms of each chunk, both peers: ${chunkHelpers(row)} (y-webrtc: ${chunkHelpers(stockRow)}); ` +
          `before, while V8 compiled (warm-up): ${row.warmupRoundTrips} round trips, p99 ${ms(row.cold.p99)} (y-webrtc: ${stockRow.warmupRoundTrips}, ${ms(stockRow.cold.p99)})`))
    }
  } else {
    rows.push(na('Round trip p50 within 1.3× of the raw data channel, p99 no worse than stock y-webrtc', latency === undefined ? 'not run' : latency.error))
  }

  if (ok(throughput)) {
    const ours = throughput.rows.find((r) => r.contender === 'session-store')
    const anchor = throughput.rows.find((r) => r.contender === 'y-webrtc')?.median
    if (ours?.median != null && anchor != null && throughput.medianRoundRatio !== null) {
      const ratio = throughput.medianRoundRatio
      rows.push({
        target: 'Throughput: at least 10× stock y-webrtc\'s writes per second',
        ours: perSecond(ours.median.writesPerSecond),
        anchor: perSecond(anchor.writesPerSecond),
        ratio: times(ratio),
        verdict: ratio >= 10 ? 'pass' : 'short',
        note: `A's writes per second (median rounds), yielding every ${throughput.yieldEvery} writes; the ratio is the median of the ${throughput.roundRatios.length} round-by-round ratios (${throughput.roundRatios.map((r) => r.toFixed(1)).join(', ')})`
      })
      const lags = ours.rounds.map((r) => 'error' in r ? null : r.lagMs)
      const lag = ours.median.lagMs
      rows.push({
        target: 'Throughput: B holds every final value within 100 ms of A\'s last write',
        ours: lag === null ? 'never' : ms(lag),
        anchor: anchor.lagMs === null ? 'never' : ms(anchor.lagMs),
        ratio: '',
        verdict: lag !== null && lag <= 100 ? 'pass' : 'short',
        note: `the median round's lag; every round: ${lags.map((l) => l === null ? 'never' : l.toFixed(1)).join(', ')} ms`
      })
    }
    else rows.push(na('Throughput: at least 10× stock y-webrtc\'s writes per second', 'a contender completed no round'))
  } else {
    rows.push(na('Throughput: at least 10× stock y-webrtc\'s writes per second', throughput === undefined ? 'not run' : throughput.error))
  }

  if (ok(history)) {
    const ours = history.rows.find((r) => r.contender === 'session-store')
    const last = ours !== undefined && !('error' in ours) ? ours.points.at(-1) : undefined
    const stock = history.rows.find((r) => r.contender === 'y-webrtc')
    const stockLast = stock !== undefined && !('error' in stock) ? stock.points.at(-1) : undefined
    if (last !== undefined) {
      rows.push({
        target: `Joins: after ${int(last.overwrites)} overwrites a joiner receives at most 2× the V2 state`,
        ours: kibibytes(last.syncWireBytes),
        anchor: `V2 state ${kibibytes(last.stateBytesV2)}`,
        ratio: times(last.syncWireBytes / last.stateBytesV2),
        verdict: last.syncWireBytes <= 2 * last.stateBytesV2 ? 'pass' : 'short',
        note: `live data ${kibibytes(last.liveBytes)}; stock y-webrtc would send ${stockLast === undefined ? '–' : kibibytes(stockLast.syncWireBytes)} (its V1 state) in one message`
      })
    }
  } else {
    rows.push(na('Joins: a joiner receives at most 2× the V2 state', history === undefined ? 'not run' : history.error))
  }

  rows.push(...roomTargets(rooms))

  if (ok(mesh)) {
    for (const row of mesh.rows) {
      if (row.contender !== 'session-store' || 'error' in row) continue
      const stock = mesh.rows.find((r) => r.contender === 'y-webrtc' && r.peers === row.peers)
      const room = row.updateMessagesPerWrite * (row.peers - 1)
      rows.push({
        target: `Mesh of ${row.peers}: a write costs N-1 = ${row.peers - 1} messages`,
        ours: room.toFixed(1),
        anchor: stock === undefined || 'error' in stock ? '–' : (stock.updateMessagesPerWrite * (stock.peers - 1)).toFixed(1),
        ratio: '',
        verdict: room <= (row.peers - 1) * 1.05 ? 'pass' : 'short',
        note: `update messages received per write in the room (${row.updateMessagesPerWrite.toFixed(2)} per peer; all messages, background included, ${row.messagesPerWrite.toFixed(2)} per peer); to every peer p50 ${ms(row.toEveryPeer.p50)}, p99 ${ms(row.toEveryPeer.p99)}`
      })
    }
  }

  const ourServer = ok(signaling) ? signaling.servers.find((s) => s.server === 'ours') : undefined
  const theirServer = ok(signaling) ? signaling.servers.find((s) => s.server === 'y-webrtc') : undefined
  if (ourServer !== undefined && theirServer !== undefined) {
    if (ourServer.best !== null && theirServer.best !== null) {
      const ceiling = ourServer.bestIsCeiling
        ? 'ours held the top of the ladder: the limit found is the load generator\'s'
        : ourServer.best.generatorCpuPercent >= 90 ? `the generators used ${ourServer.best.generatorCpuPercent.toFixed(0)} % of their core at our best rate: ours may do more` : ''
      // Judged on the publish rates held: the relayed counts at one rate differ only by the window's jitter.
      const ratio = ourServer.best.publishRate / theirServer.best.publishRate
      rows.push({
        target: 'Signaling: relayed messages/s at least those of bin/server.js',
        ours: perSecond(ourServer.best.relayedPerSecond),
        anchor: perSecond(theirServer.best.relayedPerSecond),
        ratio: times(ratio),
        verdict: ratio >= 1 ? 'pass' : 'short',
        note: [`highest rates held: ${int(ourServer.best.publishRate)} and ${int(theirServer.best.publishRate)} publishes/s`, ceiling].filter((x) => x !== '').join('; ')
      })
    } else {
      rows.push(na('Signaling: relayed messages/s at least those of bin/server.js', 'a server held no rate'))
    }
    if (ourServer.matchedBest !== null && theirServer.matchedBest !== null) {
      rows.push(compare('Signaling: p99 relay latency no worse than bin/server.js, at the highest rate both sustain', ourServer.matchedBest.latency.p99, theirServer.matchedBest.latency.p99, ms, (r) => r <= 1,
        `both at ${int(ourServer.matchedBest.publishRate)} publishes/s (${int(ourServer.matchedBest.relayedPerSecond)} relayed/s), the better of ${ourServer.matched.length === 1 ? 'one turn' : `${ourServer.matched.length} turns`} each`))
    } else {
      rows.push(na('Signaling: p99 relay latency no worse than bin/server.js, at the highest rate both sustain', 'no rate held by both'))
    }
    if (ok(ourServer.fixed) && ok(theirServer.fixed)) {
      rows.push(compare('Signaling: p99 relay latency no worse than bin/server.js, at the fixed rate', ourServer.fixed.latency.p99, theirServer.fixed.latency.p99, ms, (r) => r <= 1,
        `${int(ourServer.fixed.publishRate)} publishes/s (${int(ourServer.fixed.relayedPerSecond)} relayed/s), one turn each`))
    }
    if (ok(ourServer.idle) && ok(theirServer.idle)) {
      rows.push(compare('Signaling: less memory per idle connection than bin/server.js', ourServer.idle.bytesPerConnection, theirServer.idle.bytesPerConnection, bytes, (r) => r < 1, `server RSS growth over ${ourServer.idle.connections.toLocaleString('en-US')} connections held`))
    } else {
      rows.push(na('Signaling: less memory per idle connection than bin/server.js', 'idle measurement failed'))
    }
    if (ok(ourServer.idle)) {
      const { bytesPerConnection, burstBytesPerConnection } = ourServer.idle
      rows.push({
        target: `Signaling: at most ${int(MAX_IDLE_BYTES)} B of RSS per idle connection held`,
        ours: bytes(bytesPerConnection),
        anchor: bytes(MAX_IDLE_BYTES),
        ratio: times(bytesPerConnection / MAX_IDLE_BYTES),
        verdict: bytesPerConnection <= MAX_IDLE_BYTES ? 'pass' : 'short',
        note: `default node flags; ${bytes(burstBytesPerConnection)} 2 s after the burst, before V8 shrinks its young generation back`
      })
    }
  } else {
    rows.push(na('Signaling server targets', signaling === undefined ? 'not run' : ok(signaling) ? 'a server missing' : signaling.error))
  }

  if (ok(join)) {
    const joined = (contender: string): { done: number, total: number, histories: number[] } => {
      const mine = join.rows.filter((r) => r.contender === contender)
      const done = mine.filter((r) => !('error' in r) && r.attempts.length > 0 && r.attempts.every((a) => ok<JoinAttempt>(a) && a.completeMs !== null))
      return { done: done.length, total: mine.length, histories: [...new Set(mine.map((r) => r.overwrites))] }
    }
    const ours = joined('session-store')
    const anchor = joined('y-webrtc')
    rows.push({
      target: 'Joins succeed at every history length',
      ours: `${ours.done}/${ours.total} rooms`,
      anchor: `${anchor.done}/${anchor.total} rooms`,
      ratio: '',
      verdict: ours.total > 0 && ours.done === ours.total ? 'pass' : 'short',
      note: `histories of ${ours.histories.map((h) => h.toLocaleString('en-US')).join(' and ')} overwrites, every room size; a room counts when every join into it completed`
    })
  } else {
    rows.push(na('Joins succeed at every history length', join === undefined ? 'not run' : join.error))
  }
  return rows
}

/** Issue 15's three rows, judged at the library's largest checkpoint (10^6 in a full run). */
const roomTargets = (rooms: RoomsResult | Failure | undefined): TargetRow[] => {
  const targets = [
    `Rooms: each peer's heap at most ${MAX_HEAP_ABOVE_LIVE_MIB} MiB above its live data`,
    `Rooms: a joiner receives at most ${MAX_JOINER_OVER_LIVE}× the live data from one peer`,
    'Rooms: the delay of a write during a move (p99) reported'
  ]
  const points = (contender: RoomContender): RoomPoint[] => {
    const row = ok(rooms) ? rooms.rows.find((r) => r.contender === contender) : undefined
    return row === undefined || 'error' in row ? [] : row.points
  }
  const last = points('session-store').at(-1)
  if (last === undefined) return targets.map((t) => na(t, rooms === undefined ? 'not run' : ok(rooms) ? 'the library\'s room failed' : rooms.error))
  const after = `after ${int(last.overwrites)} overwrites in a live room of 3 peers`
  const stock = points('y-webrtc').find((p) => p.overwrites === last.overwrites)
  const reference = points('ykeyvalue').at(-1)
  const others = (value: (p: RoomPoint) => string): string => [
    stock === undefined ? null : `stock y-webrtc ${value(stock)}`,
    reference === undefined ? null : `y-utility YKeyValue ${value(reference)}${reference.overwrites === last.overwrites ? '' : ` (at ${int(reference.overwrites)})`}`
  ].filter((x) => x !== null).join('; ')
  const joinerRatio = last.joinerBytesPerPeer / last.liveBytes
  return [
    {
      target: `${targets[0] as string}, ${after}`,
      ours: mebibytes(last.heapAboveLiveMiB),
      anchor: mebibytes(MAX_HEAP_ABOVE_LIVE_MIB),
      ratio: times(last.heapAboveLiveMiB / MAX_HEAP_ABOVE_LIVE_MIB),
      verdict: last.heapAboveLiveMiB <= MAX_HEAP_ABOVE_LIVE_MIB ? 'pass' : 'short',
      note: `live data ${kibibytes(last.liveBytes)}, epoch ${last.epoch}; ${others((p) => mebibytes(p.heapAboveLiveMiB))}`
    },
    {
      target: `${targets[1] as string}, ${after}`,
      ours: kibibytes(last.joinerBytesPerPeer),
      anchor: `live data ${kibibytes(last.liveBytes)}`,
      ratio: times(joinerRatio),
      verdict: joinerRatio <= MAX_JOINER_OVER_LIVE ? 'pass' : 'short',
      note: `${kibibytes(last.joinerBytes)} from the 3 peers in all; ${others((p) => `${kibibytes(p.joinerBytesPerPeer)} from each peer`)}`
    },
    {
      target: `${targets[2] as string}, ${after}`,
      ours: last.moveMs.count === 0 ? 'no move ran' : ms(last.moveMs.p99),
      anchor: `every write: p99 ${ms(last.writeMs.p99)}`,
      ratio: '',
      verdict: last.moveMs.count > 0 ? 'pass' : 'short',
      note: `${int(last.moveMs.count)} moves: p50 ${ms(last.moveMs.p50)}, max ${ms(last.moveMs.max)}; every write since the previous checkpoint p50 ${ms(last.writeMs.p50)}, max ${ms(last.writeMs.max)}${stock === undefined ? '' : `; stock y-webrtc's writes p99 ${ms(stock.writeMs.p99)}`}`
    }
  ]
}

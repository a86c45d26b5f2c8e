/**
 * Scenario 8, history in a live room (issue 15's targets): 3 peers take turns overwriting the full
 * store's 100 keys (about 640-byte values), a round of 100 writes each, one round per event-loop
 * turn, to 10^4, 10^5 and 10^6 overwrites (quick: the first two). Each contender runs in a child
 * process of its own (`bench/history-room.ts child`: a fresh heap, read after a full GC against
 * the heap before the room was made), its 3 peers in that process:
 * - the library: 3 sessions (joinRoom over the in-memory link: the handshake, the data plane,
 *   epochs with the default compactAfter);
 * - stock y-webrtc: what each of its peers holds, a Y.Map in a Y.Doc, 3 documents exchanging updates;
 * - y-utility's YKeyValue (over a Y.Array), the same way; to 10^5 only (`ROOM_SKIPS` says why).
 * At each checkpoint: heap growth per peer above the live data, the current document's state (V1,
 * V2), and what a joiner receives: for the library, every byte a fourth session's connections
 * delivered from its join to holding the 100 keys (the move's seed, the epoch's V2 sync, handshake,
 * awareness, checks; from each of the 3 peers) and the largest from one peer; for the others, the
 * V1 state y-webrtc's sync step 2 sends, from each peer. And the write delay: each write's time in
 * the writers' loop (all 3 peers share one event loop, so a move on any peer delays every write),
 * p50/p99/max, and the delays of the writes during which a move ran. `DEBUG_JOIN=1` prints what
 * the library's joiner received, by peer and message type; `YIELD_EVERY` (default 100) is how many
 * writes go between two yields to the event loop (each turn's writes leave as one update per
 * connection); `COMPACT_AFTER` sets the library peers' `compactAfter`.
 */

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { YKeyValue } from 'y-utility/y-keyvalue'
import { runToEnd } from '../lib/child.js'
import { KEYS, fullValue, liveBytes } from '../lib/workload.js'
import { failure, LABELS, type Context, type Failure } from './context.js'

export const ROOM_CONTENDERS = ['session-store', 'y-webrtc', 'ykeyvalue'] as const
export type RoomContender = typeof ROOM_CONTENDERS[number]

export const ROOM_LABELS: Record<RoomContender, string> = {
  'session-store': LABELS['session-store'],
  'y-webrtc': LABELS['y-webrtc'],
  ykeyvalue: 'y-utility YKeyValue (reference)'
}

export interface RoomPoint {
  overwrites: number
  liveBytes: number
  heapPerPeerMiB: number
  heapAboveLiveMiB: number
  stateV1: number
  stateV2: number
  /** What a joiner received from the 3 peers together. */
  joinerBytes: number
  /** The most it received from one of them. */
  joinerBytesPerPeer: number
  epoch: number
  /** Every write since the previous checkpoint. */
  writeMs: { p50: number, p99: number, max: number }
  /** The writes during which a move ran, since the start. */
  moveMs: { count: number, p50: number, p99: number, max: number }
  /** Since the room was made. */
  seconds: number
}

/** The checkpoints a contender is run to, and those it is not run to, with the reason. */
export interface RoomPlan {
  contender: RoomContender
  checkpoints: number[]
  skipped: { overwrites: number[], reason: string } | null
}

export type RoomRow = RoomPlan & ({ points: RoomPoint[] } | Failure)

export interface RoomsResult {
  peers: number
  yieldEvery: number
  /** The library peers' compactAfter, or null for the library's default. */
  compactAfter: number | null
  /** Each contender's child is killed after this long. */
  timeoutMs: number
  rows: RoomRow[]
}

const PEERS = 3
const YIELD_EVERY = Number(process.env.YIELD_EVERY ?? 100)
/** The library peers' compactAfter (`COMPACT_AFTER`); default the library's. */
const COMPACT_AFTER = process.env.COMPACT_AFTER === undefined ? undefined : Number(process.env.COMPACT_AFTER)
const ROOM_TIMEOUT_MS = 3_600_000

/** Checkpoints a contender is not run to in a full run, and why. */
const ROOM_SKIPS: Partial<Record<RoomContender, { above: number, reason: string }>> = {
  ykeyvalue: {
    above: 100_000,
    reason: 'with its 3 writers taking turns, YKeyValue reached 10^5 overwrites in about 35 s but had not reached 10^6 after 40 minutes: it is run to 10^5 only'
  }
}

export const roomPlan = (contender: RoomContender, quick: boolean): RoomPlan => {
  const all = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]
  const skip = ROOM_SKIPS[contender]
  const checkpoints = all.filter((n) => skip === undefined || n <= skip.above)
  const skipped = all.filter((n) => !checkpoints.includes(n))
  return { contender, checkpoints, skipped: skip === undefined || skipped.length === 0 ? null : { overwrites: skipped, reason: skip.reason } }
}

const gc = (): void => { (globalThis as { gc?: () => void }).gc?.() }
const heap = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }
const yieldTurn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))
const quantile = (sorted: number[], q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
const summary = (values: ArrayLike<number>): { p50: number, p99: number, max: number } => {
  const sorted = Array.from(values).sort((a, b) => a - b)
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? 0 }
}

interface Room {
  set: (peer: number, key: string, value: unknown) => void | Promise<unknown>
  live: () => Array<[string, unknown]>
  doc: () => Y.Doc
  /** Bytes a joiner receives, in all and from one peer. */
  join: () => Promise<{ total: number, perPeer: number }>
  epoch: () => number
}

const docsRoom = async (kind: 'y-webrtc' | 'ykeyvalue'): Promise<Room> => {
  const docs = Array.from({ length: PEERS }, () => new Y.Doc())
  for (const doc of docs) {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'remote') return
      for (const other of docs) if (other !== doc) Y.applyUpdate(other, update, 'remote')
    })
  }
  const kvs = kind === 'ykeyvalue' ? docs.map((doc) => new YKeyValue<unknown>(doc.getArray('session-store'))) : null
  const maps = kvs !== null ? [] : docs.map((doc) => doc.getMap<unknown>('session-store'))
  return {
    set: (peer, key, value) => { if (kvs !== null) kvs[peer]?.set(key, value); else maps[peer]?.set(key, value) },
    live: () => kvs !== null ? Array.from((kvs[0] as YKeyValue<unknown>).map.values(), (e) => [e.key, e.val] as [string, unknown]) : Array.from((maps[0] as Y.Map<unknown>).entries()),
    doc: () => docs[0] as Y.Doc,
    // y-webrtc answers a joiner's sync step 1 with the whole V1 state, from each peer.
    join: async () => {
      const state = Y.encodeStateAsUpdate(docs[0] as Y.Doc).length
      return { total: PEERS * state, perPeer: state }
    },
    epoch: () => 0
  }
}

const libraryRoom = async (): Promise<Room> => {
  const { joinRoom } = await import('../../src/session.js')
  const { MemoryHub } = await import('../../src/transport/memory-link.js')
  const hub = new MemoryHub()
  const room = 'history-room'
  const sessions: Array<Awaited<ReturnType<typeof joinRoom>>> = []
  for (let i = 0; i < PEERS; i++) {
    const session = joinRoom(room, { joinTimeout: 5000, ...(COMPACT_AFTER === undefined ? {} : { compactAfter: COMPACT_AFTER }) }, { link: hub.link })
    await session.sessionStore
    sessions.push(session)
  }
  const stores = await Promise.all(sessions.map(async (session) => await session.sessionStore))
  return {
    set: async (peer, key, value) => await stores[peer]?.set(key, value),
    live: () => KEYS.map((key) => [key, stores[0]?.get(key)]),
    doc: () => (sessions[0] as { doc: Y.Doc }).doc,
    join: async () => {
      let total = 0
      const perPeer = new Map<string, number>()
      const byType = new Map<string, number>()
      const link: typeof hub.link = (name, options) => {
        const inner = hub.link(name, options)
        inner.on('message', ({ connection, message }) => {
          if (process.env.DEBUG_JOIN !== undefined) {
            const d = decoding.createDecoder(message)
            const outer = decoding.readVarUint(d)
            const type = outer === 44 ? `${connection.remoteId.slice(0, 4)} 44/${decoding.readVarUint(d)}/${decoding.readVarUint(d)}/${decoding.readVarUint(d)}` : `${connection.remoteId.slice(0, 4)} ${outer}`
            byType.set(type, (byType.get(type) ?? 0) + message.length)
          }
          total += message.length
          perPeer.set(connection.remoteId, (perPeer.get(connection.remoteId) ?? 0) + message.length)
        })
        return inner
      }
      const joiner = joinRoom(room, { joinTimeout: 5000 }, { link })
      const store = await joiner.sessionStore
      const target = sessions[0] as { epoch: { n: number, s: number } }
      const deadline = Date.now() + 60_000
      while (!(joiner.epoch.n === target.epoch.n && joiner.epoch.s === target.epoch.s && KEYS.every((key) => JSON.stringify(store.get(key)) === JSON.stringify(stores[0]?.get(key))))) {
        if (Date.now() > deadline) {
          const matching = KEYS.filter((key) => JSON.stringify(store.get(key)) === JSON.stringify(stores[0]?.get(key))).length
          throw new Error(`the joiner did not catch up within 60 s: its epoch ${JSON.stringify(joiner.epoch)}, the room's ${JSON.stringify(target.epoch)}, ${matching} keys alike, ${JSON.stringify(joiner.status)}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      const result = { total, perPeer: Math.max(...perPeer.values()) }
      if (process.env.DEBUG_JOIN !== undefined) process.stderr.write(`joiner by type: ${JSON.stringify([...byType])}\n`)
      await joiner.leave()
      return result
    },
    epoch: () => (sessions[0] as { epoch: { n: number } }).epoch.n
  }
}

/** One contender's room, in this process: the child side of the scenario. */
export const measureRoom = async (contender: RoomContender, checkpoints: number[]): Promise<RoomPoint[]> => {
  // The write times go into one array made before the heap is read: 10^6 boxed numbers in a
  // growing array would be some 15 MiB of the measured growth (read as 5 MiB per peer).
  const longest = Math.max(...checkpoints.map((target, i) => target - (checkpoints[i - 1] ?? 0)))
  const writeMs = new Float64Array(longest)
  let writes = 0
  const before = heap()
  const started = Date.now()
  const room = contender === 'session-store' ? await libraryRoom() : await docsRoom(contender)
  const points: RoomPoint[] = []
  let done = 0
  let lastEpoch = room.epoch()
  const moveMs: number[] = []
  for (const target of checkpoints) {
    for (; done < target; done++) {
      const round = Math.floor(done / KEYS.length)
      const start = performance.now()
      const pending = room.set(round % PEERS, KEYS[done % KEYS.length] as string, fullValue(round))
      if (pending !== undefined) await pending
      if (done % YIELD_EVERY === YIELD_EVERY - 1) await yieldTurn()
      const ms = performance.now() - start
      writeMs[writes++] = ms
      const epoch = room.epoch()
      if (epoch !== lastEpoch) {
        moveMs.push(ms)
        lastEpoch = epoch
      }
    }
    // Let what is in flight arrive before measuring.
    for (let i = 0; i < 50; i++) await yieldTurn()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const live = liveBytes(room.live())
    const grown = heap() - before
    const doc = room.doc()
    const joiner = await room.join()
    points.push({
      overwrites: target,
      liveBytes: live,
      heapPerPeerMiB: grown / PEERS / 2 ** 20,
      heapAboveLiveMiB: (grown / PEERS - live) / 2 ** 20,
      stateV1: Y.encodeStateAsUpdate(doc).length,
      stateV2: Y.encodeStateAsUpdateV2(doc).length,
      joinerBytes: joiner.total,
      joinerBytesPerPeer: joiner.perPeer,
      epoch: room.epoch(),
      writeMs: summary(writeMs.subarray(0, writes)),
      moveMs: { count: moveMs.length, ...summary(moveMs) },
      seconds: (Date.now() - started) / 1000
    })
    process.stderr.write(`${contender}: ${target} overwrites\n`)
    writes = 0
  }
  return points
}

/** One contender's room in a child process of its own (`bench/history-room.ts child`). */
export const runRoom = async (plan: RoomPlan): Promise<RoomRow> => {
  try {
    const out = await runToEnd(`rooms:${plan.contender}`, 'bench/history-room.ts', ['child', plan.contender, plan.checkpoints.join(',')], {
      execArgv: ['--expose-gc', '--max-old-space-size=4096'],
      timeout: ROOM_TIMEOUT_MS
    })
    return { ...plan, points: JSON.parse(out) as RoomPoint[] }
  } catch (err) {
    return { ...plan, ...failure(err) }
  }
}

export const runRooms = async (ctx: Pick<Context, 'quick' | 'log'>): Promise<RoomsResult> => {
  const rows: RoomRow[] = []
  for (const contender of ROOM_CONTENDERS) {
    const plan = roomPlan(contender, ctx.quick)
    ctx.log(`${contender}: to ${plan.checkpoints.map((n) => n.toLocaleString('en-US')).join(', ')} overwrites${plan.skipped === null ? '' : ` (not ${plan.skipped.overwrites.map((n) => n.toLocaleString('en-US')).join(', ')}: ${plan.skipped.reason})`}`)
    rows.push(await runRoom(plan))
  }
  return { peers: PEERS, yieldEvery: YIELD_EVERY, compactAfter: COMPACT_AFTER ?? null, timeoutMs: ROOM_TIMEOUT_MS, rows }
}

/**
 * One key-value peer in its own process: `tsx bench/peers/kv-peer.ts <contender>`. The
 * orchestrator drives it over IPC; every measured interval starts and ends in here, on the
 * machine-wide monotonic clock, so IPC never sits inside a measurement.
 */

import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { encodeFrames } from '../../dist/src/transport/framing.js'
import { encodeSyncStep2V2 } from '../../dist/src/transport/sync-v2.js'
import { emit, serve } from '../lib/child.js'
import { now, sleep, until, withTimeout, yieldToEventLoop } from '../lib/clock.js'
import { KEYS, fullValue, liveBytes, smallValue } from '../lib/workload.js'
import { KV_CONTENDERS, joinAs, type JoinSpec, type KvContenderName, type KvPeer, type Traffic } from './contenders.js'

/**
 * BroadcastChannel posts this process makes (y-webrtc posts document and awareness updates there
 * too). In Node no other process can receive them; counted to show what they cost.
 */
const broadcast = { posts: 0, bytes: 0 }
const post = BroadcastChannel.prototype.postMessage
BroadcastChannel.prototype.postMessage = function (this: BroadcastChannel, message: unknown) {
  broadcast.posts++
  broadcast.bytes += (message as { byteLength?: number } | null)?.byteLength ?? 0
  post.call(this, message)
}

const name = process.argv[2] as KvContenderName
if (!KV_CONTENDERS.includes(name)) throw new Error(`unknown contender '${String(name)}'`)

let peer: KvPeer | null = null
const need = (): KvPeer => {
  if (peer === null) throw new Error('not joined')
  return peer
}

/** Awaits the library's write promise; a synchronous Y.Map write costs no await. */
const write = async (key: string, value: Parameters<KvPeer['set']>[1]): Promise<void> => {
  const pending = need().set(key, value)
  if (pending !== undefined) await pending
}

/** Runs `rounds` rounds of overwriting every key with `fullValue(round)`, yielding between rounds. */
const overwriteRounds = async (from: number, to: number): Promise<void> => {
  for (let round = from; round <= to; round++) {
    for (const key of KEYS) await write(key, fullValue(round))
    await yieldToEventLoop()
  }
}

/**
 * What a peer that joins with an empty document receives as the answer to its sync step 1: for
 * y-webrtc, y-protocols' step 2 (the V1 state), computed exactly as y-webrtc does; for the
 * library, its V2 step 2 (sync-v2.ts), computed with its own encoder.
 */
const joinerSyncMessage = (doc: Y.Doc): Uint8Array => {
  if (name === 'session-store') return encodeSyncStep2V2(doc, Y.encodeStateVector(new Y.Doc()))
  return v1SyncMessage(doc)
}

const v1SyncMessage = (doc: Y.Doc): Uint8Array => {
  const step1 = encoding.createEncoder()
  syncProtocol.writeSyncStep1(step1, new Y.Doc())
  const reply = encoding.createEncoder()
  encoding.writeVarUint(reply, 0) // y-webrtc's messageSync
  syncProtocol.readSyncMessage(decoding.createDecoder(encoding.toUint8Array(step1)), reply, doc, null)
  return encoding.toUint8Array(reply)
}

const wireBytes = (message: Uint8Array): number =>
  name === 'session-store' ? encodeFrames(message).reduce((sum, frame) => sum + frame.length, 0) : message.length

let pingsSeen = 0
let counter = { count: 0, maxSeq: -1, maxSeqAt: 0, firstAt: 0 }
/** Per throughput key: the highest write number seen, and when. */
let latest = new Map<string, { seq: number, at: number }>()
let arrivals: Array<[number, number]> = []
let cpuMark: { usage: NodeJS.CpuUsage, at: number } | null = null

const commands = {
  async join (spec: JoinSpec) {
    const start = now()
    peer = joinAs(name, spec)
    const sync = await withTimeout(peer.ready, 30_000, `${name} join`)
    return { readyMs: now() - start, sync }
  },

  waitConnected: ({ count, timeout }: { count: number, timeout: number }) =>
    until(() => need().connectedPeers() >= count, timeout, `${count} WebRTC connections`),

  connectedPeers: () => need().connectedPeers(),

  /** Answers every `ping` with the same value as `pong`, from inside the change callback. */
  respond () {
    const p = need()
    p.observe(['ping'], (_key, value) => {
      if (typeof value !== 'number') return
      pingsSeen++
      const pending = p.set('pong', value)
      if (pending !== undefined) pending.catch((err: unknown) => emit('error', String(err)))
    })
  },

  pingsSeen: () => pingsSeen,

  /** Round trips: set `ping`, wait for the peer's `pong` with the same value. Warm-up rounds are not kept. */
  async pingLoop ({ warmup, iterations, timeout }: { warmup: number, iterations: number, timeout: number }) {
    const p = need()
    let expected = -1
    let answered: ((at: number) => void) | null = null
    p.observe(['pong'], (_key, value) => {
      if (value === expected && answered !== null) answered(now())
    })
    const samples: number[] = []
    const epochBefore = p.epoch()
    for (let i = 0; i < warmup + iterations; i++) {
      expected = i
      const round = new Promise<number>((resolve) => { answered = resolve })
      const sentAt = now()
      await write('ping', i)
      const at = await withTimeout(round, timeout, `pong ${i}`)
      if (i >= warmup) samples.push(at - sentAt)
      await yieldToEventLoop()
    }
    // The epochs A went through (the library moves the room to a fresh document past its history limit).
    return { samples, moves: epochBefore === null ? null : (p.epoch() ?? epochBefore) - epochBefore }
  },

  /** Starts counting throughput writes seen from the other peer. */
  countUpdates () {
    counter = { count: 0, maxSeq: -1, maxSeqAt: 0, firstAt: 0 }
    latest = new Map()
    need().observe(KEYS, (key, value) => {
      const seq = (value as { seq?: unknown } | undefined)?.seq
      if (typeof seq !== 'number') return
      const at = now()
      if ((latest.get(key)?.seq ?? -1) < seq) latest.set(key, { seq, at })
      if (counter.count === 0) counter.firstAt = at
      counter.count++
      if (seq > counter.maxSeq) {
        counter.maxSeq = seq
        counter.maxSeqAt = at
      }
    })
  },

  /**
   * Waits until every key holds its final value (the last of writes 0..`lastSeq`, written
   * round-robin over KEYS), or `timeout`, then reports the counts and when the last key got there.
   */
  async countResult ({ lastSeq, timeout }: { lastSeq: number, timeout: number }) {
    const finalSeq = (i: number): number => lastSeq - ((lastSeq - i) % KEYS.length + KEYS.length) % KEYS.length
    const final = (): boolean => KEYS.every((key, i) => finalSeq(i) < 0 || (latest.get(key)?.seq ?? -1) >= finalSeq(i))
    const complete = await until(() => counter.maxSeq >= lastSeq && final(), timeout, 'every key\'s final value', 5).then(() => true, () => false)
    const allFinalAt = Math.max(...KEYS.map((key) => latest.get(key)?.at ?? 0))
    return { ...counter, complete, allFinalAt, connected: need().connectedPeers() }
  },

  /**
   * Writes 100 keys round-robin as fast as the API allows for `durationMs`, yielding every
   * `yieldEvery` writes. Also reports where the time went: inside the write calls, or in the
   * event loop turns between batches (where received messages and timers run).
   */
  async writeBurst ({ durationMs, yieldEvery }: { durationMs: number, yieldEvery: number }) {
    const before = { ...need().traffic }
    const postsBefore = broadcast.posts
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
        await write(KEYS[seq % KEYS.length] as string, smallValue(seq))
      }
      lastAt = now()
      inWrites += lastAt - batchStart
      await yieldToEventLoop()
    }
    const used = process.cpuUsage(cpu)
    const after = need().traffic
    return {
      writes: seq,
      firstAt,
      lastAt,
      lastWriteAt,
      lastSeq: seq - 1,
      inWritesMs: inWrites,
      betweenBatchesMs: lastAt - firstAt - inWrites,
      cpuMs: (used.user + used.system) / 1000,
      messagesOut: after.messagesOut - before.messagesOut,
      bytesOut: after.bytesOut - before.bytesOut,
      broadcastPosts: broadcast.posts - postsBefore
    }
  },

  /** Starts recording when each mesh write arrives: [index, latency ms]. */
  recordTicks () {
    arrivals = []
    need().observe(['tick'], (_key, value) => {
      const tick = value as { i?: unknown, t?: unknown } | undefined
      if (typeof tick?.i === 'number' && typeof tick.t === 'number') arrivals.push([tick.i, now() - tick.t])
    })
  },

  ticks: () => ({ arrivals }),

  async writeTicks ({ count, intervalMs }: { count: number, intervalMs: number }) {
    for (let i = 0; i < count; i++) {
      await write('tick', { i, t: now() })
      await sleep(intervalMs)
    }
    return { sent: count }
  },

  cpuStart () {
    cpuMark = { usage: process.cpuUsage(), at: now() }
  },

  cpuStop () {
    if (cpuMark === null) throw new Error('cpuStart first')
    const used = process.cpuUsage(cpuMark.usage)
    return { cpuMs: (used.user + used.system) / 1000, wallMs: now() - cpuMark.at }
  },

  /**
   * The join measurement: from joining until every key holds generation `expectGen`, or until
   * `timeout`. Checked after every document update, so the time is that of the completing update.
   */
  async joinAndVerify ({ spec, expectGen, timeout }: { spec: JoinSpec, expectGen: number, timeout: number }) {
    const start = now()
    const p = peer = joinAs(name, spec)
    let readyAt: number | null = null
    const present = (): number => KEYS.filter((key) => (p.get(key) as { gen?: unknown } | undefined)?.gen === expectGen).length
    const completed = new Promise<number>((resolve) => {
      const check = (): void => {
        if (present() !== KEYS.length) return
        p.doc.off('update', check)
        resolve(now())
      }
      p.doc.on('update', check)
      void p.ready.then((sync) => {
        readyAt = now()
        emit('joined', sync)
        check()
      }, () => {})
    })
    const completeAt = await withTimeout(completed, timeout, 'every key').catch(() => null)
    const sync = await Promise.race([p.ready, Promise.resolve('pending')]).catch((err: unknown) => `failed: ${String(err)}`)
    return {
      readyMs: readyAt === null ? null : readyAt - start,
      completeMs: completeAt === null ? null : completeAt - start,
      keysPresent: present(),
      sync,
      traffic: { ...p.traffic } satisfies Traffic,
      connected: p.connectedPeers()
    }
  },

  traffic: () => ({ ...need().traffic }),

  broadcastPosts: () => ({ ...broadcast }),

  /**
   * The full store after `overwrites` overwrites (whole rounds of 100 keys), written through this
   * contender's API, as a Yjs update. The library needs a session to write: it joins `spec`'s room alone.
   */
  async seed ({ spec, overwrites }: { spec: JoinSpec, overwrites: number }) {
    const start = now()
    peer = joinAs(name, spec)
    await withTimeout(peer.ready, 30_000, `${name} join`)
    await overwriteRounds(0, overwrites / KEYS.length)
    const state = Y.encodeStateAsUpdate(peer.doc)
    return { state, ms: now() - start }
  },

  /** History growth: state and joiner sync bytes at each checkpoint (overwrites, in whole rounds). */
  async history ({ spec, checkpoints }: { spec: JoinSpec, checkpoints: number[] }) {
    const p = peer = joinAs(name, spec)
    await withTimeout(p.ready, 30_000, `${name} join`)
    const rows = []
    let done = -1
    let writeMs = 0
    for (const overwrites of checkpoints) {
      const rounds = overwrites / KEYS.length
      const start = now()
      await overwriteRounds(done + 1, rounds)
      writeMs += now() - start
      done = rounds
      const state = Y.encodeStateAsUpdate(p.doc)
      const sync = joinerSyncMessage(p.doc)
      rows.push({
        overwrites,
        liveBytes: liveBytes(KEYS.map((key) => [key, p.get(key)])),
        stateBytes: state.length,
        stateBytesV2: Y.encodeStateAsUpdateV2(p.doc).length,
        syncMessageBytes: sync.length,
        syncWireBytes: wireBytes(sync),
        writeMs
      })
      emit('progress', overwrites)
    }
    return { rows }
  },

  async leave () {
    await peer?.leave()
    peer = null
    // Profiled (BENCH_PEER_PROFILE): exit on its own, so that --cpu-prof writes the profile.
    if (process.env.BENCH_PEER_PROFILE !== undefined) setTimeout(() => process.exit(0), 100)
  }
}

export type KvCommands = typeof commands

serve(commands)

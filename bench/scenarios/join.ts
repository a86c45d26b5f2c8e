/**
 * Scenario 3, join time: a room of N peers holds a full store (100 keys, about 64 KB); a new
 * peer joins, and we time from its `joinRoom` (or `new WebrtcProvider`) until every key holds
 * its final value. Then the same after 50,000 overwrites of those keys, where y-webrtc's single
 * sync message outgrows the 256 KiB a data channel carries.
 *
 * The room's history is written once per contender through that contender's own API (a seed
 * peer alone in a room) and loaded into each of the N peers before they connect, as if they had
 * lived through it: writing 50,000 overwrites live into a 10-peer mesh would take minutes and
 * measure nothing more. The joiner is a fresh process with an empty document, and counts the
 * bytes its data channels receive until it is complete.
 */

import { dismiss, freshRoom, spawnKv, spawnMesh, type KvChild } from '../lib/peers.js'
import type { JoinSpec, KvContenderName, Traffic } from '../peers/contenders.js'
import { KV_CONTENDERS } from '../peers/contenders.js'
import { KEYS } from '../lib/workload.js'
import { failure, MAX_CONNS, type Context, type Failure } from './context.js'

export interface JoinAttempt {
  /** Until the library's store was available (null for y-webrtc, which has no such moment, or if it never was). */
  readyMs: number | null
  /** Until every key held its final value; null if that did not happen within the timeout. */
  completeMs: number | null
  keysPresent: number
  sync: string
  traffic: Traffic
}

export interface JoinRow {
  contender: KvContenderName
  /** Peers already in the room; the joiner makes one more. */
  roomPeers: number
  overwrites: number
  /** Bytes of the room's state (Y.encodeStateAsUpdate) the peers held. */
  stateBytes: number
  attempts: Array<JoinAttempt | Failure>
  /** Send failures and largest message the room's peers saw while the joiners tried. */
  roomTraffic: Pick<Traffic, 'sendErrors' | 'largestSend' | 'lastSendError' | 'channelsClosed'> | null
  /** Why the room had to be formed again (empty when it formed at the first try). */
  setupRetries: string[]
  /** A room peer that was gone when the joins were over (they were measured all the same). */
  roomError: string | null
}

export interface JoinResult {
  timeoutMs: number
  rows: Array<JoinRow | (Failure & { contender: KvContenderName, roomPeers: number, overwrites: number })>
}


const seed = async (ctx: Context, contender: KvContenderName, overwrites: number): Promise<Uint8Array> => {
  const seeder = await spawnKv(contender, 'seed')
  try {
    // One document holds the whole history (no moves while seeding): what the room's peers load.
    const spec: JoinSpec = { room: freshRoom('seed'), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS, compactAfter: 0 }
    const { state, ms } = await seeder.call('seed', { spec, overwrites }, 300_000)
    ctx.log(`${contender}: seeded ${overwrites} overwrites in ${(ms / 1000).toFixed(1)} s: ${state.length} bytes of state`)
    return state
  } finally {
    await dismiss([seeder])
  }
}

const sumTraffic = (traffics: Traffic[]): JoinRow['roomTraffic'] => ({
  sendErrors: traffics.reduce((n, t) => n + t.sendErrors, 0),
  largestSend: Math.max(0, ...traffics.map((t) => t.largestSend)),
  lastSendError: traffics.map((t) => t.lastSendError).find((e) => e !== null) ?? null,
  channelsClosed: traffics.reduce((n, t) => n + t.channelsClosed, 0)
})

const measureRoom = async (ctx: Context, contender: KvContenderName, roomPeers: number, overwrites: number, state: Uint8Array, reps: number, joinTimeout: number): Promise<JoinRow> => {
  const spec: JoinSpec = { room: freshRoom('join'), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS, instrument: true }
  const { peers, retries } = await spawnMesh(contender, roomPeers, { ...spec, state })
  const joiners: KvChild[] = []
  try {
    const attempts: Array<JoinAttempt | Failure> = []
    for (let rep = 0; rep < reps; rep++) {
      const joiner = await spawnKv(contender, `joiner${rep}`)
      joiners.push(joiner)
      const expectGen = overwrites / KEYS.length
      const attempt = await joiner.call('joinAndVerify', { spec, expectGen, timeout: joinTimeout }, joinTimeout + 30_000).catch(failure)
      attempts.push(attempt)
      await dismiss([joiner])
      ctx.log(`${contender}, ${roomPeers} peers, ${overwrites} overwrites: ${'error' in attempt ? attempt.error : attempt.completeMs === null ? `no sync within ${joinTimeout / 1000} s` : `${attempt.completeMs.toFixed(0)} ms, ${attempt.traffic.bytesIn} bytes in`}`)
      // A join that timed out will time out again: the rest of the repetitions would only cost time.
      if ('error' in attempt || attempt.completeMs === null) break
    }
    // A room peer that died after the joins does not undo them: the attempts stand, the death is noted.
    let roomError: string | null = null
    const traffics = await Promise.all(peers.map((peer) => peer.call('traffic', undefined))).catch((err: unknown) => {
      roomError = failure(err).error
      return null
    })
    return { contender, roomPeers, overwrites, stateBytes: state.length, attempts, roomTraffic: traffics === null ? null : sumTraffic(traffics), roomError, setupRetries: retries }
  } finally {
    await dismiss([...peers, ...joiners])
  }
}

export const runJoin = async (ctx: Context): Promise<JoinResult> => {
  const sizes = ctx.quick ? [2] : [2, 5, 10]
  const histories = [0, 50_000]
  const reps = ctx.quick ? 1 : 3
  const joinTimeout = ctx.quick ? 8_000 : 20_000
  const rows: JoinResult['rows'] = []
  for (const overwrites of histories) {
    for (const contender of KV_CONTENDERS) {
      let state: Uint8Array
      try {
        state = await seed(ctx, contender, overwrites)
      } catch (err) {
        for (const roomPeers of sizes) rows.push({ contender, roomPeers, overwrites, ...failure(err) })
        continue
      }
      for (const roomPeers of sizes) {
        rows.push(await measureRoom(ctx, contender, roomPeers, overwrites, state, reps, joinTimeout).catch((err: unknown) => ({ contender, roomPeers, overwrites, ...failure(err) })))
      }
    }
  }
  return { timeoutMs: joinTimeout, rows }
}

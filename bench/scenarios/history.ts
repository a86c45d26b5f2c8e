/**
 * Scenario 5, history growth: one peer alone in a room overwrites the full store's 100 keys
 * again and again, through each contender's API. At each checkpoint: the encoded Yjs state
 * (Y.encodeStateAsUpdate, what a peer stores, and its V2 encoding), and what a joiner with an
 * empty document receives: y-webrtc's answer to its sync step 1 (the whole V1 state in one
 * message), and the library's (its V2 sync step 2) plus its 16 KiB framing. All against the
 * live data (keys + JSON values).
 */

import { dismiss, freshRoom, spawnKv } from '../lib/peers.js'
import type { KvContenderName } from '../peers/contenders.js'
import { KV_CONTENDERS } from '../peers/contenders.js'
import { failure, MAX_CONNS, type Context, type Failure } from './context.js'

export interface HistoryPoint {
  overwrites: number
  liveBytes: number
  stateBytes: number
  stateBytesV2: number
  /** The sync message a joiner receives (V1 for y-webrtc, as one data-channel message; V2 for the library). */
  syncMessageBytes: number
  /** What crosses the data channel for it: the same, plus the library's framing headers. */
  syncWireBytes: number
  /** Cumulative milliseconds spent writing, up to this checkpoint. */
  writeMs: number
}

export interface HistoryRow {
  contender: KvContenderName
  points: HistoryPoint[]
}

export interface HistoryResult {
  /** The largest message a WebRTC data channel carries (Chromium and libwebrtc). */
  dataChannelLimit: number
  rows: Array<HistoryRow | (Failure & { contender: KvContenderName })>
}

export const DATA_CHANNEL_LIMIT = 256 * 1024

export const runHistory = async (ctx: Context): Promise<HistoryResult> => {
  const checkpoints = ctx.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]
  const rows: HistoryResult['rows'] = []
  for (const contender of KV_CONTENDERS) {
    const peer = await spawnKv(contender, 'history')
    peer.on('progress', (overwrites: number) => ctx.log(`${contender}: ${overwrites} overwrites`))
    try {
      const spec = { room: freshRoom('history'), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS }
      const { rows: points } = await peer.call('history', { spec, checkpoints }, 900_000)
      rows.push({ contender, points })
    } catch (err) {
      rows.push({ contender, ...failure(err) })
    } finally {
      await dismiss([peer])
    }
  }
  return { dataChannelLimit: DATA_CHANNEL_LIMIT, rows }
}

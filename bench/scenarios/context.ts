/** What every scenario gets from the orchestrator. */

import type { KvContenderName } from '../peers/contenders.js'
import type { RunningServer } from '../lib/servers.js'

export interface Context {
  quick: boolean
  /** The signaling server each key-value contender uses: its own, as a user of it would deploy. */
  signalingFor: (contender: KvContenderName) => string
  servers: Record<'y-webrtc' | 'ours', RunningServer>
  log: (message: string) => void
}

/** y-webrtc's default is 20 plus a random 0-14; fixed so both contenders form the same mesh. */
export const MAX_CONNS = 32

/** How the contenders are named in results. */
export const LABELS = {
  'simple-peer': 'raw simple-peer data channel',
  'y-webrtc': 'stock y-webrtc + Y.Map',
  'session-store': 'y-session-store'
} as const

export type ContenderName = keyof typeof LABELS

/** A scenario step that failed is recorded with its reason; the run goes on. */
export interface Failure {
  error: string
}

export const failure = (err: unknown): Failure => ({ error: err instanceof Error ? err.message : String(err) })

/**
 * The order in which contenders take turn `turn`: forwards, then backwards, and so on. Under a
 * load that rises or falls during a scenario, a fixed order would always hand the last turn
 * the worst of it; alternating cancels a steady drift between neighbours.
 */
export const turnOrder = <T>(contenders: readonly T[], turn: number): T[] =>
  turn % 2 === 0 ? [...contenders] : [...contenders].reverse()

/**
 * The shape of one bench run's results, shared by the code that judges them (targets.ts) and
 * the code that writes them (report.ts), so neither imports the other.
 */

import type { RunInfo } from './machine.js'
import type { Failure } from '../scenarios/context.js'
import type { LatencyResult } from '../scenarios/latency.js'
import type { ThroughputResult } from '../scenarios/throughput.js'
import type { JoinResult } from '../scenarios/join.js'
import type { MeshResult } from '../scenarios/mesh.js'
import type { HistoryResult } from '../scenarios/history.js'
import type { IdleResult, SignalingResult } from '../scenarios/signaling.js'
import type { BrowserResult } from '../scenarios/browser.js'
import type { RoomsResult } from '../scenarios/rooms.js'
import type { ServerName } from './servers.js'

export interface TargetRow {
  target: string
  ours: string
  anchor: string
  ratio: string
  verdict: 'pass' | 'short' | 'n/a'
  note: string
}

/**
 * The idle memory of the committed full run that this one replaces, quoted beside the new numbers.
 * Older runs lack the newer fields (they read memory 2 s after the burst, the servers under tsx).
 */
export interface PreviousIdle {
  date: string
  commit: string | null
  servers: Array<{ server: ServerName, idle: Partial<IdleResult> & Pick<IdleResult, 'bytesPerConnection' | 'heapBytesPerConnection'> }>
}

export interface Results {
  run: RunInfo
  previousIdle?: PreviousIdle | null
  targets?: TargetRow[]
  /** What our signaling server, serving the library's peers (default options), refused during the peer scenarios. */
  peerSignaling?: { ourRejections: Record<string, number> | null }
  scenarios: {
    latency?: LatencyResult | Failure
    throughput?: ThroughputResult | Failure
    join?: JoinResult | Failure
    mesh?: MeshResult | Failure
    history?: HistoryResult | Failure
    signaling?: SignalingResult | Failure
    browser?: BrowserResult | Failure
    rooms?: RoomsResult | Failure
  }
}

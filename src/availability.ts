/**
 * When the store becomes available: the product page's "only available after join", made precise
 * as a pure state machine, so that every race is a unit test and no socket is needed to test it.
 *
 * - Alone: the signaling server relays every publish with the room's subscriber count; a count
 *   of 1 (on every connected server) means this peer is the only one: available at once.
 * - Synced: the peers sent their whole states (sync step 2). Not the first answer: a peer that
 *   answers first with an empty state must not hide what the others hold. Available once every
 *   peer heard from in signaling and every open connection has sent its state, or SYNC_WINDOW
 *   after the first state arrived, whichever comes first.
 * - Peers left: the count was above 1, so this peer waited, and then fell to 1 before any state
 *   arrived (the session probes the count while it waits).
 * - Unanswered: the count was above 1 but no other peer sent anything within ANSWER_TIMEOUT (a
 *   subscriber that never answers, such as a stalled tab or a signaling-only client): 'alone'.
 * - Timeout: nothing decided within joinTimeout, but a signaling server was reached (or a peer
 *   connected): available with what it has.
 * - Failed: the timeout came and no signaling server was ever reached (nor any peer).
 * Once decided, nothing changes the outcome. `nextAvailability` is the rule, pure;
 * `AvailabilityTracker` runs it over a live link, with the timers.
 */

import type { Link, SignalingSource } from './transport/link.js'
import type { Replication } from './transport/replication.js'

export type SyncState = 'pending' | 'alone' | 'synced' | 'peers-left' | 'timeout'

export interface SourceState {
  readonly connected: boolean
  /** The last subscriber count it relayed; undefined until it relayed one. */
  readonly clients?: number
}

/** How long after the first state arrives to wait for the others' (ms). */
export const SYNC_WINDOW = 1000
/** How long other subscribers may stay silent before they count as absent (ms). */
export const ANSWER_TIMEOUT = 3000

export interface AvailabilityState {
  readonly sync: SyncState
  /** No signaling server was reached within joinTimeout: the join failed. */
  readonly failed: boolean
  /** Whether to probe the room's count: the peers this peer waits for may leave first. */
  readonly probing: boolean
  readonly waitedForPeers: boolean
  readonly everConnected: boolean
  readonly sources: Readonly<Record<string, SourceState>>
  /** Peers heard from in signaling (verified), and peers whose state arrived. */
  readonly heard: ReadonlySet<string>
  readonly synced: ReadonlySet<string>
  /** Remote ids of the open connections. */
  readonly open: ReadonlySet<string>
  readonly windowClosed: boolean
}

export type AvailabilityInput =
  | { readonly type: 'signaling', readonly sources: ReadonlyArray<{ readonly id: string, readonly connected: boolean }> }
  | { readonly type: 'count', readonly source: string, readonly clients: number }
  | { readonly type: 'connections', readonly open: readonly string[] }
  | { readonly type: 'heard', readonly peerId: string }
  | { readonly type: 'synced', readonly peerId: string }
  | { readonly type: 'window-closed' }
  | { readonly type: 'answer-timeout' }
  | { readonly type: 'timeout' }

export const initialAvailability = (sources: ReadonlyArray<{ readonly id: string, readonly connected: boolean }> = []): AvailabilityState =>
  nextAvailability({ sync: 'pending', failed: false, probing: false, waitedForPeers: false, everConnected: false, sources: {}, heard: new Set(), synced: new Set(), open: new Set(), windowClosed: false }, { type: 'signaling', sources })

/** Whether the outcome is decided (available, or failed). */
export const isDecided = (state: AvailabilityState): boolean => state.sync !== 'pending' || state.failed

const decide = (state: AvailabilityState, sync: Exclude<SyncState, 'pending'>): AvailabilityState =>
  ({ ...state, sync, probing: false })

export const nextAvailability = (state: AvailabilityState, input: AvailabilityInput): AvailabilityState => {
  if (isDecided(state)) return state
  switch (input.type) {
    case 'signaling': {
      const sources: Record<string, SourceState> = {}
      for (const { id, connected } of input.sources) {
        const clients = state.sources[id]?.clients
        sources[id] = clients === undefined ? { connected } : { connected, clients }
      }
      return { ...state, sources, everConnected: state.everConnected || input.sources.some((s) => s.connected) }
    }
    case 'count': {
      const sources = { ...state.sources, [input.source]: { connected: true, clients: input.clients } }
      const next = { ...state, sources, everConnected: true }
      if (input.clients > 1) return { ...next, waitedForPeers: true, probing: true }
      const all = Object.values(sources)
      // A connected server that has not relayed a count yet may still see other peers.
      const aloneEverywhere = all.length === 1 || all.every((s) => !s.connected || (s.clients !== undefined && s.clients <= 1))
      return aloneEverywhere ? decide(next, next.waitedForPeers ? 'peers-left' : 'alone') : next
    }
    case 'connections':
      return settle({ ...state, open: new Set(input.open) })
    case 'heard':
      return state.heard.has(input.peerId) ? state : settle({ ...state, heard: new Set([...state.heard, input.peerId]) })
    case 'synced':
      return settle({ ...state, synced: new Set([...state.synced, input.peerId]) })
    case 'window-closed':
      return settle({ ...state, windowClosed: true })
    case 'answer-timeout':
      return state.heard.size === 0 && state.open.size === 0 && state.synced.size === 0 ? decide(state, 'alone') : state
    case 'timeout':
      if (state.synced.size > 0) return decide(state, 'synced')
      return state.everConnected || state.open.size > 0 ? decide(state, 'timeout') : { ...state, failed: true, probing: false }
  }
}

/** 'synced' once some state arrived and the others' too (or the window closed). */
const settle = (state: AvailabilityState): AvailabilityState => {
  if (state.synced.size === 0) return state
  const all = (ids: ReadonlySet<string>): boolean => Array.from(ids).every((id) => state.synced.has(id))
  return state.windowClosed || (all(state.heard) && all(state.open)) ? decide(state, 'synced') : state
}

/** While waiting for peers, how often to ask the signaling servers how many are still there. */
export const PROBE_INTERVAL = 1000

/** What the tracker needs of the link and the replication: events in, a probe out. */
export interface AvailabilitySources {
  link: Pick<Link, 'sources' | 'connections' | 'probe' | 'on' | 'off'>
  replication: Pick<Replication, 'on' | 'off'>
}

/**
 * Drives the rule over a live link: feeds it the link's signaling status, counts and connections
 * and the replication's first full state, runs the join timeout and the probe, and calls
 * `onDecided` once, with the final state.
 */
export class AvailabilityTracker {
  #state: AvailabilityState
  readonly #sources: AvailabilitySources
  readonly #onDecided: (state: AvailabilityState) => void
  readonly #timers: Array<ReturnType<typeof setTimeout>> = []
  #probe: ReturnType<typeof setInterval> | undefined
  #stopped = false

  constructor (sources: AvailabilitySources, { joinTimeout, onDecided }: { joinTimeout: number, onDecided: (state: AvailabilityState) => void }) {
    this.#sources = sources
    this.#onDecided = onDecided
    this.#state = initialAvailability(sources.link.sources)
    sources.link.on('signaling', this.#onSignaling)
    sources.link.on('count', this.#onCount)
    sources.link.on('open', this.#onConnections)
    sources.link.on('close', this.#onConnections)
    sources.link.on('heard', this.#onHeard)
    sources.replication.on('synced', this.#onSynced)
    this.#timers.push(setTimeout(() => this.#input({ type: 'timeout' }), joinTimeout))
  }

  get state (): AvailabilityState {
    return this.#state
  }

  stop (): void {
    if (this.#stopped) return
    this.#stopped = true
    for (const timer of this.#timers) clearTimeout(timer)
    clearInterval(this.#probe)
    const { link, replication } = this.#sources
    link.off('signaling', this.#onSignaling)
    link.off('count', this.#onCount)
    link.off('open', this.#onConnections)
    link.off('close', this.#onConnections)
    link.off('heard', this.#onHeard)
    replication.off('synced', this.#onSynced)
  }

  #onSignaling = ({ sources }: { sources: readonly SignalingSource[] }): void => this.#input({ type: 'signaling', sources })
  #onCount = ({ source, clients }: { source: string, clients: number }): void => this.#input({ type: 'count', source, clients })
  #onConnections = (): void => this.#input({ type: 'connections', open: this.#sources.link.connections.map((c) => c.remoteId) })
  #onSynced = ({ connection }: { connection: { remoteId: string } }): void => this.#input({ type: 'synced', peerId: connection.remoteId })
  #onHeard = ({ peerId }: { peerId: string }): void => this.#input({ type: 'heard', peerId })

  #input (input: AvailabilityInput): void {
    if (this.#stopped) return
    const before = this.#state
    const after = nextAvailability(before, input)
    if (after === before) return
    this.#state = after
    if (after.waitedForPeers && !before.waitedForPeers) this.#timers.push(setTimeout(() => this.#input({ type: 'answer-timeout' }), ANSWER_TIMEOUT))
    if (after.synced.size > 0 && before.synced.size === 0) this.#timers.push(setTimeout(() => this.#input({ type: 'window-closed' }), SYNC_WINDOW))
    if (after.probing && this.#probe === undefined) this.#probe = setInterval(() => this.#sources.link.probe(), PROBE_INTERVAL)
    if (!after.probing) clearInterval(this.#probe)
    if (isDecided(after)) {
      this.stop()
      this.#onDecided(after)
    }
  }
}

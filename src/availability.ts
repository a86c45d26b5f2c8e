/**
 * When the store becomes available: the product page's "only available after join", made precise
 * as a pure state machine, so that every race is a unit test and no socket is needed to test it.
 *
 * - Alone: the signaling server relays every publish with the room's subscriber count; a count
 *   of 1 (on every connected server) means this peer is the only one: available at once.
 * - Synced: a peer sent its whole state (sync step 2): available.
 * - Peers left: the count was above 1, so this peer waited, and then fell to 1 before any state
 *   arrived (the session probes the count while it waits).
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

export interface AvailabilityState {
  readonly sync: SyncState
  /** No signaling server was reached within joinTimeout: the join failed. */
  readonly failed: boolean
  /** Whether to probe the room's count: the peers this peer waits for may leave first. */
  readonly probing: boolean
  readonly waitedForPeers: boolean
  readonly everConnected: boolean
  readonly openConnections: number
  readonly sources: Readonly<Record<string, SourceState>>
}

export type AvailabilityInput =
  | { readonly type: 'signaling', readonly sources: ReadonlyArray<{ readonly id: string, readonly connected: boolean }> }
  | { readonly type: 'count', readonly source: string, readonly clients: number }
  | { readonly type: 'connections', readonly open: number }
  | { readonly type: 'synced' }
  | { readonly type: 'timeout' }

export const initialAvailability = (sources: ReadonlyArray<{ readonly id: string, readonly connected: boolean }> = []): AvailabilityState =>
  nextAvailability({ sync: 'pending', failed: false, probing: false, waitedForPeers: false, everConnected: false, openConnections: 0, sources: {} }, { type: 'signaling', sources })

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
      return { ...state, openConnections: input.open }
    case 'synced':
      return decide(state, 'synced')
    case 'timeout':
      return state.everConnected || state.openConnections > 0 ? decide(state, 'timeout') : { ...state, failed: true, probing: false }
  }
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
  readonly #timer: ReturnType<typeof setTimeout>
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
    sources.replication.on('synced', this.#onSynced)
    this.#timer = setTimeout(() => this.#input({ type: 'timeout' }), joinTimeout)
  }

  get state (): AvailabilityState {
    return this.#state
  }

  stop (): void {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#timer)
    clearInterval(this.#probe)
    const { link, replication } = this.#sources
    link.off('signaling', this.#onSignaling)
    link.off('count', this.#onCount)
    link.off('open', this.#onConnections)
    link.off('close', this.#onConnections)
    replication.off('synced', this.#onSynced)
  }

  #onSignaling = ({ sources }: { sources: readonly SignalingSource[] }): void => this.#input({ type: 'signaling', sources })
  #onCount = ({ source, clients }: { source: string, clients: number }): void => this.#input({ type: 'count', source, clients })
  #onConnections = (): void => this.#input({ type: 'connections', open: this.#sources.link.connections.length })
  #onSynced = (): void => this.#input({ type: 'synced' })

  #input (input: AvailabilityInput): void {
    if (this.#stopped) return
    const before = this.#state
    const after = nextAvailability(before, input)
    if (after === before) return
    this.#state = after
    if (after.probing && this.#probe === undefined) this.#probe = setInterval(() => this.#sources.link.probe(), PROBE_INTERVAL)
    if (!after.probing) clearInterval(this.#probe)
    if (isDecided(after)) {
      this.stop()
      this.#onDecided(after)
    }
  }
}

/**
 * Keeps a room in one piece when `maxConns` makes its mesh partial.
 *
 * A peer admits new connections only while it has fewer than `maxConns` (y-webrtc-adapter.ts),
 * and a full peer stays silent. Peers that join one at a time with `maxConns: 4` form a closed
 * clique of five, and the sixth is alone: no relay rule can reach it. Here each peer knows its
 * component (the peers it can reach, from the neighbour lists that cross the mesh: relay.ts) and
 * the room's size (the signaling server's count). When the room is larger than the component,
 * the component's peer with the smallest id, its bridge:
 * - announces itself every few seconds, so that the other components' bridges hear of it;
 * - answers a peer outside its component that it heard from, if that peer is still outside after
 *   a grace period (the ordinary way, a peer with room connecting, had its chance): it connects
 *   to it (`Link.connect`: past `maxConns`, by one connection per merge of two components; the
 *   link keeps the initiator rule).
 * One merge at a time: a joiner hears every member of the room at once, and their grace periods
 * end together, long before the first connection's handshake is through and its neighbour lists
 * have told this peer that the others are now inside. So after a bridge connection the bridge
 * makes no other until a connection opened and a grace period passed (the lists arrive in
 * between), or BRIDGE_CONNECT_TIMEOUT passed; the outsiders it heard meanwhile are judged again
 * then, with the component as it has become.
 * The rule is `answerOutsider` (pure); the `Bridge` class drives it from a Link's events.
 */

import type { Link } from './link.js'
import type { Component } from './relay.js'

/** A peer outside the component gets this long to be connected the ordinary way. */
export const DEFAULT_BRIDGE_GRACE = 1500
/** A partitioned component's bridge announces itself this often (jittered by ±25 %). */
export const DEFAULT_BRIDGE_INTERVAL = 3000
/** A bridge connection that has not opened by then no longer holds the next one back. */
export const BRIDGE_CONNECT_TIMEOUT = 10_000
/** Outsiders awaiting their grace period at once, at most. */
const MAX_PENDING = 64

/** Whether `me` is its component's bridge: the smallest signaling id in it. */
export const isBridge = (me: string, component: Component): boolean => {
  for (const id of component.ids) if (id < me) return false
  return true
}

/** Whether the room holds peers this peer cannot reach. */
export const isPartitioned = (roomSize: number, component: Component): boolean => roomSize > component.size

/** Whether `me` connects to `from`, a peer it heard from and is still not connected to after the grace period. */
export const answerOutsider = ({ me, from, component, roomSize, connected }: {
  me: string
  from: string
  component: Component
  roomSize: number
  connected: boolean
}): boolean => {
  if (connected || from === me || component.ids.has(from)) return false
  return isPartitioned(roomSize, component) && isBridge(me, component)
}

export interface BridgeOptions {
  grace?: number
  interval?: number
}

export class Bridge {
  readonly #link: Link
  readonly #component: () => Component
  readonly #grace: number
  readonly #counts = new Map<string, number>()
  readonly #pending = new Map<string, ReturnType<typeof setTimeout>>()
  #timer: ReturnType<typeof setTimeout> | null = null
  /** While a merge is under way (a bridge connection made, or a connection just opened): its end. */
  #merging: ReturnType<typeof setTimeout> | null = null
  /** Outsiders judged during a merge: judged again once it is over. */
  readonly #deferred = new Set<string>()
  #lastAnnounce = 0
  #destroyed = false

  constructor (link: Link, component: () => Component, { grace = DEFAULT_BRIDGE_GRACE, interval = DEFAULT_BRIDGE_INTERVAL }: BridgeOptions = {}) {
    this.#link = link
    this.#component = component
    this.#grace = grace
    link.on('count', this.#onCount)
    link.on('heard', this.#onHeard)
    link.on('open', this.#onOpen)
    const tick = (): void => {
      if (this.#destroyed) return
      this.#seek()
      this.#timer = setTimeout(tick, interval * (0.75 + Math.random() / 2))
      unref(this.#timer)
    }
    this.#timer = setTimeout(tick, interval * (0.75 + Math.random() / 2))
    unref(this.#timer)
  }

  /** The room's size: the largest count a signaling server reported. */
  get roomSize (): number {
    let size = 1
    for (const clients of this.#counts.values()) size = Math.max(size, clients)
    return size
  }

  destroy (): void {
    this.#destroyed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    if (this.#merging !== null) clearTimeout(this.#merging)
    this.#deferred.clear()
    for (const timer of this.#pending.values()) clearTimeout(timer)
    this.#pending.clear()
    this.#link.off('count', this.#onCount)
    this.#link.off('heard', this.#onHeard)
    this.#link.off('open', this.#onOpen)
  }

  #onCount = ({ source, clients }: { source: string, clients: number }): void => {
    this.#counts.set(source, clients)
  }

  #onHeard = ({ peerId: from }: { peerId: string }): void => {
    if (this.#connected(from)) return
    // The one that will offer (the smaller id) waits longer: the other has invited it by then.
    const me = this.#link.localId
    this.#wait(from, me !== undefined && me < from ? 2 * this.#grace : this.#grace)
  }

  /** Any connection that opens may merge components: its lists arrive within the grace period. */
  #onOpen = (): void => {
    if (this.#merging !== null) this.#merge(this.#grace)
  }

  /** Judges `from` after `delay` ms. */
  #wait (from: string, delay: number): void {
    if (this.#destroyed || this.#pending.has(from) || this.#pending.size >= MAX_PENDING) return
    const timer = setTimeout(() => {
      this.#pending.delete(from)
      this.#answer(from)
    }, delay)
    unref(timer)
    this.#pending.set(from, timer)
  }

  #answer (from: string): void {
    const me = this.#link.localId
    if (this.#destroyed || me === undefined) return
    if (!answerOutsider({ me, from, component: this.#component(), roomSize: this.roomSize, connected: this.#connected(from) })) return
    if (this.#merging !== null) {
      if (this.#deferred.size < MAX_PENDING) this.#deferred.add(from)
      return
    }
    this.#merge(BRIDGE_CONNECT_TIMEOUT)
    this.#link.connect(from)
  }

  /** A merge is under way for `ms` more; then the outsiders heard meanwhile are judged again. */
  #merge (ms: number): void {
    if (this.#merging !== null) clearTimeout(this.#merging)
    this.#merging = setTimeout(this.#merged, ms)
    unref(this.#merging)
  }

  #merged = (): void => {
    this.#merging = null
    const deferred = Array.from(this.#deferred)
    this.#deferred.clear()
    for (const from of deferred) this.#answer(from)
  }

  /** A partitioned component's bridge makes itself heard. */
  #seek (): void {
    const me = this.#link.localId
    if (me === undefined) return
    const component = this.#component()
    if (isPartitioned(this.roomSize, component) && isBridge(me, component)) this.#announce()
  }

  #announce (): void {
    const now = Date.now()
    if (now - this.#lastAnnounce < this.#grace) return
    this.#lastAnnounce = now
    this.#link.announce()
  }

  #connected (remoteId: string): boolean {
    return this.#link.connections.some((connection) => connection.remoteId === remoteId)
  }
}

const unref = (timer: unknown): void => {
  (timer as { unref?: () => void } | null)?.unref?.()
}

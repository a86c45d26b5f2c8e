/**
 * The flush rule of the data plane: the first batch a connection is to be sent in an event-loop
 * turn goes out at once; what follows in the same turn is collected, and sent at the end of the
 * turn as one data-channel message per connection.
 *
 * In Node a data-channel send is a synchronous call into libwebrtc's threads, about 90 µs each;
 * a message per Yjs update to every connection made a write cost several sends. Collected, a
 * burst of writes in one turn costs two sends per connection, whatever its size.
 *
 * The rule, and what it costs:
 * - A lone write is sent inside the call that made it: no timer and no hop of the event loop on
 *   a round trip. (An answer written in an observer of a remote update leaves in the same task,
 *   once Yjs has finished that update's transaction: Yjs runs a transaction begun in an observer
 *   after the one whose observer it is.)
 * - The rest of the turn goes out once the current task and its microtasks are done (Node's
 *   setImmediate, a MessageChannel task in browsers), not on a timer. Microtasks would not do:
 *   an awaited write (`await store.set(...)`) yields to the microtask queue after every call,
 *   and a loop of them would flush once per write.
 * - A connection whose collected items reach `maxUnits` is flushed at once (before the item
 *   that would pass it), so a long synchronous burst goes out in bounded messages.
 * - Messages per connection are paced by a token bucket (`pace`), below what admission control
 *   lets a connection send (admission.ts): an app that writes once per turn, thousands of turns
 *   a second, has its writes wait past the burst for the next token (a timer), and go together.
 *   Below the rate nothing waits.
 * - Order is kept per connection: items go out in the order they were pushed; `flush()` sends
 *   everything at once (before leaving, so nothing written is lost).
 */

import { createTokenBucket, type TokenBucket } from './budgets.js'

/** Schedules `task` to run once. */
export type Schedule = (task: () => void) => void

let channelSchedule: Schedule | null = null

/**
 * Runs `task` after the current task and its microtasks: setImmediate where the runtime has it
 * (Node), a MessageChannel message in browsers (timers there are clamped and throttled), a 0 ms
 * timer anywhere else.
 */
export const endOfTurn: Schedule = (task) => {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown, MessageChannel?: typeof MessageChannel }
  if (typeof g.setImmediate === 'function') {
    g.setImmediate(task)
    return
  }
  if (typeof g.MessageChannel === 'function') {
    if (channelSchedule === null) {
      const channel = new g.MessageChannel()
      const tasks: Array<() => void> = []
      channel.port1.onmessage = () => { tasks.shift()?.() }
      channelSchedule = (next) => {
        tasks.push(next)
        channel.port2.postMessage(null)
      }
    }
    channelSchedule(task)
    return
  }
  setTimeout(task, 0)
}

/** Messages per connection the data plane sends at most (sustained, burst): below admission's MESSAGE_RATE. */
export const SEND_RATE = { rate: 1000, burst: 5000 }

export interface CoalescerOptions<K, T> {
  /** Sends what was collected for `key`, in the order it was pushed (never empty). */
  send: (key: K, items: T[]) => void
  /** The size of an item, in the units of `maxUnits`. Default 1. */
  units?: (item: T) => number
  /** A key is flushed before it would hold more than this many units. Default Infinity. */
  maxUnits?: number
  /** When the collected items go out. Default `endOfTurn`. */
  schedule?: Schedule
  /** Messages per key (sustained, burst). Default SEND_RATE. */
  pace?: { rate: number, burst: number }
  now?: () => number
}

interface Queue<T> {
  items: T[]
  units: number
  bucket: TokenBucket
  /** A timer waits for the bucket's next token. */
  waiting: ReturnType<typeof setTimeout> | null
}

export class Coalescer<K, T> {
  readonly #send: (key: K, items: T[]) => void
  readonly #units: (item: T) => number
  readonly #maxUnits: number
  readonly #schedule: Schedule
  readonly #pace: { rate: number, burst: number }
  readonly #now: () => number
  readonly #queues = new Map<K, Queue<T>>()
  /** Keys sent to in this turn: what they are pushed next waits for the end of the turn. */
  readonly #sentThisTurn = new Set<K>()
  #scheduled = false

  constructor ({ send, units = () => 1, maxUnits = Infinity, schedule = endOfTurn, pace = SEND_RATE, now = Date.now }: CoalescerOptions<K, T>) {
    this.#send = send
    this.#units = units
    this.#maxUnits = maxUnits
    this.#schedule = schedule
    this.#pace = pace
    this.#now = now
  }

  /** Sends `item` to `key` now if it is the first this turn (and the pace allows), or collects it. */
  push (key: K, item: T): void {
    const queue = this.#queueOf(key)
    if (!this.#sentThisTurn.has(key) && queue.items.length === 0 && queue.waiting === null && queue.bucket.take()) {
      this.#sentThisTurn.add(key)
      // The end of the turn is scheduled after the send: a lone write's message leaves first.
      try {
        this.#send(key, [item])
      } finally {
        this.#endTurnLater()
      }
      return
    }
    this.#endTurnLater()
    const units = this.#units(item)
    if (queue.units > 0 && queue.units + units > this.#maxUnits) this.#sendQueue(key, queue)
    queue.items.push(item)
    queue.units += units
  }

  /** Units collected for `key` and not sent yet. */
  pending (key: K): number {
    return this.#queues.get(key)?.units ?? 0
  }

  /** Sends everything collected, now, whatever the pace. */
  flush (): void {
    for (const [key, queue] of this.#queues) this.#sendQueue(key, queue)
  }

  /** Forgets `key` and what was collected for it (its connection closed). */
  drop (key: K): void {
    const queue = this.#queues.get(key)
    if (queue?.waiting != null) clearTimeout(queue.waiting)
    this.#queues.delete(key)
    this.#sentThisTurn.delete(key)
  }

  #queueOf (key: K): Queue<T> {
    let queue = this.#queues.get(key)
    if (queue === undefined) this.#queues.set(key, queue = { items: [], units: 0, bucket: createTokenBucket(this.#pace, this.#now), waiting: null })
    return queue
  }

  #endTurnLater (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    this.#schedule(this.#onTurnEnd)
  }

  #onTurnEnd = (): void => {
    this.#scheduled = false
    this.#sentThisTurn.clear()
    for (const [key, queue] of this.#queues) {
      if (queue.items.length === 0 || queue.waiting !== null) continue
      if (queue.bucket.take()) this.#sendQueue(key, queue)
      else this.#waitForToken(key, queue)
    }
  }

  #waitForToken (key: K, queue: Queue<T>): void {
    queue.waiting = setTimeout(() => {
      queue.waiting = null
      if (this.#queues.get(key) !== queue || queue.items.length === 0) return
      if (queue.bucket.take()) this.#sendQueue(key, queue)
      else this.#waitForToken(key, queue)
    }, Math.ceil(1000 / this.#pace.rate))
  }

  #sendQueue (key: K, queue: Queue<T>): void {
    if (queue.waiting !== null) {
      clearTimeout(queue.waiting)
      queue.waiting = null
    }
    if (queue.items.length === 0) return
    const items = queue.items
    queue.items = []
    queue.units = 0
    this.#send(key, items)
  }
}

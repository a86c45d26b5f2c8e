/**
 * Who gets a pending-connection slot when they are all taken: a fair share per sender.
 *
 * A pending connection is one this peer sets up for a signaling payload (an announce or an offer)
 * and that has not opened yet. Their number is capped (y-webrtc-adapter.ts MAX_PENDING), so that
 * phantom peers cannot make this peer hold unbounded state; but an attacker who signs announces
 * from fresh key pairs fills the cap by itself, and then no live peer gets a slot (issue 17).
 *
 * Peer ids cost nothing to make; client addresses do. The signaling server tags each publish it
 * relays with a handle of the sender's address (signaling/PROTOCOL.md, "Sender handles"). When the
 * slots are full, a payload from a sender that holds at least two fewer slots than the sender
 * holding the most takes the oldest of that sender's slots (that connection is given up). So under
 * contention each sender is pushed towards an equal share, and one address, however many ids it
 * invents, cannot keep the peers of any other address out; while there is no contention a sender
 * may use every slot, as honest peers behind one address (a NAT, or loopback in tests) need. The
 * margin of two keeps two senders at an equal share from taking slots from each other in turn.
 *
 * An equal share still lets phantoms from as many addresses as there are slots hold one each. So
 * a sender also has a standing: it is *demoted* while a connection of its timed out and none of
 * its connections opened since (a phantom's never do), and for DEMOTION_WINDOW after it asked for
 * another slot while holding one and was refused (a flood asks all the time; a peer with a slot
 * is connecting, it does not ask again). A sender in good standing takes the slots of demoted
 * senders first, whatever their share; a demoted sender takes only from demoted ones.
 *
 * Without handles (a stock y-webrtc server) every payload has the same sender, `undefined`, and
 * nothing is ever taken: the slots go first come, first served, as before.
 *
 * Pure functions over data, and a bounded table of standings with the clock passed in.
 */

/** How long a sender refused while it held a slot stays demoted after its last such refusal (ms). */
export const DEMOTION_WINDOW = 10_000
/** Senders whose standing is remembered; the least recently touched are forgotten (good standing). */
export const MAX_SENDERS = 1024

/** A pending connection, as the fair share sees it. */
export interface PendingSlot {
  peerId: string
  /** When its setup started (ms). */
  since: number
  /** The sender handle of the payload that started it; undefined without one. */
  sender: string | undefined
  /** False for a connection this peer asked for itself (the bridge's): never taken. */
  takeable: boolean
}

/** The longest sender handle accepted from a signaling server. */
const MAX_SENDER_LENGTH = 64
const HANDLE = /^[A-Za-z0-9_-]+$/

/** The sender handle a signaling server put on a relayed publish, or undefined when it put none (or not one). */
export const senderOf = (message: Record<string, unknown>): string | undefined => {
  const { sender } = message
  return typeof sender === 'string' && sender.length > 0 && sender.length <= MAX_SENDER_LENGTH && HANDLE.test(sender) ? sender : undefined
}

/** Why a slot is taken: for a sender under its share, or from a demoted sender. */
export type TakeReason = 'share' | 'demoted'

/**
 * The pending connection to give up so that a payload from `sender` gets a slot, when every slot
 * is taken, and why; null when `sender` may not take one. A sender in good standing takes from
 * the demoted sender holding the most; else the sender holding the most gives up a slot if it
 * holds at least two more than `sender` (and is demoted too, when `sender` is). Always that
 * sender's oldest slot.
 */
export const slotToTake = (pending: Iterable<PendingSlot>, sender: string | undefined, demoted: (sender: string | undefined) => boolean = () => false): { peerId: string, reason: TakeReason } | null => {
  const slots = Array.from(pending)
  const held = new Map<string | undefined, number>()
  for (const slot of slots) held.set(slot.sender, (held.get(slot.sender) ?? 0) + 1)
  /** Of the other holders with a slot to take that are `eligible`, the one holding the most. */
  const largest = (eligible: (holder: string | undefined) => boolean): { holder: string | undefined, count: number } | null => {
    let top: { holder: string | undefined, count: number } | null = null
    for (const [holder, count] of held) {
      if (holder === sender || !eligible(holder) || !slots.some((slot) => slot.sender === holder && slot.takeable)) continue
      if (top === null || count > top.count) top = { holder, count }
    }
    return top
  }
  const standing = !demoted(sender)
  let victim = standing ? largest(demoted) : null
  let reason: TakeReason = 'demoted'
  if (victim === null) {
    victim = largest((holder) => standing || demoted(holder))
    if (victim === null || victim.count < (held.get(sender) ?? 0) + 2) return null
    reason = 'share'
  }
  let oldest: PendingSlot | null = null
  for (const slot of slots) {
    if (slot.sender === victim.holder && slot.takeable && (oldest === null || slot.since < oldest.since)) oldest = slot
  }
  return oldest === null ? null : { peerId: oldest.peerId, reason }
}

/** The standing of each sender (see the header): what the adapter tells it, and `demoted`. */
export class SenderStandings {
  readonly #records = new Map<string, { failing: boolean, greedyUntil: number }>()

  constructor (readonly maxSenders = MAX_SENDERS, readonly window = DEMOTION_WINDOW) {}

  /** A payload of `sender` was refused a slot while `sender` held `holding` of them. */
  refused (sender: string | undefined, holding: number, now: number): void {
    if (sender === undefined || holding === 0) return
    this.#touch(sender).greedyUntil = now + this.window
  }

  /** A connection of `sender` timed out without opening. */
  timedOut (sender: string | undefined): void {
    if (sender !== undefined) this.#touch(sender).failing = true
  }

  /** A connection of `sender` opened. */
  opened (sender: string | undefined): void {
    if (sender !== undefined) this.#touch(sender).failing = false
  }

  demoted (sender: string | undefined, now: number): boolean {
    if (sender === undefined) return false
    const record = this.#records.get(sender)
    return record !== undefined && (record.failing || record.greedyUntil > now)
  }

  get size (): number {
    return this.#records.size
  }

  #touch (sender: string): { failing: boolean, greedyUntil: number } {
    const record = this.#records.get(sender) ?? { failing: false, greedyUntil: 0 }
    this.#records.delete(sender)
    this.#records.set(sender, record)
    if (this.#records.size > this.maxSenders) this.#records.delete(this.#records.keys().next().value as string)
    return record
  }
}

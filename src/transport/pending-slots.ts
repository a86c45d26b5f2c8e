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
 * Without handles (a stock y-webrtc server) every payload has the same sender, `undefined`, and
 * nothing is ever taken: the slots go first come, first served, as before.
 *
 * Pure functions over data.
 */

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

/**
 * The pending connection to give up so that a payload from `sender` gets a slot, when every slot
 * is taken: the oldest takeable one of the sender holding the most, if that sender holds at least
 * two more than `sender`. Null when `sender` already holds its share.
 */
export const slotToTake = (pending: Iterable<PendingSlot>, sender: string | undefined): string | null => {
  const slots = Array.from(pending)
  const held = new Map<string | undefined, number>()
  for (const slot of slots) held.set(slot.sender, (held.get(slot.sender) ?? 0) + 1)
  let top: string | undefined
  let most = 0
  for (const [holder, count] of held) {
    if (count > most) {
      top = holder
      most = count
    }
  }
  if (most < (held.get(sender) ?? 0) + 2) return null
  let oldest: PendingSlot | null = null
  for (const slot of slots) {
    if (slot.sender === top && slot.takeable && (oldest === null || slot.since < oldest.since)) oldest = slot
  }
  return oldest?.peerId ?? null
}

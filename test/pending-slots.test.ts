/**
 * The fair share of pending-connection slots per sender (src/transport/pending-slots.ts), as pure
 * functions: which slot a payload from a sender under its share takes, and when none is taken.
 */
import { describe, expect, it } from 'vitest'
import { senderOf, slotToTake, type PendingSlot } from '../src/transport/pending-slots.js'

const slot = (peerId: string, sender: string | undefined, since: number, takeable = true): PendingSlot => ({ peerId, sender, since, takeable })

/** Six slots: `flood` of them from sender A (oldest first), the rest from B. */
const full = (flood: number): PendingSlot[] =>
  Array.from({ length: 6 }, (_, i) => i < flood ? slot(`a${i}`, 'A', 100 + i) : slot(`b${i}`, 'B', 200 + i))

describe('pending slots: a fair share per sender', () => {
  it('gives a newcomer the oldest slot of the sender holding the most', () => {
    expect(slotToTake(full(6), 'C')).toBe('a0')
    expect(slotToTake(full(6), 'B')).toBe('a0')
    expect(slotToTake([slot('a1', 'A', 300), slot('a0', 'A', 100), slot('a2', 'A', 200)], 'C')).toBe('a0')
  })

  it('pushes towards an equal share, and no further', () => {
    expect(slotToTake(full(5), 'B')).toBe('a0')
    expect(slotToTake(full(4), 'B')).toBe('a0')
    expect(slotToTake(full(3), 'B')).toBeNull()
    expect(slotToTake(full(3), 'C')).toBe('a0')
    // Six senders holding one each: everyone holds the share; nothing is taken.
    expect(slotToTake(Array.from({ length: 6 }, (_, i) => slot(`p${i}`, `S${i}`, i)), 'C')).toBeNull()
  })

  it('takes nothing from the sender asking, nor without handles', () => {
    expect(slotToTake(full(6), 'A')).toBeNull()
    const stock = Array.from({ length: 6 }, (_, i) => slot(`p${i}`, undefined, i))
    expect(slotToTake(stock, undefined)).toBeNull()
    // A payload without a handle among senders with handles is a sender of its own.
    expect(slotToTake(full(6), undefined)).toBe('a0')
  })

  it('never takes a connection this peer asked for itself', () => {
    const slots = [slot('a0', 'A', 1, false), slot('a1', 'A', 2), slot('a2', 'A', 3)]
    expect(slotToTake(slots, 'C')).toBe('a1')
    expect(slotToTake([slot('a0', 'A', 1, false), slot('a1', 'A', 2, false)], 'C')).toBeNull()
  })

  it('reads the handle a server put on a publish, and nothing else', () => {
    expect(senderOf({ type: 'publish', sender: 'q3Zr8vU1cTnW0bLe' })).toBe('q3Zr8vU1cTnW0bLe')
    for (const sender of [undefined, '', 'x'.repeat(65), 'a b', 'a/b', 7, { id: 'x' }, ['x']]) {
      expect(senderOf({ type: 'publish', sender })).toBeUndefined()
    }
  })
})

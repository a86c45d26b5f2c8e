/**
 * The fair share of pending-connection slots per sender (src/transport/pending-slots.ts), as pure
 * functions: which slot a payload from a sender under its share, or in good standing, takes, and
 * when none is taken; and how a sender's standing is kept.
 */
import { describe, expect, it } from 'vitest'
import { DEMOTION_WINDOW, SenderStandings, senderOf, slotToTake, type PendingSlot } from '../src/transport/pending-slots.js'

const slot = (peerId: string, sender: string | undefined, since: number, takeable = true): PendingSlot => ({ peerId, sender, since, takeable })

/** Six slots: `flood` of them from sender A (oldest first), the rest from B. */
const full = (flood: number): PendingSlot[] =>
  Array.from({ length: 6 }, (_, i) => i < flood ? slot(`a${i}`, 'A', 100 + i) : slot(`b${i}`, 'B', 200 + i))

describe('pending slots: a fair share per sender', () => {
  it('gives a newcomer the oldest slot of the sender holding the most', () => {
    expect(slotToTake(full(6), 'C')).toEqual({ peerId: 'a0', reason: 'share' })
    expect(slotToTake(full(6), 'B')).toEqual({ peerId: 'a0', reason: 'share' })
    expect(slotToTake([slot('a1', 'A', 300), slot('a0', 'A', 100), slot('a2', 'A', 200)], 'C')).toEqual({ peerId: 'a0', reason: 'share' })
  })

  it('pushes towards an equal share, and no further', () => {
    expect(slotToTake(full(5), 'B')).toEqual({ peerId: 'a0', reason: 'share' })
    expect(slotToTake(full(4), 'B')).toEqual({ peerId: 'a0', reason: 'share' })
    expect(slotToTake(full(3), 'B')).toBeNull()
    expect(slotToTake(full(3), 'C')).toEqual({ peerId: 'a0', reason: 'share' })
    // Six senders holding one each: everyone holds the share; nothing is taken.
    expect(slotToTake(Array.from({ length: 6 }, (_, i) => slot(`p${i}`, `S${i}`, i)), 'C')).toBeNull()
  })

  it('takes nothing from the sender asking, nor without handles', () => {
    expect(slotToTake(full(6), 'A')).toBeNull()
    const stock = Array.from({ length: 6 }, (_, i) => slot(`p${i}`, undefined, i))
    expect(slotToTake(stock, undefined)).toBeNull()
    // A payload without a handle among senders with handles is a sender of its own.
    expect(slotToTake(full(6), undefined)).toEqual({ peerId: 'a0', reason: 'share' })
  })

  it('never takes a connection this peer asked for itself', () => {
    const slots = [slot('a0', 'A', 1, false), slot('a1', 'A', 2), slot('a2', 'A', 3)]
    expect(slotToTake(slots, 'C')).toEqual({ peerId: 'a1', reason: 'share' })
    expect(slotToTake([slot('a0', 'A', 1, false), slot('a1', 'A', 2, false)], 'C')).toBeNull()
  })

  it('lets a sender in good standing take from demoted senders first, whatever their share', () => {
    const six = Array.from({ length: 6 }, (_, i) => slot(`p${i}`, `S${i}`, 10 - i))
    const bad = new Set(['S2', 'S4'])
    const demoted = (sender: string | undefined): boolean => sender !== undefined && bad.has(sender)
    expect(slotToTake(six, 'H', demoted)).toEqual({ peerId: 'p2', reason: 'demoted' })
    // However much the one asking holds already.
    const mostlyMine = [...Array.from({ length: 5 }, (_, i) => slot(`h${i}`, 'H', i)), slot('p4', 'S4', 9)]
    expect(slotToTake(mostlyMine, 'H', demoted)).toEqual({ peerId: 'p4', reason: 'demoted' })
    // The demoted sender holding the most gives up its oldest.
    const two = [slot('x1', 'S2', 5), slot('x0', 'S2', 1), slot('y0', 'S4', 0), slot('p0', 'S0', 0), slot('p1', 'S1', 0), slot('p3', 'S3', 0)]
    expect(slotToTake(two, 'H', demoted)).toEqual({ peerId: 'x0', reason: 'demoted' })
    // A demoted sender takes only from demoted senders, by share.
    expect(slotToTake(six, 'S2', demoted)).toBeNull()
    const threes = [slot('a0', 'S4', 0), slot('a1', 'S4', 1), slot('a2', 'S4', 2), slot('b0', 'S0', 0), slot('b1', 'S0', 1), slot('b2', 'S0', 2)]
    expect(slotToTake(threes, 'S2', (s) => s === 'S2' || s === 'S4')).toEqual({ peerId: 'a0', reason: 'share' })
    expect(slotToTake(threes, 'S2', (s) => s === 'S2')).toBeNull()
    expect(slotToTake(full(6), 'A', () => true)).toBeNull()
  })

  it('demotes a sender whose connection timed out until one opens, and one refused while holding a slot for a while', () => {
    const standings = new SenderStandings(3)
    expect(standings.demoted('A', 0)).toBe(false)
    standings.timedOut('A')
    expect(standings.demoted('A', 1e9)).toBe(true)
    standings.opened('A')
    expect(standings.demoted('A', 0)).toBe(false)
    standings.refused('B', 0, 100)
    expect(standings.demoted('B', 100)).toBe(false)
    standings.refused('B', 1, 100)
    expect(standings.demoted('B', 100 + DEMOTION_WINDOW - 1)).toBe(true)
    expect(standings.demoted('B', 100 + DEMOTION_WINDOW)).toBe(false)
    // Without handles nobody is demoted; the table is bounded, the least recent forgotten.
    standings.timedOut(undefined)
    expect(standings.demoted(undefined, 0)).toBe(false)
    for (const sender of ['C', 'D', 'E']) standings.timedOut(sender)
    expect(standings.size).toBe(3)
    expect(standings.demoted('A', 0)).toBe(false)
    expect(standings.demoted('E', 0)).toBe(true)
  })

  it('reads the handle a server put on a publish, and nothing else', () => {
    expect(senderOf({ type: 'publish', sender: 'q3Zr8vU1cTnW0bLe' })).toBe('q3Zr8vU1cTnW0bLe')
    for (const sender of [undefined, '', 'x'.repeat(65), 'a b', 'a/b', 7, { id: 'x' }, ['x']]) {
      expect(senderOf({ type: 'publish', sender })).toBeUndefined()
    }
  })
})

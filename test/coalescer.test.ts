/**
 * The flush rule on its own, with the end of a turn in the test's hands.
 */
import { describe, expect, it } from 'vitest'
import { Coalescer, endOfTurn } from '../src/transport/coalescer.js'

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)

/** A coalescer whose turn ends when the test calls `endTurn`. */
const manual = (maxUnits?: number, pace?: { rate: number, burst: number }) => {
  const sent: Array<{ key: string, items: Uint8Array[] }> = []
  let pending: (() => void) | null = null
  const coalescer = new Coalescer<string, Uint8Array>({
    send: (key, items) => { sent.push({ key, items }) },
    schedule: (task) => { pending = task },
    units: (item) => item.length,
    ...(maxUnits === undefined ? {} : { maxUnits }),
    ...(pace === undefined ? {} : { pace })
  })
  const endTurn = (): void => {
    const task = pending
    pending = null
    task?.()
  }
  return { coalescer, sent, endTurn, scheduled: () => pending !== null }
}

describe('the flush rule', () => {
  it('sends the first item of a turn at once, per key, and the rest together at the end of the turn, in order', () => {
    const { coalescer, sent, endTurn } = manual()
    const items = Array.from({ length: 5 }, (_, i) => bytes(3, i))
    for (const item of items) {
      coalescer.push('a', item)
      coalescer.push('b', item)
    }
    expect(sent).toEqual([{ key: 'a', items: [items[0]] }, { key: 'b', items: [items[0]] }])
    expect(coalescer.pending('a')).toBe(12)
    endTurn()
    expect(sent.slice(2)).toEqual([{ key: 'a', items: items.slice(1) }, { key: 'b', items: items.slice(1) }])
    // A new turn: the first item goes out at once again.
    coalescer.push('a', items[0] as Uint8Array)
    expect(sent).toHaveLength(5)
  })

  it('sends a key at once before it would hold more than maxUnits', () => {
    const { coalescer, sent, endTurn } = manual(10)
    coalescer.push('a', bytes(4))
    for (let i = 0; i < 5; i++) coalescer.push('a', bytes(4))
    expect(sent.map((s) => s.items.length)).toEqual([1, 2, 2])
    endTurn()
    expect(sent.map((s) => s.items.length)).toEqual([1, 2, 2, 1])
  })

  it('paces messages per key: past the burst, what is collected waits for a token', async () => {
    const { coalescer, sent, endTurn } = manual(undefined, { rate: 100, burst: 2 })
    coalescer.push('a', bytes(1)) // token 1: at once
    endTurn()
    coalescer.push('a', bytes(1)) // token 2: at once
    endTurn()
    coalescer.push('a', bytes(1)) // no token left: collected
    coalescer.push('a', bytes(1))
    endTurn()
    expect(sent).toHaveLength(2)
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(sent.map((s) => s.items.length)).toEqual([1, 1, 2])
  })

  it('flushes everything on demand, and forgets a dropped key', () => {
    const { coalescer, sent } = manual()
    coalescer.push('a', bytes(1))
    coalescer.push('a', bytes(2))
    coalescer.push('b', bytes(1))
    coalescer.push('b', bytes(2))
    coalescer.drop('b')
    coalescer.flush()
    expect(sent.map((s) => [s.key, s.items.length])).toEqual([['a', 1], ['b', 1], ['a', 1]])
    expect(coalescer.pending('a')).toBe(0)
  })

  it('ends the turn after the running task and its microtasks', async () => {
    const order: string[] = []
    endOfTurn(() => order.push('end of turn'))
    queueMicrotask(() => order.push('microtask'))
    order.push('task')
    await new Promise<void>((resolve) => endOfTurn(resolve))
    expect(order).toEqual(['task', 'microtask', 'end of turn'])
  })
})

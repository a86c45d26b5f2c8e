import { describe, expect, it } from 'vitest'
import { LeanObservable, emitTo } from '../src/events.js'

interface Events {
  message: (payload: { n: number }) => void
}

class Emitter extends LeanObservable<Events> {}

describe('LeanObservable', () => {
  it('calls a lone listener with the arguments, and nothing when nobody listens', () => {
    const emitter = new Emitter()
    emitter.emit('message', [{ n: 1 }])
    const seen: number[] = []
    emitter.on('message', ({ n }) => seen.push(n))
    emitter.emit('message', [{ n: 2 }])
    emitter.emit('message', [{ n: 3 }])
    expect(seen).toEqual([2, 3])
    expect(emitter._observers.has('message')).toBe(true)
  })

  it('does not call, in the same emit, a listener that a lone listener subscribes', () => {
    const emitter = new Emitter()
    const seen: string[] = []
    const late = ({ n }: { n: number }): void => { seen.push(`late ${n}`) }
    const first = ({ n }: { n: number }): void => {
      seen.push(`first ${n}`)
      emitter.off('message', first)
      emitter.on('message', late)
    }
    emitter.on('message', first)
    emitter.emit('message', [{ n: 1 }])
    emitter.emit('message', [{ n: 2 }])
    expect(seen).toEqual(['first 1', 'late 2'])
  })

  it('calls several listeners on a copy, as lib0 does: one removed during the emit still hears it', () => {
    const emitter = new Emitter()
    const seen: string[] = []
    const b = ({ n }: { n: number }): void => { seen.push(`b ${n}`) }
    emitter.on('message', ({ n }) => {
      seen.push(`a ${n}`)
      emitter.off('message', b)
    })
    emitter.on('message', b)
    emitter.emit('message', [{ n: 1 }])
    emitter.emit('message', [{ n: 2 }])
    expect(seen).toEqual(['a 1', 'b 1', 'a 2'])
  })

  it('propagates what a listener throws, as lib0 does', () => {
    const listeners = new Set([() => { throw new Error('boom') }])
    expect(() => emitTo(listeners, [])).toThrow('boom')
  })
})

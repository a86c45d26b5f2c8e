import { describe, expect, it } from 'vitest'
import { createLocalRelay, type Subscriber } from '../signaling/relay.js'

const recorder = (): Subscriber & { frames: unknown[] } => {
  const frames: unknown[] = []
  return { frames, deliver: (frame) => frames.push(JSON.parse(frame.toString())) > 0 }
}

describe('local relay', () => {
  it('delivers to every subscriber with the exact subscriber count', () => {
    const relay = createLocalRelay()
    const a = recorder()
    const b = recorder()
    relay.subscribe('room', a)
    expect(relay.publish('room', 'x')).toBe(1)
    relay.subscribe('room', b)
    expect(relay.publish('room', 'y')).toBe(2)
    expect(a.frames).toEqual([
      { type: 'publish', topic: 'room', data: 'x', clients: 1 },
      { type: 'publish', topic: 'room', data: 'y', clients: 2 }
    ])
    expect(b.frames).toEqual([{ type: 'publish', topic: 'room', data: 'y', clients: 2 }])
  })

  it('counts a double subscribe once and deletes a topic when its last subscriber leaves', () => {
    const relay = createLocalRelay()
    const a = recorder()
    const b = recorder()
    relay.subscribe('room', a)
    relay.subscribe('room', a)
    relay.subscribe('room', b)
    relay.subscribe('other', a)
    expect([relay.topicCount, relay.subscriptionCount]).toEqual([2, 3])
    relay.unsubscribe('room', a)
    relay.unsubscribe('room', a)
    relay.unsubscribe('nowhere', a)
    expect([relay.topicCount, relay.subscriptionCount]).toEqual([2, 2])
    relay.unsubscribe('room', b)
    relay.unsubscribe('other', a)
    expect([relay.topicCount, relay.subscriptionCount]).toEqual([0, 0])
    expect(relay.publish('room', 'x')).toBe(0)
  })

  it('carries on when a subscriber leaves during delivery', () => {
    const relay = createLocalRelay()
    const a = recorder()
    const c = recorder()
    const leaver: Subscriber = {
      deliver: () => {
        relay.unsubscribe('room', leaver)
        return false
      }
    }
    relay.subscribe('room', a)
    relay.subscribe('room', leaver)
    relay.subscribe('room', c)
    expect(relay.publish('room', 1)).toBe(2)
    expect(c.frames).toEqual([{ type: 'publish', topic: 'room', data: 1, clients: 3 }])
    expect(relay.subscriptionCount).toBe(2)
  })
})

import { describe, expect, it } from 'vitest'
import { Instances, RemoteCounts } from '../signaling/membership.js'

const alive = (): boolean => true

describe('remote counts of one topic', () => {
  it('takes membership messages in order and sums the live instances', () => {
    const counts = new RemoteCounts(10)
    counts.apply('a', 2, 1)
    counts.apply('b', 1, 2)
    counts.apply('a', 3, 3)
    expect(counts.sum(alive)).toBe(4)
    expect(counts.sum((instance) => instance === 'a')).toBe(3)
    counts.apply('a', 0, 4)
    expect(counts.sum(alive)).toBe(1)
  })

  it('lets a snapshot replace older messages and keeps newer ones, in either arrival order', () => {
    // The snapshot (seq 5) was taken after a's message 4 and before b's message 6.
    const messagesFirst = new RemoteCounts(10)
    messagesFirst.apply('a', 2, 4)
    messagesFirst.apply('b', 1, 6)
    messagesFirst.applySnapshot(5, new Map([['a', 2], ['c', 4]]))
    expect(messagesFirst.sum(alive)).toBe(7)

    const snapshotFirst = new RemoteCounts(10)
    snapshotFirst.applySnapshot(5, new Map([['a', 2], ['c', 4]]))
    snapshotFirst.apply('a', 2, 4)
    snapshotFirst.apply('b', 1, 6)
    expect(snapshotFirst.sum(alive)).toBe(7)
  })

  it('forgets an instance the snapshot no longer holds unless a newer message says otherwise', () => {
    const counts = new RemoteCounts(10)
    counts.apply('gone', 5, 2)
    counts.apply('late', 1, 9)
    counts.applySnapshot(8, new Map())
    expect(counts.sum(alive)).toBe(1)
    // A message older than the snapshot is already in it.
    counts.apply('gone', 5, 3)
    expect(counts.sum(alive)).toBe(1)
  })

  it('refuses instances beyond its limit', () => {
    const counts = new RemoteCounts(2)
    expect(counts.apply('a', 1, 1)).toBe(true)
    expect(counts.apply('b', 1, 2)).toBe(true)
    expect(counts.apply('c', 1, 3)).toBe(false)
    expect(counts.apply('a', 2, 4)).toBe(true)
    expect(counts.sum(alive)).toBe(3)
  })
})

describe('instance liveness', () => {
  it('counts an instance alive for the TTL after its last sign of life', () => {
    const instances = new Instances(1000, 10)
    instances.seen('a', 0)
    instances.seen('b', 500)
    expect([instances.isAlive('a', 1000), instances.isAlive('a', 1001), instances.isAlive('b', 1001)]).toEqual([true, false, true])
    expect(instances.aliveCount(1001)).toBe(1)
    instances.seen('a', 1200)
    expect(instances.isAlive('a', 2000)).toBe(true)
    expect(instances.isAlive('unknown', 0)).toBe(false)
  })

  it('stops counting an instance that said goodbye, for good', () => {
    const instances = new Instances(1000, 10)
    instances.seen('a', 0)
    instances.bye('a', 10)
    instances.seen('a', 20)
    expect(instances.isAlive('a', 30)).toBe(false)
  })

  it('forgets long-silent instances and bounds how many it tracks', () => {
    const instances = new Instances(100, 2)
    instances.seen('a', 0)
    instances.seen('b', 0)
    instances.seen('c', 0)
    expect(instances.isAlive('c', 0)).toBe(false)
    instances.seen('b', 950)
    instances.prune(1050)
    instances.seen('c', 1050)
    expect([instances.isAlive('b', 1050), instances.isAlive('c', 1050)]).toEqual([true, true])
  })
})

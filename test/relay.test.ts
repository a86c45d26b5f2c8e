/**
 * The relay rule and the neighbour list it reads (pure functions).
 */
import { describe, expect, it } from 'vitest'
import * as decoding from 'lib0/decoding'
import { MAX_LISTS, MAX_NEIGHBORS, MAX_PEER_ID_LENGTH, Topology, encodeNeighbors, readNeighbors, shouldForward, type NeighborList } from '../src/transport/relay.js'
import { MESSAGE_NEIGHBORS } from '../src/transport/sync-v2.js'

const read = (message: Uint8Array): NeighborList[] | null => {
  const decoder = decoding.createDecoder(message)
  expect(decoding.readVarUint(decoder)).toBe(MESSAGE_NEIGHBORS)
  return readNeighbors(decoder)
}

describe('the relay rule', () => {
  it('forwards to a neighbour the sender is not connected to, never back to the sender', () => {
    const qNeighbors = new Set(['p', 'r'])
    expect(shouldForward('q', qNeighbors, 'r')).toBe(false) // q sent it to r itself
    expect(shouldForward('q', qNeighbors, 's')).toBe(true)
    expect(shouldForward('q', qNeighbors, 'q')).toBe(false)
  })

  it('forwards everything from a sender whose neighbours are not known yet', () => {
    expect(shouldForward('q', null, 'r')).toBe(true)
    expect(shouldForward('q', null, 'q')).toBe(false)
  })
})

const list = (origin: string, ids: string[], seq = 1): NeighborList => ({ origin, seq, ids })

describe('neighbour lists', () => {
  it('round-trip', () => {
    const lists = [list('a', ['9b2c3d4e-0000-4000-8000-000000000001', 'memory-12', 'ünïcode'], 7), list('b', [])]
    expect(read(encodeNeighbors(lists))).toEqual(lists)
    expect(read(encodeNeighbors([]))).toEqual([])
  })

  it('are refused beyond their bounds or malformed', () => {
    const many = Array.from({ length: MAX_NEIGHBORS }, (_, i) => `p${i}`)
    expect(read(encodeNeighbors([list('a', many)]))?.[0]?.ids).toHaveLength(MAX_NEIGHBORS)
    expect(read(encodeNeighbors([list('a', [...many, 'one more'])]))).toBeNull()
    expect(read(encodeNeighbors(Array.from({ length: MAX_LISTS + 1 }, (_, i) => list(`o${i}`, []))))).toBeNull()
    expect(read(encodeNeighbors([list('a', ['x'.repeat(MAX_PEER_ID_LENGTH + 1)])]))).toBeNull()
    expect(read(encodeNeighbors([list('a', [''])]))).toBeNull()
    expect(read(encodeNeighbors([list('', ['a'])]))).toBeNull()
    expect(read(new Uint8Array([MESSAGE_NEIGHBORS, 1, 1, 97, 1, 2, 1, 98]))).toBeNull() // one id of two
    expect(read(new Uint8Array([MESSAGE_NEIGHBORS, 1, 1, 97, 1, 0, 0]))).toBeNull() // bytes after the lists
  })
})

describe('the topology', () => {
  it('takes only newer lists, and finds the peers reachable from this one', () => {
    const topology = new Topology()
    topology.own('a', ['b'])
    expect(topology.learn(list('b', ['a', 'c'], 2))).toBe(true)
    expect(topology.learn(list('b', ['a'], 1))).toBe(false)
    expect(topology.learn(list('c', ['b', 'd']))).toBe(true)
    // x is known but not reachable: its list names d, nobody reachable names x.
    expect(topology.learn(list('x', ['d']))).toBe(true)
    const component = topology.component('a', ['b'])
    expect([...component.ids].sort()).toEqual(['a', 'b', 'c', 'd'])
    expect(component.size).toBe(4)
    expect(topology.lists().map((l) => l.origin).sort()).toEqual(['a', 'b', 'c', 'x'])
  })
})

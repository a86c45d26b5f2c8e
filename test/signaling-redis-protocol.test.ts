import { describe, expect, it } from 'vitest'
import {
  MAX_MEMBER_COUNT,
  createNames,
  encodeBusPublish,
  encodeInstanceMessage,
  parseInstanceMessage,
  parseSnapshot,
  parseTopicMessage
} from '../signaling/redis-protocol.js'

const limits = { maxMessageLength: 1000, maxDataDepth: 32 }

const nested = (depth: number): unknown => {
  let value: unknown = 0
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe('Redis names', () => {
  it('keeps every channel and key under the prefix and maps topic channels back', () => {
    const names = createNames('app:')
    expect(names.topicChannel('room:a b')).toBe('app:topic:room:a b')
    expect(names.topicOf('app:topic:room:a b')).toBe('room:a b')
    expect(names.membersKey('r')).toBe('app:members:r')
    expect(names.instanceKey('id')).toBe(`${names.instanceKeyPrefix}id`)
    expect(names.instances).toBe('app:instances')
    expect(names.topicOf('app:topic:')).toBeNull()
    expect(names.topicOf('other:topic:r')).toBeNull()
    expect(names.topicOf('app:instances')).toBeNull()
  })
})

describe('topic channel messages', () => {
  it('round-trips a publish and reads a membership message', () => {
    expect(parseTopicMessage(encodeBusPublish('i1', { type: 'announce', from: 'p' }), limits))
      .toEqual({ kind: 'publish', instance: 'i1', data: { type: 'announce', from: 'p' } })
    expect(parseTopicMessage(encodeBusPublish('i1', null), limits)).toEqual({ kind: 'publish', instance: 'i1', data: null })
    expect(parseTopicMessage(encodeBusPublish('i1', 'x', 'h_-1'), limits)).toEqual({ kind: 'publish', instance: 'i1', data: 'x', sender: 'h_-1' })
    expect(parseTopicMessage('{"k":"m","i":"i2","n":3,"s":7}', limits)).toEqual({ kind: 'members', instance: 'i2', count: 3, seq: 7 })
    expect(parseTopicMessage('{"k":"m","i":"i2","n":0,"s":1}', limits)).toEqual({ kind: 'members', instance: 'i2', count: 0, seq: 1 })
  })

  it.each([
    ['not JSON', '{"k":"p"'],
    ['JSON that is not an object', '[1,2]'],
    ['null', 'null'],
    ['an unknown kind', '{"k":"x","i":"a","d":1}'],
    ['no instance', '{"k":"p","d":1}'],
    ['an empty instance', '{"k":"p","i":"","d":1}'],
    ['a long instance', JSON.stringify({ k: 'p', i: 'x'.repeat(65), d: 1 })],
    ['a publish without data', '{"k":"p","i":"a"}'],
    ['data nested too deep', JSON.stringify({ k: 'p', i: 'a', d: nested(40) })],
    ['a negative count', '{"k":"m","i":"a","n":-1,"s":1}'],
    ['a fractional count', '{"k":"m","i":"a","n":1.5,"s":1}'],
    ['a huge count', JSON.stringify({ k: 'm', i: 'a', n: MAX_MEMBER_COUNT + 1, s: 1 })],
    ['a count as text', '{"k":"m","i":"a","n":"1","s":1}'],
    ['a zero sequence', '{"k":"m","i":"a","n":1,"s":0}'],
    ['no sequence', '{"k":"m","i":"a","n":1}'],
    ['a sender handle that is not a string', '{"k":"p","i":"a","d":1,"h":7}'],
    ['an empty sender handle', '{"k":"p","i":"a","d":1,"h":""}'],
    ['a sender handle that is not base64url', '{"k":"p","i":"a","d":1,"h":"a b"}'],
    ['a long sender handle', JSON.stringify({ k: 'p', i: 'a', d: 1, h: 'x'.repeat(65) })],
    ['a message over the length limit', JSON.stringify({ k: 'p', i: 'a', d: 'x'.repeat(1000) })]
  ])('refuses %s', (_what, text) => {
    expect(parseTopicMessage(text, limits)).toBeNull()
  })

  it('refuses what is not text', () => {
    expect(parseTopicMessage(Buffer.from('{}'), limits)).toBeNull()
    expect(parseTopicMessage(undefined, limits)).toBeNull()
  })
})

describe('instance channel messages', () => {
  it('round-trips heartbeats and goodbyes and refuses anything else', () => {
    expect(parseInstanceMessage(encodeInstanceMessage({ kind: 'alive', instance: 'i' }), limits)).toEqual({ kind: 'alive', instance: 'i' })
    expect(parseInstanceMessage(encodeInstanceMessage({ kind: 'bye', instance: 'i' }), limits)).toEqual({ kind: 'bye', instance: 'i' })
    expect(parseInstanceMessage('{"k":"p","i":"i","d":1}', limits)).toBeNull()
    expect(parseInstanceMessage('{"k":"alive","i":5}', limits)).toBeNull()
    expect(parseInstanceMessage('alive', limits)).toBeNull()
  })
})

describe('membership script replies', () => {
  it('reads the sequence number and the other instances\' counts', () => {
    expect(parseSnapshot([4, 'a', '2', 1500, 'b', '1', -1], 10))
      .toEqual({ seq: 4, counts: new Map([['a', 2], ['b', 1]]), expiresIn: new Map([['a', 1500], ['b', -1]]), refused: 0 })
    expect(parseSnapshot([0], 10)).toEqual({ seq: 0, counts: new Map(), expiresIn: new Map(), refused: 0 })
  })

  it.each([
    ['not an array', 'OK'],
    ['an empty array', []],
    ['a missing count', [1, 'a', 100]],
    ['a missing key TTL', [1, 'a', '1']],
    ['a sequence that is not a number', ['1', 'a', '2']],
    ['a negative sequence', [-1]]
  ])('refuses %s', (_what, reply) => {
    expect(parseSnapshot(reply, 2)).toBeNull()
  })

  it('leaves out malformed fields and fields over the limit, and counts them', () => {
    const reply = [3, 'ok', '1', 10, 'nan', 'x', 10, 'negative', '-2', 10, 7, '2', 10, 'x'.repeat(65), '1', 10, 'ttl', '1', 'x', 'b', '1', 20, 'c', '1', 30]
    expect(parseSnapshot(reply, 2)).toEqual({ seq: 3, counts: new Map([['ok', 1], ['b', 1]]), expiresIn: new Map([['ok', 10], ['b', 20]]), refused: 6 })
  })
})

import { describe, expect, it } from 'vitest'
import {
  DEFAULT_PARSE_LIMITS,
  MAX_DATA_DEPTH,
  PONG,
  decodeJson,
  encodePublish,
  isWithinDepth,
  parseMessage,
  toClientMessage
} from '../signaling/protocol.js'

const nested = (depth: number): unknown => {
  let value: unknown = 'leaf'
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe('parseMessage', () => {
  it('accepts the four client messages', () => {
    expect(parseMessage('{"type":"subscribe","topics":["a","b"]}')).toEqual({ type: 'subscribe', topics: ['a', 'b'] })
    expect(parseMessage('{"type":"subscribe","topics":[]}')).toEqual({ type: 'subscribe', topics: [] })
    expect(parseMessage('{"type":"unsubscribe","topics":["a"]}')).toEqual({ type: 'unsubscribe', topics: ['a'] })
    expect(parseMessage('{"type":"ping"}')).toEqual({ type: 'ping' })
    expect(parseMessage('{"type":"publish","topic":"a","data":{"type":"announce","from":"x"}}'))
      .toEqual({ type: 'publish', topic: 'a', data: { type: 'announce', from: 'x' } })
  })

  it('accepts any JSON value as publish data, null and encrypted strings included', () => {
    expect(parseMessage('{"type":"publish","topic":"a","data":"base64=="}')).toEqual({ type: 'publish', topic: 'a', data: 'base64==' })
    expect(parseMessage('{"type":"publish","topic":"a","data":null}')).toEqual({ type: 'publish', topic: 'a', data: null })
    expect(parseMessage('{"type":"publish","topic":"a","data":[1,2]}')).toEqual({ type: 'publish', topic: 'a', data: [1, 2] })
  })

  it('drops fields that are not part of the message', () => {
    expect(parseMessage('{"type":"publish","topic":"a","data":1,"clients":99,"extra":true}')).toEqual({ type: 'publish', topic: 'a', data: 1 })
    expect(parseMessage('{"type":"ping","topics":5}')).toEqual({ type: 'ping' })
  })

  const limits = { ...DEFAULT_PARSE_LIMITS, maxTopics: 3, maxTopicLength: 5 }
  it.each([
    ['empty text', ''],
    ['invalid JSON', '{"type":'],
    ['JSON null', 'null'],
    ['a number', '42'],
    ['a string', '"ping"'],
    ['an array', '[{"type":"ping"}]'],
    ['no type', '{"topics":["a"]}'],
    ['type not a string', '{"type":1}'],
    ['unknown type', '{"type":"pong"}'],
    ['type with different case', '{"type":"Ping"}'],
    ['subscribe without topics', '{"type":"subscribe"}'],
    ['topics not an array', '{"type":"subscribe","topics":"a"}'],
    ['topics with a number', '{"type":"subscribe","topics":["a",1]}'],
    ['topics with null', '{"type":"unsubscribe","topics":[null]}'],
    ['an empty topic name', '{"type":"subscribe","topics":[""]}'],
    ['a topic name too long', '{"type":"subscribe","topics":["abcdef"]}'],
    ['too many topics', '{"type":"subscribe","topics":["a","b","c","d"]}'],
    ['publish without topic', '{"type":"publish","data":1}'],
    ['publish with a topic array', '{"type":"publish","topic":["a"],"data":1}'],
    ['publish without data', '{"type":"publish","topic":"a"}'],
    ['publish with a topic too long', '{"type":"publish","topic":"abcdef","data":1}'],
    ['publish with data nested too deep', JSON.stringify({ type: 'publish', topic: 'a', data: nested(MAX_DATA_DEPTH + 1) })],
    ['__proto__ as type', '{"__proto__":{"type":"ping"}}']
  ])('refuses %s', (_name, text) => {
    expect(parseMessage(text, limits)).toBeNull()
  })

  it('refuses a huge topics array without looking at its items', () => {
    const topics = Array.from({ length: 100_000 }, () => 'a')
    expect(parseMessage(JSON.stringify({ type: 'subscribe', topics }))).toBeNull()
  })

  it('refuses nesting deep enough to overflow JSON.stringify, without throwing', () => {
    const depth = 50_000
    const text = `{"type":"publish","topic":"a","data":${'['.repeat(depth)}${']'.repeat(depth)}}`
    expect(() => parseMessage(text)).not.toThrow()
    expect(parseMessage(text)).toBeNull()
  })
})

describe('decodeJson and toClientMessage', () => {
  it('tells "not JSON" (undefined) from JSON null', () => {
    expect(decodeJson('nope')).toBeUndefined()
    expect(decodeJson('null')).toBeNull()
    expect(toClientMessage(null)).toBeNull()
  })
})

describe('isWithinDepth', () => {
  it('counts the top level as 1 and ignores primitives', () => {
    expect(isWithinDepth('x', 0)).toBe(true)
    expect(isWithinDepth({}, 1)).toBe(true)
    expect(isWithinDepth({ a: {} }, 1)).toBe(false)
    expect(isWithinDepth(nested(MAX_DATA_DEPTH), MAX_DATA_DEPTH)).toBe(true)
    expect(isWithinDepth(nested(MAX_DATA_DEPTH + 1), MAX_DATA_DEPTH)).toBe(false)
  })
})

describe('encoders', () => {
  it('encodes a relayed publish with exactly type, topic, data and clients', () => {
    expect(JSON.parse(encodePublish('room', { a: 1 }, 3))).toEqual({ type: 'publish', topic: 'room', data: { a: 1 }, clients: 3 })
    expect(JSON.parse(PONG)).toEqual({ type: 'pong' })
  })
})

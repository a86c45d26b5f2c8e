import { describe, expect, it } from 'vitest'
import * as prng from 'lib0/prng'
import { decodeEnvelope, encodeEnvelope, PREFIX, readPrefix, type Entry } from '../src/store/envelope.js'
import { DEFAULT_LIMITS } from '../src/store/limits.js'

const LIMITS = { ...DEFAULT_LIMITS, maxValueBytes: 64 }
const GOOD = '{"by":"2384023","at":1700000000123,"since":1700000000000,"m":{"name":"Ada"},"v":{"text":"Retro at 4pm"}}'

const decoded = (raw: unknown, key = 'pinned'): Entry => {
  const entry = decodeEnvelope(key, raw, LIMITS)
  if (typeof entry === 'string') throw new Error(`expected a valid entry, got: ${entry}`)
  return entry
}

describe('decodeEnvelope', () => {
  it('reads every field of an envelope; the entry\'s size is its key and value text only', () => {
    expect(decoded(GOOD)).toEqual({
      key: 'pinned',
      text: GOOD,
      bytes: 'pinned'.length + '{"text":"Retro at 4pm"}'.length,
      value: { text: 'Retro at 4pm' },
      by: '2384023',
      metadata: { name: 'Ada' },
      at: 1700000000123,
      since: 1700000000000
    })
  })

  it('reads back what encodeEnvelope writes, for every kind of metadata and value', () => {
    for (const json of ['null', '0', '-1.5e-7', 'true', '"a,\\"v\\":}"', '[]', '[1,[2,{"}":"]"}]]', '{"a":{"b":[]}}', '"é😀"']) {
      const entry = decoded(encodeEnvelope('p256.x-_.y', 0, 9007199254740991, json, json))
      expect(entry.metadata).toEqual(JSON.parse(json))
      expect(entry.value).toEqual(JSON.parse(json))
      expect(entry.bytes).toBe(6 + new TextEncoder().encode(json).length)
    }
  })

  it('reads the fencing token and the lock grant of a write under a lock; a grant without a token, or with JSON escapes, is not an envelope', () => {
    const grant = 'eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2ln-_'
    const entry = decoded(encodeEnvelope('1', 1, 1, 'null', '2', { lock: 1767225600000123, grant }))
    expect(entry).toMatchObject({ lock: 1767225600000123, grant, value: 2 })
    expect(decoded(encodeEnvelope('1', 1, 1, 'null', '2', { lock: 5 })).grant).toBeUndefined()
    expect(typeof decodeEnvelope('k', `{"by":"1","at":1,"since":1,"lg":"${grant}","m":null,"v":1}`, LIMITS)).toBe('string')
    expect(typeof decodeEnvelope('k', '{"by":"1","at":1,"since":1,"lk":5,"lg":"a\\"b","m":null,"v":1}', LIMITS)).toBe('string')
  })

  it('counts neither the metadata nor the other fields in the limits: a value at maxValueBytes with large metadata is valid', () => {
    const value = JSON.stringify('v'.repeat(62))
    const metadata = JSON.stringify('m'.repeat(62))
    const entry = decoded(encodeEnvelope('1'.repeat(128), 1, 1, metadata, value))
    expect(entry.bytes).toBe(6 + 64)
  })

  it.each([
    ['not text', 42],
    ['JSON text without an envelope', '{"text":"Retro at 4pm"}'],
    ['a fifth field in front', GOOD.replace('{"by"', '{"x":1,"by"')],
    ['fields out of order', '{"at":1,"by":"1","since":1,"m":null,"v":1}'],
    ['m after v', '{"by":"1","at":1,"since":1,"v":1,"m":null}'],
    ['no since', '{"by":"1","at":1,"m":null,"v":1}'],
    ['no v', '{"by":"1","at":1,"since":1,"m":null}'],
    ['a duplicate field after v', '{"by":"1","at":1,"since":1,"m":null,"v":1,"v":2}'],
    ['a field after v', '{"by":"1","at":1,"since":1,"m":null,"v":1,"x":2}'],
    ['whitespace between fields', '{"by":"1", "at":1,"since":1,"m":null,"v":1}'],
    ['nothing after the value', '{"by":"1","at":1,"since":1,"m":null,"v":1'],
    ['an empty value', '{"by":"1","at":1,"since":1,"m":null,"v":}'],
    ['by a number', '{"by":1,"at":1,"since":1,"m":null,"v":1}'],
    ['by empty', '{"by":"","at":1,"since":1,"m":null,"v":1}'],
    ['by with an escape', '{"by":"a\\"b","at":1,"since":1,"m":null,"v":1}'],
    ['by with a space', '{"by":"a b","at":1,"since":1,"m":null,"v":1}'],
    ['by over 128 characters', `{"by":"${'1'.repeat(129)}","at":1,"since":1,"m":null,"v":1}`],
    ['at negative', '{"by":"1","at":-1,"since":1,"m":null,"v":1}'],
    ['at fractional', '{"by":"1","at":1.5,"since":1,"m":null,"v":1}'],
    ['at in exponent form', '{"by":"1","at":1e3,"since":1,"m":null,"v":1}'],
    ['at a string', '{"by":"1","at":"1","since":1,"m":null,"v":1}'],
    ['at with a leading zero', '{"by":"1","at":01,"since":1,"m":null,"v":1}'],
    ['at not a safe integer', '{"by":"1","at":9007199254740992,"since":1,"m":null,"v":1}'],
    ['since not a safe integer', '{"by":"1","at":1,"since":99999999999999999,"m":null,"v":1}'],
    ['since null', '{"by":"1","at":1,"since":null,"m":null,"v":1}'],
    ['metadata not JSON', '{"by":"1","at":1,"since":1,"m":{x},"v":1}'],
    ['metadata unclosed', '{"by":"1","at":1,"since":1,"m":{"a":1,"v":1}'],
    ['metadata with a stray bracket', '{"by":"1","at":1,"since":1,"m":1],"v":1}'],
    ['metadata Infinity', '{"by":"1","at":1,"since":1,"m":1e400,"v":1}'],
    ['metadata over maxValueBytes', encodeEnvelope('1', 1, 1, JSON.stringify('m'.repeat(63)), '1')],
    ['a value over maxValueBytes', encodeEnvelope('1', 1, 1, 'null', JSON.stringify('v'.repeat(63)))],
    ['a value not JSON', '{"by":"1","at":1,"since":1,"m":null,"v":undefined}'],
    ['a value Infinity', '{"by":"1","at":1,"since":1,"m":null,"v":-1e999}'],
    ['far too long to read', `{"by":"1","at":1,"since":1,"m":null,"v":"${'x'.repeat(1_000_000)}"}`]
  ])('is invalid for %s', (_what, raw) => {
    expect(typeof decodeEnvelope('k', raw, LIMITS)).toBe('string')
  })

  it.each([
    ['empty', ''],
    ['over maxKeyBytes', 'k'.repeat(1025)],
    ['a lone surrogate', 'a\uD800']
  ])('is invalid for a key %s', (_what, key) => {
    expect(decodeEnvelope(key, GOOD, LIMITS)).toMatch(/key/)
  })
})

describe('the envelope prefix reader', () => {
  it('matches exactly what the prefix pattern matches, for envelopes of every kind and thousands of mutations of them', () => {
    const gen = prng.create(7)
    const texts = [
      encodeEnvelope('12345', 1767225600000, 1767225600000, 'null', '{"a":1}'),
      encodeEnvelope('1', 0, 0, '{"name":"x"}', '"v"'),
      encodeEnvelope('!#[]~', 9007199254740991, 1, 'null', '2', { lock: 5, grant: 'a.b.c' }),
      encodeEnvelope('p', 10, 9, 'null', 'null', { deleted: true }),
      `{"by":"${'x'.repeat(128)}","at":1,"since":1,"m":null,"v":1}`,
      `{"by":"${'x'.repeat(129)}","at":1,"since":1,"m":null,"v":1}`,
      '{"by":"1","at":01,"since":1,"m":null,"v":1}',
      '{"by":"1","at":12345678901234567,"since":1,"m":null,"v":1}',
      '{"by":"a\\\\b","at":1,"since":1,"m":null,"v":1}',
      '{"by":"","at":1,"since":1,"m":null,"v":1}',
      '{"by":"1","at":1,"since":1,"ver":2,"pk":"' + 'A'.repeat(43) + '","tok":"t","sig":"s","m":null,"v":1}'
    ]
    const alphabet = '{}":,0123456789abm\\!~ '
    const base = [...texts]
    for (let n = 0; n < 20_000; n++) {
      const text = base[prng.uint32(gen, 0, base.length - 1)] as string
      const at = prng.uint32(gen, 0, text.length - 1)
      const char = alphabet[prng.uint32(gen, 0, alphabet.length - 1)] as string
      switch (prng.uint32(gen, 0, 2)) {
        case 0: texts.push(text.slice(0, at) + char + text.slice(at + 1)); break
        case 1: texts.push(text.slice(0, at) + char + text.slice(at)); break
        default: texts.push(text.slice(0, at) + text.slice(at + 1))
      }
    }
    let plain = 0
    for (const text of texts) {
      const expected = PREFIX.exec(text)
      const got = readPrefix(text)
      if (expected === null) {
        expect(got, text).toBeNull()
        continue
      }
      expect(got, text).not.toBeNull()
      for (let i = 0; i <= 12; i++) expect(got?.[i], `${text} group ${i}`).toBe(expected[i])
      if (!Array.isArray(got) || !('index' in got)) plain++
    }
    // The hand reader answered most of them itself: the test checks it, not only the pattern.
    expect(plain).toBeGreaterThan(1000)
  })
})

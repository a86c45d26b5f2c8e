import { describe, expect, it, vi } from 'vitest'
import * as Y from 'yjs'
import { SessionStore } from '../src/store/store.js'
import { SessionStoreError } from '../src/errors.js'
import { envelopeOf, Mesh } from './helpers/mesh.js'

const newStore = (limits = {}) => {
  const doc = new Y.Doc()
  const errors: SessionStoreError[] = []
  const store = new SessionStore(doc.getMap('session-store'), { limits, onError: (err) => errors.push(err) })
  return { doc, store, errors }
}

/** A string whose JSON text is exactly `bytes` bytes (two of them are the quotes). */
const jsonOfBytes = (bytes: number): string => 'x'.repeat(bytes - 2)

const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> => {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    expect(err).toBeInstanceOf(SessionStoreError)
    return (err as SessionStoreError).code
  }
  return undefined
}

describe('set, get, object, delete', () => {
  it('resolves the final value and reads it back', async () => {
    const { store } = newStore()
    await expect(store.set('pinned', 'hello')).resolves.toBe('hello')
    expect(store.get('pinned')).toBe('hello')
    await expect(store.object('pinned')).resolves.toBe('hello')
    expect(store.has('pinned')).toBe(true)
    expect(store.keys()).toEqual(['pinned'])
  })

  it('reads back what JSON carries: objects, arrays, numbers, null; undefined properties dropped', async () => {
    const { store } = newStore()
    const value = { a: 1, b: [true, null, 'x', { c: -0.5 }], d: undefined, e: {} }
    const final = await store.set('k', value)
    expect(final).toEqual(JSON.parse(JSON.stringify(value)))
    expect(Object.keys(store.get('k') as object)).toEqual(['a', 'b', 'e'])
    expect(store.toJSON()).toEqual({ k: { a: 1, b: [true, null, 'x', { c: -0.5 }], e: {} } })
  })

  it('hands every reader its own copy, so mutating a read does not change the store', async () => {
    const { store } = newStore()
    await store.set('k', { n: 1 })
    const read = store.get('k') as { n: number }
    read.n = 2
    expect(store.get('k')).toEqual({ n: 1 })
  })

  it('lists keys in rank order, by the time each key got its value then by key, which overwrites keep', async () => {
    let t = 0
    const mesh = new Mesh(2, { now: () => Math.floor(t++ / 2) })
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await b.store.set('z', 1) // since 0
    await a.store.set('m', 1) // since 0 too: ties go by key
    await a.store.set('b', 1) // since 1
    mesh.flush()
    for (const r of [a, b]) expect(r.store.keys()).toEqual(['m', 'z', 'b'])
    await b.store.set('z', 2) // an overwrite keeps since 0
    await a.store.delete('m')
    await a.store.set('m', 3) // after a delete the key gets its value anew: since 2
    mesh.flush()
    for (const r of [a, b]) {
      expect(r.store.keys()).toEqual(['z', 'b', 'm'])
      expect(Object.keys(r.store.toJSON())).toEqual(['z', 'b', 'm'])
    }
  })

  it('a key named __proto__ is an ordinary key: toJSON holds it as its own property', async () => {
    const { store } = newStore()
    await store.set('__proto__', { polluted: true })
    const json = store.toJSON()
    expect(Object.getPrototypeOf(json)).toBe(Object.prototype)
    expect(Object.keys(json)).toEqual(['__proto__'])
    expect(store.get('__proto__')).toEqual({ polluted: true })
  })

  it('object() of a missing key is undefined', async () => {
    const { store } = newStore()
    await expect(store.object('missing')).resolves.toBeUndefined()
    expect(store.get('missing')).toBeUndefined()
  })

  it('delete() and set(key, undefined) both delete; deleting a missing key is fine', async () => {
    const { store } = newStore()
    await store.set('a', 1)
    await store.set('b', 2)
    await store.delete('a')
    await expect(store.set('b', undefined)).resolves.toBeUndefined()
    await store.delete('never-set')
    expect(store.keys()).toEqual([])
    expect(store.usage().bytes).toBe(0)
  })

  it('the completion form reports the final value, or the error, as in the SDK', async () => {
    const { store } = newStore()
    const ok = await new Promise<unknown[]>((resolve) => store.set('k', 'v', (...args) => resolve(args)))
    expect(ok).toEqual(['v', null])
    const bad = await new Promise<unknown[]>((resolve) => store.set('', 'v', (...args) => resolve(args)))
    expect(bad[0]).toBeUndefined()
    expect((bad[1] as SessionStoreError).code).toBe('INVALID_KEY')
  })

  it('a completion that throws is reported as an error, not an unhandled rejection', async () => {
    const { store, errors } = newStore()
    store.set('k', 'v', () => { throw new Error('boom') })
    await vi.waitFor(() => expect(errors.map((e) => e.code)).toEqual(['CALLBACK_FAILED']))
    expect(store.get('k')).toBe('v')
  })
})

describe('refusals', () => {
  it.each([
    ['an empty string', ''],
    ['a number', 1],
    ['undefined', undefined],
    ['a lone surrogate', 'a\uD800b'],
    ['a key over maxKeyBytes', 'k'.repeat(1025)]
  ])('INVALID_KEY for %s', async (_what, key) => {
    const { store } = newStore()
    expect(await codeOf(store.set(key as string, 1))).toBe('INVALID_KEY')
    expect(await codeOf(store.delete(key as string))).toBe('INVALID_KEY')
    expect(store.keys()).toEqual([])
  })

  class Point { x = 1 }
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  it.each([
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a BigInt', 10n],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity inside an object', { n: -Infinity }],
    ['a cycle', cyclic],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a Set', new Set([1])],
    ['a class instance', new Point()],
    ['a typed array', new Uint8Array(2)],
    ['a hole in an array', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['undefined inside an array', [1, undefined]],
    ['a function-valued property', { f: () => 1 }],
    ['a symbol key', { [Symbol('k')]: 1 }],
    ['a nested Date', { when: [new Date(0)] }]
  ])('INVALID_VALUE for %s', async (_what, value) => {
    const { store } = newStore()
    await store.set('k', 'before')
    expect(await codeOf(store.set('k', value))).toBe('INVALID_VALUE')
    expect(store.get('k')).toBe('before')
  })

  it('accepts objects without a prototype and shared (non-cyclic) references', async () => {
    const { store } = newStore()
    const shared = { s: 1 }
    const bare = Object.assign(Object.create(null) as object, { a: 1 })
    await expect(store.set('k', { x: shared, y: shared, bare })).resolves.toEqual({ x: { s: 1 }, y: { s: 1 }, bare: { a: 1 } })
  })

  it('keeps a "__proto__" key an own property in what every read returns, never a prototype', async () => {
    const { store } = newStore()
    const value = JSON.parse('{"__proto__":{"polluted":true},"a":{"__proto__":[1]}}') as Record<string, unknown>
    const written = await store.set('k', value) as Record<string, unknown>
    for (const read of [written, store.get('k') as Record<string, unknown>, store.toJSON().k as Record<string, unknown>]) {
      expect(Object.getPrototypeOf(read)).toBe(Object.prototype)
      expect(Object.keys(read)).toEqual(['__proto__', 'a'])
      expect(read.polluted).toBeUndefined()
      expect(JSON.stringify(read)).toBe('{"__proto__":{"polluted":true},"a":{"__proto__":[1]}}')
    }
  })

  it('VALUE_TOO_LARGE above maxValueBytes, measured in UTF-8 bytes of the JSON text', async () => {
    const { store } = newStore()
    await expect(store.set('k', jsonOfBytes(1024))).resolves.toHaveLength(1022)
    expect(await codeOf(store.set('k', jsonOfBytes(1025)))).toBe('VALUE_TOO_LARGE')
    // 'é' is 2 bytes: 511 of them and the quotes make 1024 bytes; 512 make 1026.
    await expect(store.set('e', 'é'.repeat(511))).resolves.toBeDefined()
    expect(await codeOf(store.set('e', 'é'.repeat(512)))).toBe('VALUE_TOO_LARGE')
    // An emoji is 4 bytes (a surrogate pair): 255 of them and the quotes make 1022 bytes.
    await expect(store.set('m', '😀'.repeat(255))).resolves.toBeDefined()
    expect(await codeOf(store.set('m', '😀'.repeat(256)))).toBe('VALUE_TOO_LARGE')
    expect(store.get('k')).toHaveLength(1022)
  })

  it('TOO_MANY_KEYS at the 101st key; overwriting and deleting stay possible at the limit', async () => {
    const { store } = newStore()
    for (let i = 0; i < 100; i++) await store.set(`k${i}`, i)
    expect(store.usage().keys).toBe(100)
    const err = await store.set('k100', 100).catch((e: SessionStoreError) => e)
    expect(err).toMatchObject({ code: 'TOO_MANY_KEYS', key: 'k100' })
    expect(store.has('k100')).toBe(false)
    await expect(store.set('k99', 'overwritten')).resolves.toBe('overwritten')
    await store.delete('k0')
    await expect(store.set('k100', 100)).resolves.toBe(100)
    expect(store.usage().keys).toBe(100)
  })

  it('STORE_TOO_LARGE past maxTotalBytes, keys counted, overwrites measured against the entry they replace', async () => {
    const { store } = newStore()
    // 64 entries of key 'kNN' (3 bytes) + value 1021 bytes = 1024 bytes each: exactly 65536.
    for (let i = 0; i < 64; i++) await store.set(`k${String(i).padStart(2, '0')}`, jsonOfBytes(1021))
    expect(store.usage()).toMatchObject({ keys: 64, bytes: 65536 })
    expect(await codeOf(store.set('x', 1))).toBe('STORE_TOO_LARGE')
    expect(await codeOf(store.set('k00', jsonOfBytes(1022)))).toBe('STORE_TOO_LARGE')
    await expect(store.set('k00', jsonOfBytes(1021))).resolves.toBeDefined()
    await expect(store.set('k01', jsonOfBytes(1020))).resolves.toBeDefined()
    expect(store.usage().bytes).toBe(65535)
    await expect(store.set('k00', jsonOfBytes(1022))).resolves.toBeDefined()
    expect(store.usage().bytes).toBe(65536)
    expect(store.has('x')).toBe(false)
  })

  it('limits are configurable and validated', async () => {
    const { store } = newStore({ maxValueBytes: 10, maxKeys: 2, maxTotalBytes: 30 })
    expect(store.usage().limits).toEqual({ maxValueBytes: 10, maxKeys: 2, maxTotalBytes: 30, maxKeyBytes: 1024 })
    expect(await codeOf(store.set('a', 'x'.repeat(9)))).toBe('VALUE_TOO_LARGE')
    await store.set('a', 1)
    await store.set('b', 2)
    expect(await codeOf(store.set('c', 3))).toBe('TOO_MANY_KEYS')
    expect(() => newStore({ maxKeys: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => newStore({ maxValueBytes: 1.5 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
  })

  it('NOT_AVAILABLE for every call after close()', async () => {
    const { store } = newStore()
    await store.set('k', 1)
    store.close()
    expect(store.closed).toBe(true)
    expect(await codeOf(store.set('k', 2))).toBe('NOT_AVAILABLE')
    expect(await codeOf(store.object('k'))).toBe('NOT_AVAILABLE')
    expect(await codeOf(store.delete('k'))).toBe('NOT_AVAILABLE')
    for (const call of [() => store.get('k'), () => store.keys(), () => store.toJSON(), () => store.usage(), () => store.observeChanges(['k'], () => {})]) {
      expect(await codeOf(call)).toBe('NOT_AVAILABLE')
    }
  })
})

describe('observeChanges', () => {
  it('calls once per key with the initial value, then on local changes', async () => {
    const { store } = newStore()
    await store.set('date', 'mon')
    const calls: unknown[] = []
    store.observeChanges(['date', 'time'], (key, value) => calls.push([key, value]))
    expect(calls).toEqual([['date', 'mon'], ['time', undefined]])
    await store.set('time', '10:00')
    await store.set('other', 1)
    await store.delete('date')
    expect(calls).toEqual([['date', 'mon'], ['time', undefined], ['time', '10:00'], ['date', undefined]])
  })

  it('sees remote changes, and stops after removeObserver', () => {
    const mesh = new Mesh(2)
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    const seen: unknown[] = []
    const observer = b.store.observeChanges(['spotlight'], (key, value) => seen.push(value))
    void a.store.set('spotlight', 'peer-1')
    mesh.flush()
    expect(seen).toEqual([undefined, 'peer-1'])
    expect(b.store.removeObserver(observer)).toBe(true)
    expect(b.store.removeObserver(observer)).toBe(false)
    void a.store.set('spotlight', 'peer-2')
    mesh.flush()
    expect(seen).toEqual([undefined, 'peer-1'])
    expect(b.store.get('spotlight')).toBe('peer-2')
  })

  it('runs many observers; one that throws breaks neither the others, nor the writer, nor sync', async () => {
    const mesh = new Mesh(2)
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    const first: unknown[] = []
    const last: unknown[] = []
    b.store.observeChanges(['k'], (_key, value) => first.push(value))
    b.store.observeChanges(['k'], (_key, value) => { if (value !== undefined) throw new Error('observer bug') })
    b.store.observeChanges(['k'], (_key, value) => last.push(value))
    a.store.observeChanges(['k'], () => { throw new Error('local observer bug') })
    await expect(a.store.set('k', 1)).resolves.toBe(1)
    mesh.flush()
    await b.store.set('k', 2)
    mesh.flush()
    expect(first).toEqual([undefined, 1, 2])
    expect(last).toEqual([undefined, 1, 2])
    expect(a.store.get('k')).toBe(2)
    expect(b.errors.map((e) => e.code)).toEqual(['CALLBACK_FAILED', 'CALLBACK_FAILED'])
    expect(b.errors[0]?.cause).toBeInstanceOf(Error)
    expect(a.errors.map((e) => e.code)).toEqual(['CALLBACK_FAILED', 'CALLBACK_FAILED', 'CALLBACK_FAILED'])
  })

  it('an observer may remove another observer, or itself, while being called', async () => {
    const { store } = newStore()
    const calls: string[] = []
    let second: ReturnType<typeof store.observeChanges> | undefined
    const first = store.observeChanges(['k'], (_k, value) => {
      calls.push(`first:${String(value)}`)
      if (value === 1 && second !== undefined) {
        store.removeObserver(second)
        store.removeObserver(first)
      }
    })
    second = store.observeChanges(['k'], (_k, value) => calls.push(`second:${String(value)}`))
    await store.set('k', 1)
    await store.set('k', 2)
    expect(calls).toEqual(['first:undefined', 'second:undefined', 'first:1'])
  })

  it('an observer may write to the store from its callback', async () => {
    const { store } = newStore()
    store.observeChanges(['ping'], (_k, value) => { if (value !== undefined) void store.set('pong', value) })
    await store.set('ping', 7)
    expect(store.get('pong')).toBe(7)
  })

  it('observeAllChanges sees every key: the current ones, then each change, deletes as undefined', async () => {
    const mesh = new Mesh(2)
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await a.store.set('x', 1)
    mesh.flush()
    const seen: unknown[] = []
    const observer = b.store.observeAllChanges((key, value) => seen.push([key, value]))
    expect(observer.keys).toBeNull()
    await a.store.set('y', 2)
    await a.store.delete('x')
    mesh.flush()
    await b.store.set('z', 3)
    expect(seen).toEqual([['x', 1], ['y', 2], ['x', undefined], ['z', 3]])
    expect(b.store.removeObserver(observer)).toBe(true)
    await b.store.set('z', 4)
    expect(seen).toHaveLength(4)
  })

  it('refuses invalid keys', () => {
    const { store } = newStore()
    expect(() => store.observeChanges([''], () => {})).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
    expect(() => store.observeChanges('k' as unknown as string[], () => {})).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
  })
})

describe('between peers', () => {
  it('concurrent writers to one key converge to one winner (last writer wins)', async () => {
    const mesh = new Mesh(3)
    await Promise.all(mesh.replicas.map((r, i) => r.store.set('spotlight', `peer-${i}`)))
    mesh.flush()
    const values = mesh.replicas.map((r) => r.store.get('spotlight'))
    expect(new Set(values).size).toBe(1)
    expect(['peer-0', 'peer-1', 'peer-2']).toContain(values[0])
  })

  it('concurrent writers may push the merged map over maxKeys: the newest key is hidden everywhere, and shown again when room is made', async () => {
    let t = 0
    const mesh = new Mesh(2, { limits: { maxKeys: 4 }, now: () => ++t })
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await a.store.set('shared', 0) // t=1
    mesh.flush()
    await a.store.set('a1', 1) // t=2
    await a.store.set('a2', 2)
    await b.store.set('b1', 1)
    await b.store.set('b2', 2) // t=5: the newest, hidden once merged
    const seen: unknown[] = []
    b.store.observeChanges(['b2'], (_key, value) => seen.push(value))
    mesh.flush()
    for (const r of [a, b]) {
      expect(r.store.toJSON()).toEqual({ shared: 0, a1: 1, a2: 2, b1: 1 })
      expect(r.store.usage()).toMatchObject({ keys: 4, hidden: 1 })
      expect(r.map.has('b2')).toBe(true) // hidden, not dropped
    }
    expect(seen).toEqual([2, undefined])
    expect(await codeOf(a.store.set('a3', 3))).toBe('TOO_MANY_KEYS')
    expect(await codeOf(b.store.set('b2', 'a hidden key is a new key'))).toBe('TOO_MANY_KEYS')
    await expect(a.store.set('a1', 'overwrite is fine')).resolves.toBe('overwrite is fine')
    expect(a.store.get('a1')).toBe('overwrite is fine') // an overwrite keeps its rank: still visible
    await a.store.delete('a1')
    mesh.flush()
    expect(seen).toEqual([2, undefined, 2])
    for (const r of [a, b]) expect(r.store.toJSON()).toEqual({ shared: 0, a2: 2, b1: 1, b2: 2 })
    expect(await codeOf(b.store.set('b3', 3))).toBe('TOO_MANY_KEYS')
    await b.store.delete('b1')
    mesh.flush()
    await expect(b.store.set('b3', 3)).resolves.toBe(3)
  })

  it('concurrent writers may push the merged map over maxTotalBytes: the newcomer is hidden until a shrink makes room', async () => {
    let t = 0
    const mesh = new Mesh(2, { limits: { maxTotalBytes: 100 }, now: () => ++t })
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await a.store.set('a', jsonOfBytes(59)) // 60 bytes with its key, t=1
    await b.store.set('b', jsonOfBytes(59)) // t=2
    mesh.flush()
    for (const r of [a, b]) expect(r.store.usage()).toMatchObject({ keys: 1, bytes: 60, hidden: 1 })
    expect(b.store.has('b')).toBe(false)
    expect(await codeOf(a.store.set('a', jsonOfBytes(100)))).toBe('STORE_TOO_LARGE') // 101 bytes alone
    // A growing write within the visible store's room passes; the hidden entry still does not fit.
    await expect(a.store.set('a', jsonOfBytes(69))).resolves.toBeDefined()
    mesh.flush()
    expect(b.store.usage()).toMatchObject({ bytes: 70, hidden: 1 })
    await expect(a.store.set('a', jsonOfBytes(39))).resolves.toBeDefined() // 40 + 60 = 100: room for b
    mesh.flush()
    for (const r of [a, b]) expect(r.store.usage()).toMatchObject({ keys: 2, bytes: 100, hidden: 0 })
    expect(a.store.get('b')).toHaveLength(57)
    expect(await codeOf(b.store.set('c', 1))).toBe('STORE_TOO_LARGE')
    await expect(b.store.set('b', jsonOfBytes(57))).resolves.toBeDefined()
    await expect(b.store.set('c', 1)).resolves.toBe(1)
  })

  it('an entry from another peer that breaks the per-entry rules is invisible and reported', () => {
    const mesh = new Mesh(2)
    const [hostile, honest] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    const seen: unknown[] = []
    honest.store.observeChanges(['big', 'bin', 'text', 'inf', 'bare', 'ok'], (key, value) => seen.push([key, value]))
    seen.length = 0
    mesh.rawSet(hostile, 'big', envelopeOf('x'.repeat(2000)))
    mesh.rawSet(hostile, 'bin', new Uint8Array([1, 2]))
    mesh.rawSet(hostile, 'text', 'not json {')
    mesh.rawSet(hostile, 'inf', envelopeOf(0).replace('"v":0', '"v":1e400'))
    mesh.rawSet(hostile, 'bare', JSON.stringify({ fine: true })) // JSON text without an envelope
    mesh.rawSet(hostile, 'ok', envelopeOf({ fine: true }))
    mesh.rawSet(hostile, 'k'.repeat(2000), envelopeOf(1))
    mesh.flush()
    expect(honest.store.toJSON()).toEqual({ ok: { fine: true } })
    expect(honest.store.usage()).toMatchObject({ keys: 1, bytes: 2 + '{"fine":true}'.length, hidden: 0 })
    expect(seen).toEqual([['ok', { fine: true }]])
    expect(honest.errors.map((e) => [e.code, e.key?.slice(0, 4)])).toEqual([
      ['INVALID_REMOTE_ENTRY', 'big'],
      ['INVALID_REMOTE_ENTRY', 'bin'],
      ['INVALID_REMOTE_ENTRY', 'text'],
      ['INVALID_REMOTE_ENTRY', 'inf'],
      ['INVALID_REMOTE_ENTRY', 'bare'],
      ['INVALID_REMOTE_ENTRY', 'kkkk']
    ])
  })

  it('reports at most 10 invalid entries of one update one by one, and counts the rest in one more', () => {
    const mesh = new Mesh(2)
    const [hostile, honest] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    mesh.rawSetMany(hostile, Array.from({ length: 1000 }, (_, i) => [`bad${i}`, 'not an envelope'] as const))
    mesh.flush()
    expect(honest.errors).toHaveLength(11)
    expect(honest.errors.every((e) => e.code === 'INVALID_REMOTE_ENTRY')).toBe(true)
    expect(honest.errors[10]?.message).toMatch(/990 more invalid entries/)
    expect(honest.store.keys()).toEqual([])
  })

  it('a valid entry overwritten by an invalid one reads as absent; the honest peer can clean it up', async () => {
    const mesh = new Mesh(2)
    const [hostile, honest] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await honest.store.set('pinned', 'hello')
    mesh.flush()
    const seen: unknown[] = []
    honest.store.observeChanges(['pinned'], (_k, value) => seen.push(value))
    mesh.rawSet(hostile, 'pinned', envelopeOf(42).replace('"at":1', '"at":-1'))
    mesh.flush()
    expect(seen).toEqual(['hello', undefined])
    expect(honest.store.has('pinned')).toBe(false)
    await honest.store.delete('pinned')
    mesh.flush()
    expect(hostile.map.has('pinned')).toBe(false)
  })

  it('a store created over a map that already holds entries sees the valid ones and reports the others', () => {
    const doc = new Y.Doc()
    const map = doc.getMap('session-store')
    map.set('a', envelopeOf(1))
    map.set('b', 'nope')
    map.set('c', '1') // JSON text without an envelope
    const errors: SessionStoreError[] = []
    const store = new SessionStore(map, { onError: (e) => errors.push(e) })
    expect(store.toJSON()).toEqual({ a: 1 })
    expect(errors.map((e) => e.key)).toEqual(['b', 'c'])
  })
})

describe('who wrote what', () => {
  it('entry(key) returns the value, the writer and its clock; the default writer is the doc\'s client id without metadata', async () => {
    const { doc, store } = newStore()
    const before = Date.now()
    await store.set('pinned', { text: 'hi' })
    const entry = store.entry('pinned')
    expect(entry).toEqual({ value: { text: 'hi' }, updatedBy: { id: String(doc.clientID), metadata: null }, updatedAt: expect.any(Number) })
    expect(entry?.updatedAt).toBeGreaterThanOrEqual(before)
    expect(entry?.updatedAt).toBeLessThanOrEqual(Date.now())
    expect(store.entry('missing')).toBeUndefined()
    // A copy, like get: mutating it changes nothing.
    ;(entry?.value as { text: string }).text = 'changed'
    expect(store.get('pinned')).toEqual({ text: 'hi' })
  })

  it('stores the envelope in the map: writer, clock, rank and metadata around the value text', async () => {
    const doc = new Y.Doc()
    const map = doc.getMap('session-store')
    let now = 1_700_000_000_000
    const store = new SessionStore(map, { writer: () => ({ id: 'ada', metadata: { name: 'Ada' } }), now: () => now })
    await store.set('pinned', 'v1')
    expect(map.get('pinned')).toBe('{"by":"ada","at":1700000000000,"since":1700000000000,"m":{"name":"Ada"},"v":"v1"}')
    now += 5
    await store.set('pinned', 'v2')
    expect(map.get('pinned')).toBe('{"by":"ada","at":1700000000005,"since":1700000000000,"m":{"name":"Ada"},"v":"v2"}')
  })

  it('a write is later by its clock than what it replaced, even from a peer whose clock is behind (within ten minutes)', async () => {
    const ahead = new Y.Doc()
    const behind = new Y.Doc()
    const a = new SessionStore(ahead.getMap('session-store'), { now: () => 1_700_000_060_000 })
    const b = new SessionStore(behind.getMap('session-store'), { now: () => 1_700_000_000_000 })
    const sync = (from: Y.Doc, to: Y.Doc): void => { Y.applyUpdate(to, Y.encodeStateAsUpdate(from, Y.encodeStateVector(to))) }
    await a.set('k', 'from the future')
    sync(ahead, behind)
    await b.set('k', 'after it')
    expect(b.entry('k')?.updatedAt).toBe(1_700_000_060_001)
    await b.delete('k')
    await b.set('k', 'after the delete')
    expect(b.entry('k')?.updatedAt).toBe(1_700_000_060_002)
    // A claim further ahead than that is not followed.
    const far = new Y.Doc()
    const late = new Y.Doc()
    await new SessionStore(far.getMap('session-store'), { now: () => 1_700_000_000_000 + 11 * 60_000 }).set('k', 'eleven minutes ahead')
    sync(far, late)
    const d = new SessionStore(late.getMap('session-store'), { now: () => 1_700_000_000_000 })
    await d.set('k', 'mine')
    expect(d.entry('k')?.updatedAt).toBe(1_700_000_000_000)
  })

  it('observers receive the entry as a third argument: undefined when absent, the writer\'s record otherwise', () => {
    let t = 100
    const mesh = new Mesh(2, { now: () => ++t })
    const [a, b] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    const keyed: unknown[] = []
    const all: unknown[] = []
    b.store.observeChanges(['k'], (key, value, entry) => keyed.push([key, value, entry]))
    void a.store.set('k', 1)
    mesh.flush()
    b.store.observeAllChanges((key, value, entry) => all.push([key, value, entry]))
    void a.store.delete('k')
    mesh.flush()
    const record = { value: 1, updatedBy: { id: String(a.doc.clientID), metadata: null }, updatedAt: 101 }
    expect(keyed).toEqual([['k', undefined, undefined], ['k', 1, record], ['k', undefined, undefined]])
    expect(all).toEqual([['k', 1, record], ['k', undefined, undefined]])
  })

  it('updatedBy travels in the entry: other replicas, and late joiners, still know it after the writer left', async () => {
    const mesh = new Mesh(2, { writer: () => ({ id: 'writer-1', metadata: { name: 'Ada' } }) })
    const [writer, stayer] = mesh.replicas as [typeof mesh.replicas[0], typeof mesh.replicas[0]]
    await writer.store.set('pinned', 'Retro at 4pm')
    mesh.flush()
    mesh.disconnect(writer)
    writer.store.close()
    writer.doc.destroy()
    const late = mesh.add('late')
    mesh.reconnect(late)
    for (const r of [stayer, late]) {
      expect(r.store.entry('pinned')).toMatchObject({ value: 'Retro at 4pm', updatedBy: { id: 'writer-1', metadata: { name: 'Ada' } } })
    }
  })

  it('the writer\'s metadata is not counted in the limits', async () => {
    const metadata = { name: 'm'.repeat(1000) } // 1011 bytes of JSON: as large as metadata may be
    const { store } = newStore({ maxTotalBytes: 200 })
    const withMeta = new SessionStore(new Y.Doc().getMap('session-store'), { limits: { maxTotalBytes: 200 }, writer: () => ({ id: '1', metadata }) })
    for (const s of [store, withMeta]) {
      await s.set('a', jsonOfBytes(99))
      await s.set('b', jsonOfBytes(99))
      expect(s.usage()).toMatchObject({ keys: 2, bytes: 200 })
      expect(await codeOf(s.set('c', 1))).toBe('STORE_TOO_LARGE')
    }
    expect(withMeta.entry('a')?.updatedBy.metadata).toEqual(metadata)
  })

  it('refuses a write whose writer is invalid, and changes nothing', async () => {
    const doc = new Y.Doc()
    const map = doc.getMap('session-store')
    let writer: { id: string, metadata: unknown } = { id: 'has space', metadata: null }
    const store = new SessionStore(map, { writer: () => writer as { id: string, metadata: null } })
    expect(await codeOf(store.set('k', 1))).toBe('INVALID_OPTION')
    writer = { id: 'ok', metadata: 'm'.repeat(1100) }
    expect(await codeOf(store.set('k', 1))).toBe('VALUE_TOO_LARGE')
    writer = { id: 'ok', metadata: { when: new Date() } }
    expect(await codeOf(store.set('k', 1))).toBe('INVALID_VALUE')
    expect(map.size).toBe(0)
    const clockless = new SessionStore(new Y.Doc().getMap('session-store'), { now: () => NaN })
    expect(await codeOf(clockless.set('k', 1))).toBe('INVALID_OPTION')
  })
})

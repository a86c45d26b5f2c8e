/**
 * Seeded random convergence (yjs TestConnector style): replicas make random sets and deletes,
 * messages are delivered in random order, replicas disconnect and reconnect; at the end every
 * replica must hold the same document and the same visible store, within the per-entry rules and
 * the whole-store limits.
 * A failure prints its seed; replay it with CONVERGENCE_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { envelopeOf, Mesh } from './helpers/mesh.js'
import { utf8Length } from '../src/store/limits.js'

const LIMITS = { maxValueBytes: 64, maxKeys: 8, maxTotalBytes: 300 }
const KEYS = ['pinned', 'spotlight', 'timer', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']

const randomValue = (gen: prng.PRNG): unknown => {
  switch (prng.int32(gen, 0, 5)) {
    case 0: return prng.int32(gen, -1000, 1000)
    case 1: return prng.word(gen, 0, 70) // sometimes over maxValueBytes: refused
    case 2: return prng.bool(gen)
    case 3: return null
    case 4: return { n: prng.int32(gen, 0, 9), s: prng.utf16String(gen, 6) }
    default: return [prng.real53(gen), prng.word(gen, 0, 4)]
  }
}

const runSeed = async (seed: number): Promise<void> => {
  const gen = prng.create(seed)
  const mesh = new Mesh(prng.int32(gen, 3, 5), { limits: LIMITS }, gen)
  for (let step = 0; step < 300; step++) {
    const replica = prng.oneOf(gen, mesh.replicas)
    const roll = prng.int32(gen, 0, 99)
    if (roll < 45) {
      await replica.store.set(prng.oneOf(gen, KEYS), randomValue(gen)).catch(() => {}) // refusals are expected
    } else if (roll < 60) {
      await replica.store.delete(prng.oneOf(gen, KEYS))
    } else if (roll < 63) {
      if (replica.online) mesh.disconnect(replica)
      else mesh.reconnect(replica)
    } else if (roll < 66 && replica.online) {
      // A hostile write: invalid, or a valid-looking envelope claiming any writer and rank.
      const raw = prng.oneOf(gen, ['x'.repeat(100), 12, envelopeOf(randomValue(gen), { by: 'mallory', at: prng.int32(gen, 0, 1e9), since: prng.int32(gen, 0, 1e9) })])
      mesh.rawSet(replica, prng.oneOf(gen, KEYS), raw)
    } else {
      for (let n = prng.int32(gen, 0, 5); n > 0; n--) mesh.deliverRandom()
    }
  }
  for (const replica of mesh.replicas) if (!replica.online) mesh.reconnect(replica)
  mesh.flush()

  const [first, ...rest] = mesh.replicas
  if (first === undefined) throw new Error('no replicas')
  const expected = first.store.toJSON()
  for (const replica of rest) {
    expect(Y.encodeStateVector(replica.doc)).toEqual(Y.encodeStateVector(first.doc))
    expect(replica.map.toJSON()).toEqual(first.map.toJSON())
    expect(replica.store.toJSON()).toEqual(expected)
    expect(replica.store.keys()).toEqual(first.store.keys()) // in the same order
    expect(replica.store.usage()).toEqual(first.store.usage())
  }
  const { keys, bytes } = first.store.usage()
  expect(keys).toBeLessThanOrEqual(LIMITS.maxKeys)
  expect(bytes).toBeLessThanOrEqual(LIMITS.maxTotalBytes)
  for (const [key, value] of Object.entries(expected)) {
    expect(utf8Length(JSON.stringify(value))).toBeLessThanOrEqual(LIMITS.maxValueBytes)
    expect(first.store.get(key)).toEqual(value)
  }
}

describe('convergence under random operations, delivery order and disconnects', () => {
  const fixed = process.env.CONVERGENCE_SEED
  const base = fixed !== undefined ? Number(fixed) : (Date.now() % 1_000_000)
  const seeds = fixed !== undefined ? [base] : Array.from({ length: 40 }, (_, i) => base + i)
  it(`all replicas end identical and within the limits (seeds ${seeds[0]}..${seeds.at(-1)})`, async () => {
    for (const seed of seeds) {
      try {
        await runSeed(seed)
      } catch (err) {
        console.error(`convergence failed with seed ${seed}; replay with CONVERGENCE_SEED=${seed}`)
        throw err
      }
    }
  })
})

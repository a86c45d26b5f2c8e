/**
 * Seeded random convergence (yjs TestConnector style): replicas make random sets and deletes,
 * messages are delivered in random order, replicas disconnect and reconnect; at the end every
 * replica must hold the same document and the same visible store, within the per-entry rules and
 * the whole-store limits. Twice: with updates handed between documents directly (the store's
 * semantics), and through the data plane (epochs.ts and replication.ts over the memory link: state
 * diffs per turn, the relay rule, messages lost when a connection closes, V2 resync, state checks,
 * and moves to new epochs at random points, by random peers, around the disconnects). Through the
 * data plane, no write is lost: each key's last write is what it ends holding, unless a writer
 * overwrote it having seen it or a concurrent write was ordered after it; and no write comes back
 * that a writer overwrote or deleted having seen it (a carried copy of it: src/PROTOCOL.md, "The
 * latest rule").
 * A failure prints its seed; replay it with CONVERGENCE_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { Awareness } from 'y-protocols/awareness'
import { envelopeOf, Mesh } from './helpers/mesh.js'
import { Epochs } from '../src/epochs.js'
import { decodeEnvelope } from '../src/store/envelope.js'
import { compareEpochs, sessionClientId } from '../src/store/epochs.js'
import { resolveLimits, utf8Length } from '../src/store/limits.js'
import { SessionStore } from '../src/store/store.js'
import type { Link } from '../src/transport/link.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { Replication } from '../src/transport/replication.js'
import { createIdentity } from '../src/trust/identity.js'

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

interface WireReplica {
  link: ReturnType<MemoryHub['link']>
  epochs: Epochs
  store: SessionStore
}

const mapOf = (replica: WireReplica): Y.Map<unknown> => replica.epochs.doc.getMap('session-store')

/** Moves made through the data plane, over all seeds: some must be. */
let movesMade = 0

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** The same random operations, with every message through the data plane and delivered at random. */
const runWireSeed = async (seed: number): Promise<void> => {
  const gen = prng.create(seed)
  const hub = new MemoryHub({ manual: true })
  const replicas: WireReplica[] = []
  // Every write's text is unique (a clock that only grows), so a text names one write.
  let clock = 1_700_000_000_000
  const now = (): number => ++clock
  for (let i = prng.int32(gen, 3, 5); i > 0; i--) {
    const link = hub.link('convergence', { signaling: [], peerOpts: {}, identity: createIdentity() })
    const base = new Y.Doc()
    base.clientID = sessionClientId(base.clientID)
    const awareness = new Awareness(base)
    awareness.setLocalState({ n: i })
    const epochs = new Epochs({
      link,
      root: 'session-store',
      limits: resolveLimits(LIMITS),
      clientId: base.clientID,
      replicate: (doc, view) => new Replication(doc, awareness, view as unknown as Link, { antiEntropyInterval: 0, bridge: false }),
      protected: false,
      compactAfter: 0
    })
    const store = new SessionStore(epochs.doc.getMap('session-store'), { limits: LIMITS, onError: () => {}, now, inherited: (client, key, text) => epochs.inherited(client, key, text), epochs: (controls) => epochs.attach(controls) })
    replicas.push({ link, epochs, store })
  }
  await Promise.all(replicas.map(async ({ link }) => await link.ready))
  await new Promise((resolve) => setTimeout(resolve, 0)) // the links join
  const deliverSome = (n: number): void => {
    for (; n > 0 && hub.waiting.size > 0; n--) hub.deliver(prng.oneOf(gen, Array.from(hub.waiting)))
  }
  /**
   * Per key: the texts of acknowledged writes; the texts some writer had in its map and overwrote
   * with a write; and
   * the texts any replica's map (of any epoch) replaced, by a later write or delete or a concurrent
   * one that Yjs ordered after them.
   */
  const written = new Map<string, Set<string>>()
  const overwritten = new Map<string, Set<string>>()
  /** Per key: the texts a writer had in its map and deleted. */
  const deleted = new Map<string, Set<string>>()
  const replaced = new Map<string, Set<string>>()
  const watch = (map: Y.Map<unknown>): void => {
    map.observe((event) => {
      for (const [key, change] of event.changes.keys) if (change.action !== 'add') record(replaced, key, change.oldValue)
    })
  }
  for (const replica of replicas) {
    watch(mapOf(replica))
    replica.epochs.on('moved', () => watch(mapOf(replica)))
  }
  const raw = new Set<string>()
  /** Per key: the clock of its last write, delete or hostile write (the test's clock orders them all). */
  const last = new Map<string, number>()
  const record = (into: Map<string, Set<string>>, key: string, text: unknown): void => {
    if (typeof text !== 'string') return
    let set = into.get(key)
    if (set === undefined) into.set(key, set = new Set())
    set.add(text)
  }
  /** What `replica`'s map holds under `key` (visible or hidden by the limits): what a write there replaces. */
  const seen = (replica: WireReplica, key: string): unknown => mapOf(replica).get(key)
  let moves = 0
  for (let step = 0; step < 300; step++) {
    const replica = prng.oneOf(gen, replicas)
    const roll = prng.int32(gen, 0, 99)
    if (roll < 40) {
      const key = prng.oneOf(gen, KEYS)
      const before = seen(replica, key)
      const ok = await replica.store.set(key, randomValue(gen)).then(() => true, () => false)
      if (ok) {
        record(overwritten, key, before)
        record(written, key, mapOf(replica).get(key))
        last.set(key, clock)
      }
    } else if (roll < 50) {
      const key = prng.oneOf(gen, KEYS)
      const before = seen(replica, key)
      last.set(key, now())
      await replica.store.delete(key)
      record(deleted, key, before)
    } else if (roll < 52) {
      // A move at a random point, by a random peer: concurrent moves, from partitions too.
      replica.epochs.move()
      moves++
    } else if (roll < 55) {
      const connections = replica.link.connections
      if (connections.length > 0) prng.oneOf(gen, [...connections]).close() // what was in flight to it is lost
    } else if (roll < 58) {
      replica.link.connect(prng.oneOf(gen, replicas).link.localId as string)
    } else if (roll < 61) {
      const key = prng.oneOf(gen, KEYS)
      record(overwritten, key, seen(replica, key))
      raw.add(key)
      last.set(key, now())
      replica.epochs.doc.transact(() => mapOf(replica).set(key, prng.bool(gen) ? 'x'.repeat(100) : 12), 'hostile')
    } else if (roll < 66) {
      await nextTurn() // collected updates go out
    } else if (roll < 70) {
      replica.epochs.check()
    } else {
      deliverSome(prng.int32(gen, 0, 5))
    }
  }
  // The end: everyone connected to everyone, or only in a ring (then what each holds must cross
  // by relaying syncs and by state checks), every message delivered, until nothing moves.
  const ring = prng.bool(gen)
  const neighbours = (i: number): number[] => ring ? [(i + 1) % replicas.length, (i + replicas.length - 1) % replicas.length] : replicas.map((_r, j) => j).filter((j) => j !== i)
  for (const [i, replica] of replicas.entries()) {
    const wanted = new Set(neighbours(i).map((j) => replicas[j]?.link.localId))
    for (const connection of [...replica.link.connections]) if (!wanted.has(connection.remoteId)) connection.close()
    for (const id of wanted) replica.link.connect(id as string)
  }
  let checks = 3
  for (let quiet = 0, rounds = 0; rounds < 10_000; rounds++) {
    await nextTurn()
    if (hub.waiting.size > 0) {
      quiet = 0
      deliverSome(hub.waiting.size * 50)
    } else if (++quiet >= 3) {
      if (checks-- === 0) break
      for (const replica of replicas) replica.epochs.check()
    }
  }
  const [first, ...rest] = replicas
  if (first === undefined) throw new Error('no replicas')
  for (const replica of rest) {
    expect(replica.link.connections).toHaveLength(ring ? Math.min(2, replicas.length - 1) : replicas.length - 1)
    expect(compareEpochs(replica.epochs.epoch, first.epochs.epoch)).toBe(0)
    expect(Y.encodeStateVector(replica.epochs.doc)).toEqual(Y.encodeStateVector(first.epochs.doc))
    expect(mapOf(replica).toJSON()).toEqual(mapOf(first).toJSON())
    expect(replica.store.toJSON()).toEqual(first.store.toJSON())
    expect(replica.store.usage()).toEqual(first.store.usage())
  }
  // No acknowledged write lost: each key holds a write someone made, and its last write (by the
  // test's clock) is what it holds, unless a writer overwrote it having seen it or some map
  // replaced it (a concurrent write ordered after it), or a hostile write won.
  const final = mapOf(first)
  const limits = resolveLimits(LIMITS)
  for (const key of KEYS) {
    const text = final.get(key)
    const valid = typeof decodeEnvelope(key, text, limits) !== 'string'
    if (valid) expect(written.get(key)?.has(text as string), `'${key}' holds a text no one wrote`).toBe(true)
    if (raw.has(key)) continue
    // Nor does a write come back that a writer overwrote, or deleted, having seen it (a carry's copy of it).
    if (valid) expect(overwritten.get(key)?.has(text as string) === true, `'${key}' holds a write that was overwritten by a writer that saw it`).toBe(false)
    if (valid) expect(deleted.get(key)?.has(text as string) === true, `'${key}' holds a write that was deleted by a writer that saw it`).toBe(false)
    const latest = [...(written.get(key) ?? [])].find((t) => (decodeEnvelope(key, t, limits) as { at: number }).at >= (last.get(key) ?? 0))
    if (latest !== undefined && latest !== text) {
      expect(overwritten.get(key)?.has(latest) === true || replaced.get(key)?.has(latest) === true, `'${key}' lost its last write`).toBe(true)
    }
  }
  movesMade += moves
  for (const replica of replicas) {
    replica.store.close()
    replica.epochs.destroy()
    await replica.link.leave()
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

  it(`the same through the data plane, messages delivered at random (seeds ${seeds[0]}..${seeds.at(Math.min(19, seeds.length - 1))})`, async () => {
    for (const seed of seeds.slice(0, 20)) {
      try {
        await runWireSeed(seed)
      } catch (err) {
        console.error(`convergence through the data plane failed with seed ${seed}; replay with CONVERGENCE_SEED=${seed}`)
        throw err
      }
    }
    expect(movesMade).toBeGreaterThan(0)
  })
})

/**
 * One behaviour suite, two transports (automerge-repo's runNetworkAdapterTests): the store
 * behaviours that matter across peers, written once against `SuitePeer`, and run over the
 * in-memory link (test/behaviour-memory.test.ts) and over real WebRTC between processes
 * (test/behaviour-webrtc.test.ts).
 */
import { isDeepStrictEqual } from 'node:util'
import { describe, expect, it } from 'vitest'
import { waitFor } from './wait.js'

export interface Joined {
  sync: string
  json: Record<string, unknown>
}

/** A peer of the suite, whatever carries its messages. */
export interface SuitePeer {
  readonly joined: Joined
  set: (key: string, value: unknown) => Promise<unknown>
  delete: (key: string) => Promise<void>
  toJSON: () => Promise<Record<string, unknown>>
  usage: () => Promise<{ keys: number, bytes: number }>
  /** Starts recording the changes of `keys` seen by an observer. */
  observe: (keys: string[]) => Promise<void>
  /** The changes recorded so far, in the order the observer saw them. */
  changes: () => Promise<Array<{ key: string, value: unknown }>>
  /** A set that is expected to be refused: resolves its error code. */
  refusedSet: (key: string, value: unknown) => Promise<string>
  /** Writes `writes` in one go, each without waiting, and leaves in the same turn. */
  writeAndLeave: (writes: Array<{ key: string, value: unknown }>) => Promise<void>
  leave: () => Promise<void>
}

export interface Transport {
  /** A room name no other test uses, reachable by every peer of this transport. */
  room: () => Promise<string>
  join: (name: string, room: string, options?: Record<string, unknown>) => Promise<SuitePeer>
}

const eventually = async (peer: SuitePeer, expected: Record<string, unknown>, what: string): Promise<void> => {
  let last: unknown
  try {
    await waitFor(async () => isDeepStrictEqual(last = await peer.toJSON(), expected), { timeout: 15_000, interval: 20, what })
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`)
  }
}

export const runStoreBehaviourTests = (name: string, transport: () => Transport): void => {
  describe(`store behaviour across peers (${name})`, () => {
    it('syncs both ways, deletes included', async () => {
      const t = transport()
      const room = await t.room()
      const a = await t.join('a', room)
      expect(a.joined.sync).toBe('alone')
      await a.set('pinned', { text: 'hello' })
      const b = await t.join('b', room)
      expect(b.joined).toEqual({ sync: 'synced', json: { pinned: { text: 'hello' } } })
      await b.set('spotlight', 'b')
      await eventually(a, { pinned: { text: 'hello' }, spotlight: 'b' }, 'a to see b\'s write')
      await a.delete('pinned')
      await eventually(b, { spotlight: 'b' }, 'b to see the delete')
    })

    it('gives a late joiner the full state', async () => {
      const t = transport()
      const room = await t.room()
      const a = await t.join('a', room)
      const b = await t.join('b', room)
      const expected: Record<string, unknown> = {}
      for (let i = 0; i < 40; i++) {
        expected[`k${i}`] = { i, text: 'x'.repeat(200) }
        await (i % 2 === 0 ? a : b).set(`k${i}`, expected[`k${i}`])
      }
      await eventually(a, expected, 'a to hold every key')
      const late = await t.join('late', room)
      expect(late.joined.sync).toBe('synced')
      expect(late.joined.json).toEqual(expected)
    })

    it('calls observers with the initial value, then every remote change, in order', async () => {
      const t = transport()
      const room = await t.room()
      const a = await t.join('a', room)
      await a.set('timer', 10)
      const b = await t.join('b', room)
      await b.observe(['timer'])
      for (let v = 9; v >= 0; v--) await a.set('timer', v)
      await eventually(b, { timer: 0 }, 'b to see the last tick')
      const seen = (await b.changes()).map((c) => c.value)
      expect(seen[0]).toBe(10)
      expect(seen.at(-1)).toBe(0)
      expect(seen).toEqual([...seen].sort((x, y) => Number(y) - Number(x)))
    })

    it('converges when several peers write the same keys at once', async () => {
      const t = transport()
      const room = await t.room()
      const peers = [await t.join('a', room), await t.join('b', room), await t.join('c', room)]
      await Promise.all(peers.map(async (p, i) => {
        for (let n = 0; n < 20; n++) await p.set(`k${n % 4}`, { by: i, n })
      }))
      await waitFor(async () => {
        const states = await Promise.all(peers.map(async (p) => JSON.stringify(await p.toJSON())))
        return states.every((s) => s === states[0]) && Object.keys(JSON.parse(states[0] as string) as object).length === 4
      }, { timeout: 15_000, interval: 20, what: 'every replica to hold the same four keys' })
    })

    it('applies the limits the same on every peer', async () => {
      const t = transport()
      const room = await t.room()
      const limits = { maxKeys: 5 }
      const a = await t.join('a', room, { limits })
      const b = await t.join('b', room, { limits })
      for (let i = 0; i < 5; i++) await a.set(`k${i}`, i)
      await eventually(b, { k0: 0, k1: 1, k2: 2, k3: 3, k4: 4 }, 'b to hold five keys')
      expect(await b.refusedSet('k5', 5)).toBe('TOO_MANY_KEYS')
      expect(await a.refusedSet('k5', 5)).toBe('TOO_MANY_KEYS')
      await b.set('k0', 'overwrites still work at the limit')
      await eventually(a, { k0: 'overwrites still work at the limit', k1: 1, k2: 2, k3: 3, k4: 4 }, 'a to see the overwrite')
      expect(await a.usage()).toEqual(await b.usage())
    })

    it('delivers the writes a peer made in the turn it left in', async () => {
      const t = transport()
      const room = await t.room()
      const a = await t.join('a', room)
      const b = await t.join('b', room)
      await a.set('before', 1)
      await eventually(b, { before: 1 }, 'b to see a\'s first write')
      const writes = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 10}`, value: { i } }))
      await a.writeAndLeave(writes)
      const expected: Record<string, unknown> = { before: 1 }
      for (const { key, value } of writes) expected[key] = value
      await eventually(b, expected, 'b to hold every write a made before leaving')
    })

    it('keeps the room for those who stay when one peer leaves', async () => {
      const t = transport()
      const room = await t.room()
      const a = await t.join('a', room)
      const b = await t.join('b', room)
      const c = await t.join('c', room)
      await c.set('from-c', 1)
      await eventually(a, { 'from-c': 1 }, 'a to see c')
      await c.leave()
      await b.set('after', true)
      await eventually(a, { 'from-c': 1, after: true }, 'a to see b after c left')
    })
  })
}

/**
 * The store's side of locks (store.lock): while a key is locked, only its holder's writes count,
 * on every honest peer; others' writes are refused (LOCKED) or, from a modified client, ignored and
 * written over with the holder's value; a write under an older fencing token never counts. The
 * lock state here is a stand-in for the arbiter's (locks/arbiter-client.ts feeds the real one).
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ErrorCodes } from '../src/errors.js'
import { joinRoom } from '../src/session.js'
import { encodeEnvelope } from '../src/store/envelope.js'
import { SessionStore, type LockRules } from '../src/store/store.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { waitFor } from './helpers/wait.js'

const MAP = 'session-store'

/** The room's lock table as every peer learns it, and each peer's view of it. */
class Locks {
  readonly table = new Map<string, { holder: string, fencingToken: number }>()
  readonly clients = new Map<string, number>()
  rulesFor (self: string): LockRules {
    return { holder: (key) => this.table.get(key) ?? null, self: () => self, clientOf: (peer) => this.clients.get(peer) }
  }
}

const connect = (...docs: Y.Doc[]): void => {
  for (const doc of docs) {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'net') return
      for (const other of docs) if (other !== doc) Y.applyUpdate(other, update, 'net')
    })
  }
}

const room = (locks: Locks, names: string[]) => names.map((name) => {
  const doc = new Y.Doc()
  locks.clients.set(name, doc.clientID)
  const store = new SessionStore(doc.getMap(MAP), { locks: locks.rulesFor(name), restoreDelay: 20 })
  return { name, doc, store, map: doc.getMap(MAP) }
})

describe('a locked key in an open room', () => {
  it('only the holder may write it; its writes carry the fencing token; after release anyone may', async () => {
    const locks = new Locks()
    const [a, b, c] = room(locks, ['a', 'b', 'c']) as [ReturnType<typeof room>[0], ReturnType<typeof room>[0], ReturnType<typeof room>[0]]
    connect(a.doc, b.doc, c.doc)
    await a.store.set('votes', 0)
    locks.table.set('votes', { holder: 'a', fencingToken: 7 })
    await expect(b.store.set('votes', 99)).rejects.toMatchObject({ code: ErrorCodes.LOCKED })
    await expect(b.store.delete('votes')).rejects.toMatchObject({ code: ErrorCodes.LOCKED })
    await a.store.set('votes', 1)
    expect(a.map.get('votes')).toMatch(/"lk":7,/)
    expect(c.store.get('votes')).toBe(1)
    locks.table.delete('votes')
    await b.store.set('votes', 2)
    expect(a.store.get('votes')).toBe(2)
  })

  it('a modified client writing to the locked key through the document is ignored, and the holder\'s value restored', async () => {
    const locks = new Locks()
    const [a, b, c] = room(locks, ['a', 'b', 'c']) as [ReturnType<typeof room>[0], ReturnType<typeof room>[0], ReturnType<typeof room>[0]]
    connect(a.doc, b.doc, c.doc)
    locks.table.set('votes', { holder: 'a', fencingToken: 7 })
    await a.store.set('votes', 1)
    const holders = a.map.get('votes')
    const now = Date.now()
    for (const raw of [
      encodeEnvelope('b', now, now, 'null', '99'), // no fencing token
      encodeEnvelope('b', now, now, 'null', '99', { lock: 7 }), // the holder's token, copied: the item is b's
      encodeEnvelope('b', now, now, 'null', 'null', { lock: 7, deleted: true })
    ]) {
      b.map.set('votes', raw)
      expect(a.store.get('votes')).toBe(1)
      expect(c.store.get('votes')).toBe(1)
      await waitFor(() => [a, b, c].every((p) => p.map.get('votes') === holders), { timeout: 2000, what: 'the holder\'s entry restored' })
    }
    b.map.delete('votes') // a raw delete
    await waitFor(() => [a, b, c].every((p) => p.map.get('votes') === holders), { timeout: 2000, what: 'the holder\'s entry restored after a delete' })
    expect(c.store.get('votes')).toBe(1)
  })

  it('a write under an older fencing token never counts, also after the lock ended', async () => {
    const locks = new Locks()
    const [a, b] = room(locks, ['a', 'b']) as [ReturnType<typeof room>[0], ReturnType<typeof room>[0]]
    connect(a.doc, b.doc)
    locks.table.set('votes', { holder: 'a', fencingToken: 3 })
    await a.store.set('votes', 'by a under 3')
    locks.table.set('votes', { holder: 'b', fencingToken: 4 })
    await b.store.set('votes', 'by b under 4')
    locks.table.delete('votes')
    // a, paused through its lease, writes late under 3: the others have seen 4.
    const now = Date.now()
    a.map.set('votes', encodeEnvelope('a', now, now, 'null', '"stale"', { lock: 3 }))
    await waitFor(() => b.store.get('votes') === 'by b under 4' && a.map.get('votes') !== undefined && !String(a.map.get('votes')).includes('stale'), { timeout: 2000, what: 'the stale write undone' })
  })

  it('the holder deletes with a tombstone the others accept; unlocked, a delete is a plain delete', async () => {
    const locks = new Locks()
    const [a, b] = room(locks, ['a', 'b']) as [ReturnType<typeof room>[0], ReturnType<typeof room>[0]]
    connect(a.doc, b.doc)
    await a.store.set('k', 1)
    locks.table.set('k', { holder: 'a', fencingToken: 1 })
    await a.store.delete('k')
    expect(b.store.has('k')).toBe(false)
    expect(a.map.has('k')).toBe(true)
    locks.table.delete('k')
    await b.store.set('k', 2)
    await b.store.delete('k')
    expect(a.map.has('k')).toBe(false)
    expect(a.store.has('k')).toBe(false)
  })
})

/**
 * The lock table with grants: the arbiter signs `grant <key> <token> <holder>` (a stand-in for its
 * JWS), and a peer checks a grant it was not told of, as locks/room-locks.ts `grantHolder` does.
 */
class SignedLocks extends Locks {
  readonly grants = new Set<string>()
  give (key: string, holder: string, fencingToken: number): string {
    this.table.set(key, { holder, fencingToken })
    const grant = `grant.${key}.${fencingToken}.${holder}`
    this.grants.add(grant)
    return grant
  }

  override rulesFor (self: string, told: () => boolean = () => true): LockRules {
    return {
      holder: (key) => told() ? this.table.get(key) ?? null : null,
      self: () => self,
      clientOf: (peer) => this.clients.get(peer),
      grant: (key, fencingToken) => {
        const lock = this.table.get(key)
        return lock?.holder === self && lock.fencingToken === fencingToken ? `grant.${key}.${fencingToken}.${self}` : undefined
      },
      grantHolder: async (key, fencingToken, grant) => {
        if (!this.grants.has(grant)) return null
        const [, k, token, holder] = grant.split('.')
        return k === key && Number(token) === fencingToken ? holder as string : null
      }
    }
  }
}

describe('a lease a peer was not told of', () => {
  const signedRoom = (locks: SignedLocks, names: string[], told: Record<string, () => boolean> = {}) => names.map((name) => {
    const doc = new Y.Doc()
    locks.clients.set(name, doc.clientID)
    const store = new SessionStore(doc.getMap(MAP), { locks: locks.rulesFor(name, told[name]), restoreDelay: 20 })
    return { name, doc, store, map: doc.getMap(MAP) }
  })
  type Peer = ReturnType<typeof signedRoom>[0]

  it('a made-up fencing token above the holder\'s does not count, with or without a grant', async () => {
    const locks = new SignedLocks()
    const [a, b, c] = signedRoom(locks, ['a', 'b', 'c']) as [Peer, Peer, Peer]
    connect(a.doc, b.doc, c.doc)
    locks.give('votes', 'a', 7)
    await a.store.set('votes', 1)
    const holders = a.map.get('votes')
    expect(holders).toContain('"lk":7,"lg":"grant.votes.7.a",')
    const now = Date.now()
    for (const raw of [
      encodeEnvelope('b', now, now, 'null', '99', { lock: 8 }),
      encodeEnvelope('b', now, now, 'null', '99', { lock: 8, grant: 'grant.votes.8.b' }), // not the arbiter's
      encodeEnvelope('b', now, now, 'null', '99', { lock: 8, grant: 'grant.votes.7.a' }) // the holder's, for another token
    ]) {
      b.map.set('votes', raw)
      await waitFor(() => [a, b, c].every((p) => p.map.get('votes') === holders), { timeout: 2000, what: 'the holder\'s entry restored' })
      expect(c.store.get('votes')).toBe(1)
    }
    // The holder's writes still count: no fence was raised by the made-up token.
    await a.store.set('votes', 2)
    expect(c.store.get('votes')).toBe(2)
  })

  it('a made-up huge fencing token on a free key does not count, and does not shut out the next holder', async () => {
    const locks = new SignedLocks()
    const [a, b, c] = signedRoom(locks, ['a', 'b', 'c']) as [Peer, Peer, Peer]
    connect(a.doc, b.doc, c.doc)
    const now = Date.now()
    b.map.set('votes', encodeEnvelope('b', now, now, 'null', '99', { lock: Number.MAX_SAFE_INTEGER, grant: 'grant.votes.9007199254740991.b' }))
    await waitFor(() => c.map.get('votes') === undefined || c.store.get('votes') === undefined, { timeout: 2000 })
    expect(c.store.get('votes')).toBeUndefined()
    locks.give('votes', 'a', 7)
    await a.store.set('votes', 1)
    expect(c.store.get('votes')).toBe(1)
    locks.table.delete('votes')
    await b.store.set('votes', 3)
    expect(c.store.get('votes')).toBe(3)
  })

  it('a real lease not told yet (its grant checked), or before this peer came (history), counts with its grant', async () => {
    const locks = new SignedLocks()
    let told = false
    const [a, c] = signedRoom(locks, ['a', 'c'], { c: () => told }) as [Peer, Peer]
    connect(a.doc, c.doc)
    locks.give('votes', 'a', 7)
    await a.store.set('votes', 1)
    await waitFor(() => c.store.get('votes') === 1, { timeout: 2000, what: 'the write under a lease c was not told of' })
    // A joiner that never heard of lease 7 reads the entry written under it.
    told = true
    const joiner = new Y.Doc()
    const store = new SessionStore(joiner.getMap(MAP), { locks: locks.rulesFor('d', () => false), restoreDelay: 20 })
    Y.applyUpdate(joiner, Y.encodeStateAsUpdate(a.doc), 'net')
    await store.settled()
    expect(store.get('votes')).toBe(1)
  })
})

describe('a lock handoff', () => {
  it('update reads the previous holder\'s last write once it is judged, also while its grant is being checked', async () => {
    const locks = new SignedLocks()
    const slow = (rules: LockRules): LockRules => ({
      ...rules,
      grantHolder: async (key, fencingToken, grant) => {
        await new Promise((resolve) => setTimeout(resolve, 50)) // a slow check (WebCrypto under load)
        return await rules.grantHolder?.(key, fencingToken, grant)
      }
    })
    const aDoc = new Y.Doc()
    const cDoc = new Y.Doc()
    locks.clients.set('a', aDoc.clientID)
    locks.clients.set('c', cDoc.clientID)
    let told = false
    const aStore = new SessionStore(aDoc.getMap(MAP), { locks: locks.rulesFor('a'), restoreDelay: 20 })
    const cRules = slow(locks.rulesFor('c', () => told))
    const service = {
      ...cRules,
      acquire: async (key: string) => {
        told = true
        const lock = { key, holder: 'c', fencingToken: 8, expiresAt: Date.now() + 10_000, held: true, release: async () => { locks.table.delete(key) } }
        locks.give(key, 'c', 8)
        return lock
      },
      revoke: async () => {},
      caughtUp: async () => {},
      expiresAt: () => null
    }
    const cStore = new SessionStore(cDoc.getMap(MAP), { locks: service, restoreDelay: 20 })
    locks.give('votes', 'a', 7)
    await aStore.set('votes', 41)
    locks.table.delete('votes')
    // a's last write under lease 7 arrives (c was never told of 7), then c updates under 8.
    Y.applyUpdate(cDoc, Y.encodeStateAsUpdate(aDoc), 'net')
    expect(await cStore.update('votes', (n) => Number(n ?? 0) + 1)).toBe(42)
  })

  it('a write of the previous lease that arrives after the next grant still counts, until a write under the next lease is seen', async () => {
    const locks = new Locks()
    const past = new Map<number, string>([[5, 'a'], [6, 'b']])
    const rules = (self: string): LockRules => ({ ...locks.rulesFor(self), pastHolder: (_key, fencing) => past.get(fencing) })
    const aDoc = new Y.Doc()
    const cDoc = new Y.Doc()
    const aStore = new SessionStore(aDoc.getMap(MAP), { locks: rules('a'), restoreDelay: 20 })
    const cStore = new SessionStore(cDoc.getMap(MAP), { locks: rules('c'), restoreDelay: 20 })
    locks.clients.set('a', aDoc.clientID)
    locks.table.set('votes', { holder: 'a', fencingToken: 5 })
    await aStore.set('votes', 1)
    // a's write reaches c only after c heard that b holds lease 6.
    locks.table.set('votes', { holder: 'b', fencingToken: 6 })
    Y.applyUpdate(cDoc, Y.encodeStateAsUpdate(aDoc), 'net')
    expect(cStore.get('votes')).toBe(1)
    // Once a write under 6 is seen, a write under 5 no longer counts.
    const now = Date.now()
    cDoc.getMap(MAP).set('votes', encodeEnvelope('b', now, now, 'null', '2', { lock: 6 }))
    expect(cStore.get('votes')).toBe(2)
    aDoc.getMap(MAP).set('votes', encodeEnvelope('a', now, now, 'null', '99', { lock: 5 }))
    Y.applyUpdate(cDoc, Y.encodeStateAsUpdate(aDoc), 'net')
    expect(cStore.get('votes')).toBe(2)
  })
})

describe('a room without an arbiter', () => {
  it('lock, update and revokeLock reject LOCK_UNAVAILABLE; the store itself keeps working', async () => {
    const hub = new MemoryHub()
    const ada = joinRoom('no-arbiter', {}, { link: hub.link })
    const bob = joinRoom('no-arbiter', {}, { link: hub.link })
    const [adaStore, bobStore] = await Promise.all([ada.sessionStore, bob.sessionStore])
    await expect(adaStore.lock('votes', { ttl: 10_000 })).rejects.toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
    await expect(adaStore.update('votes', (n) => (Number(n ?? 0)) + 1, { wait: 0 })).rejects.toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
    await expect(adaStore.revokeLock('votes')).rejects.toMatchObject({ code: ErrorCodes.LOCK_UNAVAILABLE })
    expect(adaStore.lockHolder('votes')).toBeNull()
    await adaStore.set('votes', 1)
    await waitFor(() => bobStore.get('votes') === 1, { what: 'the write without a lock to arrive' })
    await Promise.all([ada.leave(), bob.leave()])
  })
})

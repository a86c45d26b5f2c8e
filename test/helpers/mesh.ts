/**
 * An in-memory network of Yjs replicas, in the style of yjs's TestConnector: updates are queued
 * per receiver and delivered when the test says so (all at once, or one random message at a time),
 * and replicas can be disconnected and reconnected. It lets the facade be tested between peers
 * without WebRTC, deterministically for a given seed.
 */

import * as Y from 'yjs'
import * as prng from 'lib0/prng'
import { SessionStore, type StoreOptions } from '../../src/store/store.js'
import { encodeEnvelope } from '../../src/store/envelope.js'
import type { SessionStoreError } from '../../src/errors.js'

export const REMOTE = Symbol('remote')

/**
 * The raw text of a valid-looking entry (the envelope an honest writer stores), for hostile writes
 * that pass the per-entry rules: `by` the claimed writer, `at` its clock, `since` the rank.
 */
export const envelopeOf = (value: unknown, { by = '1', at = 1, since, metadata = null }: { by?: string, at?: number, since?: number, metadata?: unknown } = {}): string =>
  encodeEnvelope(by, at, since ?? at, JSON.stringify(metadata), JSON.stringify(value))

export interface Replica {
  name: string
  doc: Y.Doc
  map: Y.Map<unknown>
  store: SessionStore
  errors: SessionStoreError[]
  online: boolean
}

export class Mesh {
  readonly replicas: Replica[] = []
  /** Pending updates per receiver, in send order. */
  private readonly inbox = new Map<Replica, Array<{ from: Replica, update: Uint8Array }>>()

  constructor (count: number, options: StoreOptions = {}, readonly gen = prng.create(1)) {
    for (let i = 0; i < count; i++) this.add(String.fromCharCode(97 + i), options)
  }

  add (name: string, options: StoreOptions = {}): Replica {
    const doc = new Y.Doc()
    const map = doc.getMap<unknown>('session-store')
    const errors: SessionStoreError[] = []
    const store = new SessionStore(map, { ...options, onError: (err) => errors.push(err) })
    const replica: Replica = { name, doc, map, store, errors, online: true }
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === REMOTE || !replica.online) return
      for (const other of this.replicas) {
        if (other !== replica && other.online) this.inbox.get(other)?.push({ from: replica, update })
      }
    })
    this.replicas.push(replica)
    this.inbox.set(replica, [])
    return replica
  }

  pending (): number {
    let n = 0
    for (const queue of this.inbox.values()) n += queue.length
    return n
  }

  /** Delivers one pending message, chosen at random; returns false when none is pending. */
  deliverRandom (): boolean {
    const receivers = this.replicas.filter((r) => (this.inbox.get(r)?.length ?? 0) > 0)
    if (receivers.length === 0) return false
    const receiver = prng.oneOf(this.gen, receivers)
    const queue = this.inbox.get(receiver) as Array<{ from: Replica, update: Uint8Array }>
    // Random order across senders; in order from one sender, as a reliable channel would give.
    const senders = Array.from(new Set(queue.map((m) => m.from)))
    const sender = prng.oneOf(this.gen, senders)
    const index = queue.findIndex((m) => m.from === sender)
    const [message] = queue.splice(index, 1)
    if (message !== undefined) Y.applyUpdate(receiver.doc, message.update, REMOTE)
    return true
  }

  /** Delivers everything pending, in random order. */
  flush (): void {
    while (this.deliverRandom());
  }

  disconnect (replica: Replica): void {
    replica.online = false
    this.inbox.set(replica, [])
    for (const queue of this.inbox.values()) {
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i]?.from === replica) queue.splice(i, 1)
    }
  }

  /** Reconnects and syncs both ways with every online replica (y-protocols sync step 1 + 2). */
  reconnect (replica: Replica): void {
    replica.online = true
    for (const other of this.replicas) {
      if (other === replica || !other.online) continue
      Y.applyUpdate(other.doc, Y.encodeStateAsUpdate(replica.doc, Y.encodeStateVector(other.doc)), REMOTE)
      Y.applyUpdate(replica.doc, Y.encodeStateAsUpdate(other.doc, Y.encodeStateVector(replica.doc)), REMOTE)
    }
  }

  /** Writes raw content into a replica's map, bypassing the facade: what a hostile peer does. */
  rawSet (replica: Replica, key: string, value: unknown): void {
    replica.doc.transact(() => replica.map.set(key, value), 'hostile')
  }

  /** Writes many raw entries into a replica's map in one transaction. */
  rawSetMany (replica: Replica, entries: Iterable<readonly [string, unknown]>): void {
    replica.doc.transact(() => {
      for (const [key, value] of entries) replica.map.set(key, value)
    }, 'hostile')
  }
}

/**
 * Admission control: each incoming message is screened before Yjs or y-protocols apply it, and
 * what no honest peer can produce is refused (the hook throws: replication.ts closes the connection
 * and reports PROTOCOL_ERROR with the reason; nothing refused is applied, so nothing refused is
 * passed on). The bounds derive from the store's limits and are named here:
 *
 * - message rate: a token bucket per connection, far above what the API can produce;
 * - awareness: a state over the metadata limit (plus room for a few small fields);
 * - updates (sync step 2, update): unreadable Yjs binary; structs for another root type than the
 *   store's map, nested types, or content no entry has; more entries or bytes than the limits allow
 *   (with slack for honest concurrency: an honest state may hold entries hidden by the limits);
 *   structs of a client that start past this peer's state of it (a gap: Yjs would hold them
 *   pending, in memory, forever);
 * - updates whose other dependencies are missing (Yjs's pending structs) are allowed while what
 *   waits stays within what one update may carry (writes can legitimately arrive before what they
 *   build on, over another path, and a joiner's syncs wait for each other): past `maxUpdateBytes`
 *   the connection that added it is refused and the pending structs dropped (they cost memory
 *   and, on every later update, CPU); pending structs still waiting after PENDING_GRACE are
 *   dropped and the room asked for its state again (`onStalePending`).
 */

import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import type { Limits } from '../store/limits.js'
import { createTokenBucket, type TokenBucket } from './budgets.js'
import type { ClientClaims } from './impersonation.js'
import type { LinkConnection } from './link.js'
import { MESSAGE_AWARENESS, type MessageHook } from './replication.js'
import { encodeBytesMessage, MESSAGE_REPAIR_V2, MESSAGE_SYNC_STEP2_V2, MESSAGE_UPDATE } from './sync-v2.js'
import { ContentRef, scanUpdate } from './update-scan.js'

/**
 * Messages per connection (sustained, burst). An honest peer paces its updates below this
 * (coalescer.ts SEND_RATE: 1,000/s, burst 5,000), whatever the app writes: past that, a turn's
 * writes wait for a token and go as one message. It has to stay below what a peer can process,
 * because it is counted as messages are read: a flood arriving faster than that would only be
 * read at that speed, and never trip it.
 */
export const MESSAGE_RATE = { rate: 1250, burst: 6000 }
/** Bytes of one awareness state beyond the metadata limit, for the library's and the app's fields. */
export const AWARENESS_EXTRA_BYTES = 2048
/** How many times the store's limits one update may carry (hidden entries of concurrent writers). */
export const ENTRY_SLACK = 4
/** Bytes of an entry beyond its value (the envelope: writer, time, metadata), at most. */
export const ENTRY_OVERHEAD_BYTES = 1024 + 128
/**
 * Bytes of entries one update may carry, with slack for honest concurrency. Also the bound of
 * Yjs's pending structs and deletes (waiting for dependencies) this peer holds: a joiner's sync is
 * the room's whole state, from each peer with the writes of the other connected peers stripped
 * (they deliver their own); where writers took turns on the same keys, each peer's share waits for
 * the others' until their syncs arrive (72 KiB of a full 64 KB store, measured). Under a 32 KiB
 * bound the joiner refused its peers' syncs and caught up only through anti-entropy repairs, 10 to
 * 20 s later, and 2-5x the bytes.
 */
export const maxUpdateBytes = (limits: Limits): number => ENTRY_SLACK * (limits.maxTotalBytes + limits.maxKeys * ENTRY_OVERHEAD_BYTES)
/** How long pending structs may wait for their dependencies before they are dropped and re-synced. */
export const PENDING_GRACE = 3000

export interface AdmissionOptions {
  doc: Y.Doc
  /** The root map that holds the store (the only root type an update may touch). */
  root: string
  limits: Limits
  now?: () => number
  /** Pending structs waited past PENDING_GRACE and were dropped: ask the peers for their state. */
  onStalePending?: () => void
  /** Who may speak for which client, per connection (impersonation.ts `updateClaims`). */
  claims?: (connection: LinkConnection) => ClientClaims
  /** Counts what was stripped, by reason. */
  onDrop?: (reason: string) => void
}

/** The largest whole message an honest peer sends: a full state with its history. */
export const maxMessageBytes = (limits: Limits): number => Math.max(16 * 1024 * 1024, 256 * limits.maxTotalBytes)

/** How `screenUpdate` treats the structs of the clients of an update (impersonation.ts decides). */
export interface ScreenOptions {
  /** The update is in Yjs's V2 encoding. */
  v2?: boolean
  /** Who may speak for each client: judged in the same pass as the bounds. Default: anyone, for all. */
  claims?: ClientClaims
}

/** What a screening found: the problem, or null; and the clients whose structs are to be stripped. */
export interface Screening {
  problem: string | null
  strip: number[]
}

/**
 * What `update` adds that no honest peer can produce, or null, in one pass over its structs,
 * with the impersonation rules' verdict per client (`claims`): structs of a client that is
 * another connection's are left out of the bounds and, when this peer lacks them, to be
 * stripped (that peer delivers its own writes). Pure: reads the doc's state only.
 */
export const screenUpdateWith = (update: Uint8Array, { doc, root, limits }: AdmissionOptions, { v2 = false, claims }: ScreenOptions = {}): Screening => {
  const maxEntries = ENTRY_SLACK * limits.maxKeys
  const maxBytes = maxUpdateBytes(limits)
  let entries = 0
  let bytes = 0
  let problem: string | null = null
  let lastClient = -1
  let claim: 'own' | 'other' | null = null
  let state = 0
  const strip: number[] = []
  let pending: Map<number, number> | null = null
  /** What this peer has of `client`, counting its structs that wait in Yjs's pending update. */
  const known = (client: number): number => {
    const waiting = doc.store.pendingStructs
    if (waiting === null) return state
    pending ??= Y.parseUpdateMetaV2(waiting.update).to // Yjs keeps pending structs in V2
    return Math.max(state, pending.get(client) ?? 0)
  }
  try {
    scanUpdate(update, (struct) => {
      if (struct.client !== lastClient) {
        lastClient = struct.client
        state = Y.getState(doc.store, struct.client)
        claim = claims?.(struct.client) ?? null
        if (claim === null && struct.clock > state && struct.clock > known(struct.client)) {
          problem = 'structs that start past what this peer has of their writer (missing dependencies)'
          return false
        }
      }
      const end = struct.clock + struct.length
      if (claim === 'own') {
        if (end > state) {
          problem = 'structs under this peer\'s own client id that it did not write'
          return false
        }
        return true
      }
      if (claim === 'other') {
        if (end > state && strip[strip.length - 1] !== struct.client) strip.push(struct.client)
        return true
      }
      if (struct.kind !== 'item') return true
      if (struct.nestedParent || struct.content === ContentRef.TYPE || struct.content === ContentRef.DOC) {
        problem = 'nested types (store entries are flat)'
        return false
      }
      if (struct.parentKey !== null && struct.parentKey !== root) {
        problem = `structs for another root type ('${struct.parentKey.slice(0, 64)}')`
        return false
      }
      if (struct.content === ContentRef.DELETED) return true
      entries += struct.length
      bytes += struct.contentBytes + (struct.parentSub?.length ?? 0)
      if (entries > maxEntries) problem = `more than ${maxEntries} entries in one update`
      else if (bytes > maxBytes) problem = `more than ${maxBytes} bytes of entries in one update`
      return problem === null
    }, { v2 })
  } catch (err) {
    return { problem: `undecodable Yjs binary (${(err as Error).message})`, strip: [] }
  }
  return { problem, strip }
}

/** What `update` adds that no honest peer can produce, or null (`screenUpdateWith` without claims). */
export const screenUpdate = (update: Uint8Array, options: AdmissionOptions, { v2 = false } = {}): string | null =>
  screenUpdateWith(update, options, { v2 }).problem

/** Above every clock a peer can reach: stripping a client below it removes all its structs. */
const MAX_CLOCK = 2 ** 53 - 1

/** `update` without the structs of `clients`. */
const stripClients = (update: Uint8Array, clients: number[], v2: boolean): Uint8Array => {
  const vector = Y.encodeStateVector(new Map(clients.map((client) => [client, MAX_CLOCK])))
  return v2 ? Y.diffUpdateV2(update, vector) : Y.diffUpdate(update, vector)
}

interface ConnectionState {
  messages: TokenBucket
}

/** The admission hook; `afterApply` watches Yjs's pending structs. */
export const admissionControl = (options: AdmissionOptions): Required<Pick<MessageHook, 'incoming' | 'afterApply'>> => {
  const { doc, limits, now = Date.now, onStalePending = () => {}, claims, onDrop = () => {} } = options
  const maxPending = maxUpdateBytes(limits)
  let pendingSince: number | null = null
  const maxAwareness = limits.maxValueBytes + AWARENESS_EXTRA_BYTES
  const states = new WeakMap<LinkConnection, ConnectionState>()
  const stateOf = (connection: LinkConnection): ConnectionState => {
    let state = states.get(connection)
    if (state === undefined) states.set(connection, state = { messages: createTokenBucket(MESSAGE_RATE, now) })
    return state
  }
  return {
    incoming: (connection, message) => {
      if (!stateOf(connection).messages.take()) throw new Error(`messages at a rate over ${MESSAGE_RATE.rate}/s`)
      const decoder = decoding.createDecoder(message)
      const type = decoding.readVarUint(decoder)
      if (type === MESSAGE_AWARENESS) {
        const update = decoding.readVarUint8Array(decoder)
        if (update.length > maxAwareness + 64) throw new Error(`an awareness state over ${maxAwareness} bytes`)
        return message
      }
      if (type !== MESSAGE_UPDATE && type !== MESSAGE_SYNC_STEP2_V2 && type !== MESSAGE_REPAIR_V2) return message
      const update = decoding.readVarUint8Array(decoder)
      const v2 = type !== MESSAGE_UPDATE
      const { problem, strip } = screenUpdateWith(update, options, { v2, ...(claims === undefined ? {} : { claims: claims(connection) }) })
      if (problem !== null) throw new Error(problem)
      if (strip.length === 0) return message
      onDrop('structs of another connected peer, sent by a third party')
      return encodeBytesMessage(type, stripClients(update, strip, v2))
    },
    afterApply: () => {
      const bytes = (doc.store.pendingStructs?.update.length ?? 0) + (doc.store.pendingDs?.length ?? 0)
      if (doc.store.pendingStructs === null && doc.store.pendingDs === null) {
        pendingSince = null
        return
      }
      pendingSince ??= now()
      const drop = (): void => {
        doc.store.pendingStructs = null
        doc.store.pendingDs = null
        pendingSince = null
      }
      if (bytes > maxPending) {
        drop()
        throw new Error(`over ${maxPending} bytes of updates whose dependencies are missing`)
      }
      if (now() - pendingSince > PENDING_GRACE) {
        drop()
        onStalePending()
      }
    }
  }
}

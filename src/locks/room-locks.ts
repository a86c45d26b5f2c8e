/**
 * A room's locks, as the session and its store use them: the arbiter client (arbiter-client.ts)
 * over the link's arbiter channel (the first signaling server), made once this session's identity
 * exists, and what the store needs of it (store.ts `LockService`): who holds a key, this peer's
 * id, the Yjs client id of a holder (to tell who wrote an item in open rooms), taking and revoking
 * locks, and the handoff rule: before the next holder reads, the previous holder's last writes
 * have arrived (a barrier over the connection to it: replication.ts `catchUpWith`).
 */

import { ErrorCodes, SessionStoreError } from '../errors.js'
import { IsolatedObservable } from '../events.js'
import type { LockService, LockGrant } from '../store/store.js'
import type { Identity } from '../trust/identity.js'
import type { ArbiterChannel, LinkConnection } from '../transport/link.js'
import { ArbiterClient, type LockChange } from './arbiter-client.js'

/** How long the next holder waits for the previous holder's last writes before it reads anyway. */
export const HANDOFF_TIMEOUT = 2000
/** How long a grant carried by an entry waits for the arbiter's key (its first answer) before it counts as unchecked. */
export const GRANT_CHECK_WAIT = 5000
/** Grants checked, by their text: a lease's writes carry one grant, checked once. */
const MAX_CHECKED_GRANTS = 1024

export interface RoomLocksOptions {
  room: string
  identity: Promise<Identity>
  /** The link's arbiter channel (read once the identity exists); undefined: locks are LOCK_UNAVAILABLE. */
  channel: () => ArbiterChannel | undefined
  /** The open connections, each bound to a peer id and a Yjs client id by its handshake. */
  connections: () => ReadonlyArray<LinkConnection & { client: number }>
  /** The room token to send with each request (protected rooms), if any. */
  token: () => string | null
  /** See replication.ts `catchUpWith`. */
  catchUpWith: (remoteId: string, timeout: number) => Promise<boolean>
  onError: (error: SessionStoreError) => void
}

export interface RoomLocksEvents {
  lock: (change: LockChange) => void
}

export class RoomLocks extends IsolatedObservable<RoomLocksEvents> implements LockService {
  readonly #options: RoomLocksOptions
  #client: ArbiterClient | null = null
  readonly #ready: Promise<ArbiterClient | null>
  #self: string | null = null
  /** Per key, the holder of the lock that ended last: whose writes the next holder waits for. */
  readonly #previous = new Map<string, string>()
  /** Holders of recent leases by `key + fencing token`: whose writes a late one of them may be. */
  readonly #past = new Map<string, string>()
  /** Grants carried by entries, checked or being checked: the holder each names for its (key, token), or null. */
  readonly #checked = new Map<string, Promise<{ key: string, fencing: number, holder: string } | null | undefined>>()
  #destroyed = false

  constructor (options: RoomLocksOptions) {
    super()
    this.#options = options
    this.#ready = options.identity.then((identity) => {
      this.#self = identity.id
      const channel = options.channel()
      if (channel === undefined || this.#destroyed) return null
      const client = new ArbiterClient({
        room: options.room,
        identity,
        send: (frame) => channel.send(frame),
        onFrame: (listener) => channel.onFrame(listener),
        onStatus: (listener) => channel.onStatus(listener),
        connected: channel.connected,
        token: options.token
      })
      client.on('lock', (change) => {
        if (change.holder !== null) this.#remember(change.key, change.fencingToken, change.holder)
        if (change.holder === null && change.previous !== null) {
          this.#previous.set(change.key, change.previous)
          if (this.#previous.size > 4096) this.#previous.delete(this.#previous.keys().next().value as string)
        }
        this.emitIsolated('lock', change, (err) => options.onError(new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a 'lock' listener threw: ${String(err)}`, { cause: err })))
      })
      client.on('error', (err) => options.onError(err))
      this.#client = client
      return client
    })
    this.#ready.catch(() => {})
  }

  holder (key: string): { holder: string, fencingToken: number } | null {
    const info = this.#client?.holder(key) ?? null
    return info === null ? null : { holder: info.holder, fencingToken: info.fencingToken }
  }

  /** When `key`'s lock ends, as this peer knows it (ms since the epoch), or null. */
  expiresAt (key: string): number | null {
    return this.#client?.holder(key)?.expiresAt ?? null
  }

  /** That `holder` was given lease `fencingToken` of `key` (the arbiter said so, or signed it). */
  #remember (key: string, fencingToken: number, holder: string): void {
    this.#past.set(`${fencingToken} ${key}`, holder)
    if (this.#past.size > 4096) this.#past.delete(this.#past.keys().next().value as string)
  }

  pastHolder (key: string, fencingToken: number): string | undefined {
    return this.#past.get(`${fencingToken} ${key}`)
  }

  grant (key: string, fencingToken: number): string | undefined {
    const held = this.#client?.holder(key)
    return held?.fencingToken === fencingToken ? this.#client?.grantOf(key) : undefined
  }

  /**
   * The holder a grant carried by an entry names, when it is the arbiter's signed grant of lease
   * `fencingToken` of `key` in this room; null when it is not; undefined when this peer has no
   * arbiter's key to check it with (none within GRANT_CHECK_WAIT: a joiner checks the room's
   * entries before its arbiter has answered, or the room has no arbiter).
   */
  async grantHolder (key: string, fencingToken: number, grant: string): Promise<string | null | undefined> {
    let checked = this.#checked.get(grant)
    if (checked === undefined) {
      checked = this.#ready.then(async (client) => {
        if (client === null) return undefined
        const payload = await client.verifyGrant(grant, { wait: GRANT_CHECK_WAIT })
        if (client.serverKey === null) return undefined
        if (payload !== null) this.#remember(payload.key, payload.fencing, payload.holder)
        return payload === null ? null : { key: payload.key, fencing: payload.fencing, holder: payload.holder }
      })
      // A grant that could not be checked for want of a key is checked again next time.
      const entry = checked
      entry.then((payload) => { if (payload === undefined) this.#checked.delete(grant) }, () => this.#checked.delete(grant))
      if (this.#checked.size >= MAX_CHECKED_GRANTS) this.#checked.delete(this.#checked.keys().next().value as string)
      this.#checked.set(grant, entry)
    }
    const payload = await checked
    if (payload === undefined) return undefined
    return payload !== null && payload.key === key && payload.fencing === fencingToken ? payload.holder : null
  }

  self (): string | null {
    return this.#self
  }

  clientOf (peerId: string): number | undefined {
    return this.#options.connections().find((connection) => connection.remoteId === peerId)?.client
  }

  async acquire (key: string, options: { ttl?: number, wait?: number }): Promise<LockGrant> {
    const client = await this.#ready
    if (client === null) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'no lock arbiter: the room has no signaling server to arbitrate locks', { key })
    const held = await client.acquire(key, options)
    // The arbiter names the previous holder exactly, whatever order its events arrived in.
    if (typeof held.previous === 'string') this.#previous.set(key, held.previous)
    else if (held.previous === null) this.#previous.delete(key)
    return {
      key,
      holder: held.holder,
      get fencingToken () { return held.fencingToken },
      get expiresAt () { return held.expiresAt },
      get held () { return held.held },
      release: async () => await held.release()
    }
  }

  async revoke (key: string): Promise<void> {
    const client = await this.#ready
    if (client === null) throw new SessionStoreError(ErrorCodes.LOCK_UNAVAILABLE, 'no lock arbiter: the room has no signaling server to arbitrate locks', { key })
    await client.revoke(key)
  }

  /**
   * Waits (at most HANDOFF_TIMEOUT) until the writes of the peer whose lock of `key` ended last have
   * arrived: at once when that was this peer, or the peer is not a neighbour (a partial mesh).
   */
  async caughtUp (key: string): Promise<void> {
    const previous = this.#previous.get(key)
    if (previous === undefined || previous === this.#self) return
    await this.#options.catchUpWith(previous, HANDOFF_TIMEOUT)
  }

  override destroy (): void {
    this.#destroyed = true
    this.#client?.destroy()
    this.#client = null
    super.destroy()
  }
}

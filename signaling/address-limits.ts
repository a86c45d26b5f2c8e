/**
 * Limits per client address (an IPv4 address or an IPv6 /64, see client-address.ts): how many
 * connections it holds, how fast it opens new ones, and how many frames it sends per second over
 * all its connections together (one bucket for them all, so opening more connections does not
 * multiply the rate). Also the log of refusals, one line per address per interval.
 *
 * An entry outlives its last connection until its buckets have refilled, so closing everything and
 * reconnecting does not reset an address's limits. Entries without connections are bounded too
 * (`maxIdleAddresses`): beyond it the oldest is forgotten, which only ever makes a limit laxer.
 * Pure apart from the logger: the caller passes the clock.
 */

import type { Logger } from './logger.js'
import { FULL, charge, isFull, verdictOf, type RateLimit, type Verdict } from './rate-limit.js'
import type { RejectionReason } from './stats.js'

export interface AddressLimits {
  /** Connections one address may hold at once, the ones being admitted included. */
  maxConnections: number
  /** Upgrade attempts: `rate` per second, `burst` back to back. */
  upgrades: RateLimit
  /** Frames over all of an address's connections. */
  messages: RateLimit
  /** Error frames sent back to an address (they must not amplify what it sends). */
  errors: RateLimit
}

/** An address's state, shared by all its connections: a count and three buckets (rate-limit.ts). */
export class AddressEntry {
  /** Open connections, plus upgrades admitted and not yet finished. */
  connections = 0
  upgrades = FULL
  messages = FULL
  errors = FULL
  /** The address's sender handle in relayed publishes (sender-handle.ts), once the server set it. */
  handle = ''

  constructor (readonly key: string) {}
}

export type AdmissionRefusal = 'address_connection_rate' | 'address_connection_limit'

export class AddressTable {
  private readonly entries = new Map<string, AddressEntry>()

  constructor (readonly limits: AddressLimits, private readonly maxIdleAddresses: number) {}

  /** Reserves a connection for the address `key`: its entry, or why it may not connect now. */
  admit (key: string, now: number): AddressEntry | AdmissionRefusal {
    let entry = this.entries.get(key)
    if (entry === undefined) {
      entry = new AddressEntry(key)
      this.entries.set(key, entry)
      if (this.entries.size > this.maxIdleAddresses) this.forgetOldestIdle(now)
    }
    // Every attempt takes a token, refused ones too: hammering at the limit is slowed down as well.
    entry.upgrades = charge(entry.upgrades, this.limits.upgrades, now)
    const inRate = verdictOf(entry.upgrades, this.limits.upgrades, now) === 'allow'
    if (entry.connections >= this.limits.maxConnections) return 'address_connection_limit'
    if (!inRate) return 'address_connection_rate'
    entry.connections++
    return entry
  }

  /** Gives back what `admit` reserved: the connection is gone, or was never opened. */
  release (entry: AddressEntry): void {
    entry.connections--
  }

  /** One frame from the address: the shared bucket's verdict. */
  takeMessage (entry: AddressEntry, now: number): Verdict {
    entry.messages = charge(entry.messages, this.limits.messages, now)
    return verdictOf(entry.messages, this.limits.messages, now)
  }

  /** True when an error frame may be sent to the address now. */
  takeError (entry: AddressEntry, now: number): boolean {
    entry.errors = charge(entry.errors, this.limits.errors, now)
    return verdictOf(entry.errors, this.limits.errors, now) === 'allow'
  }

  /** Forgets every address that holds no connection and whose buckets have refilled. */
  sweep (now: number): void {
    for (const [key, entry] of this.entries) {
      if (this.isForgettable(entry, now)) this.entries.delete(key)
    }
  }

  /** Addresses tracked (with connections, or limited recently). */
  get size (): number {
    return this.entries.size
  }

  private isForgettable (entry: AddressEntry, now: number): boolean {
    return entry.connections === 0 && isFull(entry.upgrades, now) && isFull(entry.messages, now) && isFull(entry.errors, now)
  }

  private forgetOldestIdle (now: number): void {
    this.sweep(now)
    if (this.entries.size <= this.maxIdleAddresses) return
    for (const [key, entry] of this.entries) {
      if (entry.connections === 0) {
        this.entries.delete(key)
        return
      }
    }
  }
}

/**
 * Refusals of one address are logged at most once per `interval`: the first one at once, the
 * ones after it counted and logged together when the interval has passed (by `note` or `sweep`).
 * At most `maxAddresses` addresses are remembered; refusals beyond that are in the metrics only.
 */
export class RefusalLog {
  private readonly recent = new Map<string, { until: number, unlogged: number, reason: RejectionReason }>()

  constructor (private readonly logger: Logger, private readonly interval: number, private readonly maxAddresses: number) {}

  note (address: string, reason: RejectionReason, now: number): void {
    const seen = this.recent.get(address)
    if (seen !== undefined && now < seen.until) {
      seen.unlogged++
      seen.reason = reason
      return
    }
    if (seen === undefined && this.recent.size >= this.maxAddresses) return
    this.write(address, reason, 1 + (seen?.unlogged ?? 0), now)
  }

  /** Logs what was counted in intervals that have passed, and forgets quiet addresses. */
  sweep (now: number): void {
    for (const [address, seen] of this.recent) {
      if (now < seen.until) continue
      if (seen.unlogged === 0) this.recent.delete(address)
      else this.write(address, seen.reason, seen.unlogged, now)
    }
  }

  private write (address: string, reason: RejectionReason, count: number, now: number): void {
    this.logger.warn({ address, reason, count }, 'refused a client address')
    this.recent.set(address, { until: now + this.interval, unlogged: 0, reason })
  }
}

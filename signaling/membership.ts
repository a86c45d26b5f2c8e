/**
 * What one instance knows of the others, as plain data: which instances are alive (by the time of
 * their last message) and, per topic, how many subscribers each has. The Redis relay keeps this up
 * to date from membership messages and snapshots, so that counting a topic's clients on the hot
 * path is a sum over a few numbers and never a Redis round trip.
 */

/** Liveness of the other instances, by the (monotonic) time their last message arrived. */
export class Instances {
  private readonly lastSeen = new Map<string, number>()
  private readonly departed = new Map<string, number>()

  /**
   * @param ttl ms an instance counts as alive after its last message
   * @param maxInstances instances tracked at most (input from Redis cannot grow this without bound)
   */
  constructor (readonly ttl: number, private readonly maxInstances: number) {}

  /** Records a sign of life from `instance` at `now` (ignored once it said goodbye). */
  seen (instance: string, now: number): void {
    if (this.departed.has(instance)) return
    if (!this.lastSeen.has(instance) && this.lastSeen.size >= this.maxInstances) return
    this.lastSeen.set(instance, Math.max(now, this.lastSeen.get(instance) ?? now))
  }

  /** `instance` shut down: it stops counting at once and for good. */
  bye (instance: string, now: number): void {
    this.lastSeen.delete(instance)
    if (this.departed.size < this.maxInstances) this.departed.set(instance, now)
  }

  isAlive (instance: string, now: number): boolean {
    const seen = this.lastSeen.get(instance)
    return seen !== undefined && now - seen <= this.ttl
  }

  /** Instances alive at `now`. */
  aliveCount (now: number): number {
    let alive = 0
    for (const seen of this.lastSeen.values()) if (now - seen <= this.ttl) alive++
    return alive
  }

  /** Forgets instances silent for ten TTLs (crashed ones), and old goodbyes. */
  prune (now: number): void {
    for (const [instance, seen] of this.lastSeen) if (now - seen > 10 * this.ttl) this.lastSeen.delete(instance)
    for (const [instance, at] of this.departed) if (now - at > 10 * this.ttl) this.departed.delete(instance)
  }
}

interface Entry {
  count: number
  /** The topic's sequence number when this count was written. */
  seq: number
}

/**
 * Subscriber counts of one topic on the other instances. Membership messages arrive in Redis
 * order, and so supersede each other; a snapshot arrives on another connection and may overtake or
 * trail them, so each side carries the topic's sequence number and the newer one wins.
 */
export class RemoteCounts {
  private readonly entries = new Map<string, Entry>()
  private snapshotSeq = 0

  constructor (private readonly maxInstances: number) {}

  /** A membership message. False when it was refused (too many instances). */
  apply (instance: string, count: number, seq: number): boolean {
    if (seq <= this.snapshotSeq) return true
    const entry = this.entries.get(instance)
    if (entry !== undefined && entry.seq >= seq) return true
    if (entry === undefined && this.entries.size >= this.maxInstances) return false
    this.entries.set(instance, { count, seq })
    return true
  }

  /** A snapshot taken at `seq`: it replaces everything older, and nothing newer. */
  applySnapshot (seq: number, counts: ReadonlyMap<string, number>): void {
    for (const [instance, entry] of this.entries) {
      if (entry.seq <= seq && !counts.has(instance)) this.entries.delete(instance)
    }
    for (const [instance, count] of counts) {
      const entry = this.entries.get(instance)
      if (entry === undefined || entry.seq <= seq) this.entries.set(instance, { count, seq })
    }
    this.snapshotSeq = Math.max(this.snapshotSeq, seq)
  }

  /** Subscribers on the instances for which `isAlive` holds. */
  sum (isAlive: (instance: string) => boolean): number {
    let total = 0
    for (const [instance, entry] of this.entries) if (isAlive(instance)) total += entry.count
    return total
  }
}

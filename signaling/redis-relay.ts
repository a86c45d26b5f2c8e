/**
 * A `TopicRelay` for several signaling instances behind a load balancer, over Redis pub/sub: a
 * publish reaches every subscriber of its topic on every instance, exactly once, with `clients`
 * counting the whole topic across instances. PROTOCOL.md ("Several instances") has the channels,
 * keys and messages, and what the count means while instances crash or Redis is away.
 *
 * - Local first: subscribers on this instance get a publish at once, from memory; Redis only
 *   carries it to the other instances. A Redis outage leaves every instance serving its own rooms.
 * - The count is local: each instance announces its own subscriber count of a topic on the topic's
 *   channel (and in a hash that a newcomer reads in the same atomic step that announces it), and
 *   caches the others'. Counting costs no round trip. An instance's counts stop counting `ttl`
 *   after its last heartbeat, so a crashed instance's subscribers drop out of every count.
 * - An instance subscribes only to the channels of topics it has subscribers of. The first
 *   deliveries of a topic new to this instance wait (at most `JOIN_WAIT` ms) for the snapshot of
 *   the other instances' counts, so nobody is told `clients: 1` in a room others already hold.
 */

import { randomUUID } from 'node:crypto'
import type { Redis, RedisOptions } from 'ioredis'
import { loadPackage } from './dependencies.js'
import type { Logger } from './logger.js'
import { Instances, RemoteCounts } from './membership.js'
import {
  MEMBERSHIP_SCRIPT,
  MEMBERSHIP_SCRIPT_SHA,
  createNames,
  encodeBusPublish,
  encodeInstanceMessage,
  parseInstanceMessage,
  parseSnapshot,
  parseTopicMessage,
  type BusLimits,
  type RedisNames,
  type Snapshot
} from './redis-protocol.js'
import { createLocalRelay, type Subscriber, type TopicRelay } from './relay.js'
import type { RedisLinkState, RedisStats } from './stats.js'

export interface RedisRelayOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://` for TLS. */
  url: string
  /** Prefix of every channel and key. */
  prefix: string
  /** ms an instance's subscribers keep counting after its last heartbeat (sent every ttl / 3). */
  ttl: number
  /** Frame size limit of clients; messages from Redis may be at most 8 times as long. */
  maxPayload: number
  /** Nesting limit of publish data, as for clients. */
  maxDataDepth: number
  logger: Logger
}

export interface RedisRelay extends TopicRelay {
  readonly instanceId: string
  readonly state: RedisLinkState
  stats: () => RedisStats
}

/** ms the deliveries of a topic new to this instance wait for the other instances' counts. */
export const JOIN_WAIT = 2_000
/** Deliveries held per topic while it waits; more release them at once. */
const MAX_WAITING = 1_000
/** Instances tracked at most, overall and per topic (Redis input cannot grow memory past this). */
const MAX_INSTANCES = 1_024
/** A topic's members hash expires this long after its last write or refresh (garbage collection). */
const MEMBERS_TTL = 60 * 60_000
/** How often an instance refreshes the members hash of a topic it holds. */
const MEMBERS_REFRESH = 10 * 60_000
/** Longest wait for Redis while closing. */
const CLOSE_WAIT = 2_000

interface Delivery {
  data: unknown
  /** True for a publish of a subscriber here (forwarded to Redis when released). */
  here: boolean
  /** The publisher's handle (sender-handle.ts), as its instance tagged it. */
  sender: string | undefined
}

interface TopicState {
  /** The other instances' subscriber counts of the topic. */
  remote: RemoteCounts
  /** During a resync, the counts from before it, used until its snapshot arrives. */
  previous: RemoteCounts | null
  /** Deliveries held until the topic's first snapshot, or null once they flow. */
  waiting: Delivery[] | null
  waitTimer: ReturnType<typeof setTimeout> | undefined
  refreshedAt: number
}

const errorText = (err: unknown): string => err instanceof Error ? err.message : String(err)

/** The URL without its password, for logs. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(invalid url)'
  }
}

class Relay implements RedisRelay {
  readonly instanceId = randomUUID()
  private readonly local = createLocalRelay()
  private readonly topics = new Map<string, TopicState>()
  /** Topics whose count here changed since it was last written to Redis. */
  private readonly dirty = new Set<string>()
  private flushScheduled = false
  private readonly instances: Instances
  private readonly names: RedisNames
  private readonly limits: BusLimits
  private readonly pub: Redis
  private readonly sub: Redis
  private link: RedisLinkState = 'down'
  /** Bumped by every resync and every loss of the link: a stale resync stops at its next step. */
  private generation = 0
  /** The generation of the resync in flight, or -1. */
  private resyncGeneration = -1
  private lastError = ''
  /** Whether the current outage was logged (a failed first connection is an outage too). */
  private outageLogged = false
  private readonly heartbeat: ReturnType<typeof setInterval>
  private closed = false
  private closing: Promise<void> | null = null
  private readonly counters = { published: 0, received: 0, rejected: 0, dropped: 0, syncs: 0 }

  constructor (private readonly opts: RedisRelayOptions) {
    this.names = createNames(opts.prefix)
    this.instances = new Instances(opts.ttl, MAX_INSTANCES)
    this.limits = { maxMessageLength: 8 * opts.maxPayload + 1024, maxDataDepth: opts.maxDataDepth }
    const common: RedisOptions = {
      // Stale signals must not be replayed after a reconnect: a command that cannot be sent now
      // fails now, and one lost with its connection is not resent.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      // Resubscribing is part of the resync, which needs to know when it is done.
      autoResubscribe: false,
      retryStrategy: (times) => Math.min(times * 100, 2_000),
      // A half-open link shows as a command without a reply; the heartbeat sends one every ttl / 3.
      socketTimeout: Math.max(opts.ttl, 5_000),
      lazyConnect: true
    }
    // Loaded here, not imported: ioredis is an optional peer dependency, needed only with redisUrl.
    const { Redis: RedisClient } = loadPackage<typeof import('ioredis')>('redisUrl (several instances)', 'ioredis')
    this.pub = new RedisClient(opts.url, { ...common, connectionName: `signaling-pub-${this.instanceId}` })
    this.sub = new RedisClient(opts.url, { ...common, connectionName: `signaling-sub-${this.instanceId}` })
    for (const client of [this.pub, this.sub]) {
      client.on('error', (err: Error) => {
        this.lastError = err.message
        opts.logger.debug({ err: err.message }, 'redis error')
        if (this.link === 'down') this.logOutage()
      })
      client.on('ready', () => this.onReady())
      client.on('close', () => this.onLost())
      client.connect().catch(() => {})
    }
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message))
    this.heartbeat = setInterval(() => this.tick(), Math.max(1, Math.floor(opts.ttl / 3)))
    this.heartbeat.unref()
  }

  get state (): RedisLinkState {
    return this.link
  }

  get topicCount (): number {
    return this.local.topicCount
  }

  get subscriptionCount (): number {
    return this.local.subscriptionCount
  }

  stats (): RedisStats {
    return { state: this.link, instanceId: this.instanceId, instances: this.instances.aliveCount(performance.now()), ...this.counters }
  }

  subscribe (topic: string, subscriber: Subscriber): void {
    const before = this.local.countOf(topic)
    this.local.subscribe(topic, subscriber)
    if (this.local.countOf(topic) === before) return
    // A topic new here is written by its join; a join that cannot start yet leaves it dirty.
    if (before === 0) this.activate(topic)
    else this.markDirty(topic)
  }

  unsubscribe (topic: string, subscriber: Subscriber): void {
    const before = this.local.countOf(topic)
    this.local.unsubscribe(topic, subscriber)
    const after = this.local.countOf(topic)
    if (after === before) return
    if (after === 0) this.deactivate(topic)
    this.markDirty(topic)
  }

  publish (topic: string, data: unknown, sender?: string): number {
    const state = this.topics.get(topic)
    if (state === undefined) return 0
    if (state.waiting === null) return this.relayHere(topic, state, data, sender)
    state.waiting.push({ data, here: true, sender })
    if (state.waiting.length >= MAX_WAITING) this.release(topic, state)
    return 0
  }

  async close (): Promise<void> {
    this.closed = true
    this.closing ??= this.shutdown()
    await this.closing
  }

  /** Delivers a publish of a subscriber here: here at once, to the other instances through Redis. */
  private relayHere (topic: string, state: TopicState, data: unknown, sender: string | undefined): number {
    const delivered = this.local.deliver(topic, data, this.count(topic, state), sender)
    if (!this.usable()) {
      this.counters.dropped++
      return delivered
    }
    // The other instances must count the publisher before they relay its message.
    if (this.dirty.has(topic)) this.writeMembership(topic).catch(this.onWriteError(topic))
    this.pub.publish(this.names.topicChannel(topic), encodeBusPublish(this.instanceId, data, sender)).catch(this.onCommandError)
    this.counters.published++
    return delivered
  }

  /** Subscribers here plus those of the live instances that told us their count. */
  private count (topic: string, state: TopicState): number {
    const now = performance.now()
    const remote = (state.previous ?? state.remote).sum((instance) => this.instances.isAlive(instance, now))
    return this.local.countOf(topic) + remote
  }

  /** Cross-instance traffic flows while both connections are open and the script is loaded. */
  private usable (): boolean {
    return this.link === 'up' || this.link === 'syncing'
  }

  private activate (topic: string): void {
    const state: TopicState = { remote: new RemoteCounts(MAX_INSTANCES), previous: null, waiting: null, waitTimer: undefined, refreshedAt: 0 }
    this.topics.set(topic, state)
    if (!this.usable()) {
      this.dirty.add(topic)
      return
    }
    state.waiting = []
    state.waitTimer = setTimeout(() => this.release(topic, state), JOIN_WAIT)
    state.waitTimer.unref()
    this.join(topic, state).finally(() => this.release(topic, state)).catch(() => {})
  }

  private deactivate (topic: string): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    this.topics.delete(topic)
    this.release(topic, state)
    if (this.sub.status === 'ready') this.sub.unsubscribe(this.names.topicChannel(topic)).catch(this.onCommandError)
  }

  /** Lets held deliveries of `topic` go, with the counts known now. */
  private release (topic: string, state: TopicState): void {
    clearTimeout(state.waitTimer)
    const waiting = state.waiting
    if (waiting === null) return
    state.waiting = null
    for (const delivery of waiting) {
      if (delivery.here) this.relayHere(topic, state, delivery.data, delivery.sender)
      else this.local.deliver(topic, delivery.data, this.count(topic, state), delivery.sender)
    }
  }

  /**
   * Subscribes to the topic's channel, then announces our count and reads the others' in one step.
   * False when Redis failed us (the topic stays dirty); true when done or no longer needed.
   */
  private async join (topic: string, state: TopicState): Promise<boolean> {
    try {
      await this.sub.subscribe(this.names.topicChannel(topic))
      if (this.topics.get(topic) !== state) return true
      const snapshot = await this.writeMembership(topic)
      if (this.topics.get(topic) !== state) return true
      if (snapshot === null) return false
      // Alive for as long as its key has left, not a full TTL from now: a crashed instance must not
      // be kept alive by the snapshots of topics it held.
      const now = performance.now()
      for (const [instance, left] of snapshot.expiresIn) {
        this.instances.seen(instance, now - this.opts.ttl + (left < 0 ? this.opts.ttl : Math.min(left, this.opts.ttl)))
      }
      state.remote.applySnapshot(snapshot.seq, snapshot.counts)
      state.previous = null
      return true
    } catch (err) {
      this.dirty.add(topic)
      this.opts.logger.debug({ err: errorText(err) }, 'redis: joining a topic failed')
      return false
    }
  }

  private markDirty (topic: string): void {
    this.dirty.add(topic)
    if (this.flushScheduled || !this.usable()) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flushDirty()
    })
  }

  private flushDirty (): void {
    if (!this.usable()) return
    for (const topic of this.dirty) this.writeMembership(topic).catch(this.onWriteError(topic))
  }

  /** Writes our count of `topic` (0 removes it) and returns the others' counts. */
  private async writeMembership (topic: string): Promise<Snapshot | null> {
    this.dirty.delete(topic)
    const state = this.topics.get(topic)
    if (state !== undefined) state.refreshedAt = performance.now()
    const reply: unknown = await this.pub.evalsha(
      MEMBERSHIP_SCRIPT_SHA, 1, this.names.membersKey(topic),
      this.instanceId, String(this.local.countOf(topic)), this.names.topicChannel(topic), this.names.instanceKeyPrefix, String(MEMBERS_TTL)
    )
    const snapshot = parseSnapshot(reply, MAX_INSTANCES)
    this.counters.rejected += snapshot === null ? 1 : snapshot.refused
    return snapshot
  }

  private readonly onWriteError = (topic: string) => (err: unknown): void => {
    this.dirty.add(topic)
    this.onCommandError(err)
  }

  private readonly onCommandError = (err: unknown): void => {
    const text = errorText(err)
    this.opts.logger.debug({ err: text }, 'redis command failed')
    // Someone flushed Redis's script cache: load it again (the resync does).
    if (text.startsWith('NOSCRIPT') && this.link === 'up') this.startResync()
  }

  private onMessage (channel: string, text: string): void {
    if (this.closed) return
    try {
      if (channel === this.names.instances) {
        this.onInstanceMessage(text)
        return
      }
      const topic = this.names.topicOf(channel)
      const state = topic === null ? undefined : this.topics.get(topic)
      // A message of a topic we just left, still on its way.
      if (topic === null || state === undefined) return
      const message = parseTopicMessage(text, this.limits)
      if (message === null) {
        this.reject('a topic message')
        return
      }
      if (message.instance === this.instanceId) return
      this.instances.seen(message.instance, performance.now())
      if (message.kind === 'members') {
        if (!state.remote.apply(message.instance, message.count, message.seq)) this.reject('a membership beyond the instance limit')
        return
      }
      this.counters.received++
      if (state.waiting === null) this.local.deliver(topic, message.data, this.count(topic, state), message.sender)
      else state.waiting.push({ data: message.data, here: false, sender: message.sender })
    } catch (err) {
      this.opts.logger.error({ err }, 'redis: failed to handle a message')
      this.counters.rejected++
    }
  }

  private onInstanceMessage (text: string): void {
    const message = parseInstanceMessage(text, this.limits)
    if (message === null) {
      this.reject('an instance message')
      return
    }
    if (message.instance === this.instanceId) return
    if (message.kind === 'alive') this.instances.seen(message.instance, performance.now())
    else this.instances.bye(message.instance, performance.now())
  }

  private reject (what: string): void {
    this.counters.rejected++
    this.opts.logger.debug({ what }, 'redis: refused a malformed message')
  }

  private onReady (): void {
    if (this.closed || this.pub.status !== 'ready' || this.sub.status !== 'ready') return
    this.startResync()
  }

  private onLost (): void {
    if (this.closed || this.link === 'down') return
    this.generation++
    this.setLink('down')
    // Nothing is coming from Redis for a while: deliver what waits, with the counts we have.
    for (const [topic, state] of this.topics) this.release(topic, state)
  }

  private startResync (): void {
    this.resync().catch((err: unknown) => this.opts.logger.error({ err }, 'redis: resync crashed'))
  }

  /**
   * After (re)connecting: load the script, announce ourselves, subscribe again and rewrite our
   * counts (Redis may have restarted empty), and take a fresh snapshot of every topic.
   */
  private async resync (): Promise<void> {
    const generation = ++this.generation
    this.resyncGeneration = generation
    this.setLink('syncing')
    try {
      // The script is loaded first on the connection, so no EVALSHA after it can meet an empty
      // script cache. One Promise.all, so that no rejection goes unhandled.
      await Promise.all([this.pub.script('LOAD', MEMBERSHIP_SCRIPT), this.beat(), this.sub.subscribe(this.names.instances)])
      if (generation !== this.generation) return
      const topics = [...this.topics]
      for (const [, state] of topics) {
        state.previous ??= state.remote
        state.remote = new RemoteCounts(MAX_INSTANCES)
      }
      const joined = await Promise.all(topics.map(async ([topic, state]) => await this.join(topic, state)))
      if (generation !== this.generation) return
      if (joined.includes(false)) throw new Error('a topic could not be joined')
      this.flushDirty()
      this.counters.syncs++
      this.setLink('up')
    } catch (err) {
      if (generation !== this.generation) return
      this.lastError = errorText(err)
      this.opts.logger.warn({ err: this.lastError }, 'redis: resync failed, retrying at the next heartbeat')
    } finally {
      if (generation === this.generation) this.resyncGeneration = -1
    }
  }

  /** Refreshes our instance key and tells the others we are alive; true when the key was still there. */
  private async beat (): Promise<boolean> {
    const previous: unknown = await this.pub.call('SET', this.names.instanceKey(this.instanceId), '1', 'PX', String(this.opts.ttl), 'GET')
    this.pub.publish(this.names.instances, encodeInstanceMessage({ kind: 'alive', instance: this.instanceId })).catch(this.onCommandError)
    return previous !== null
  }

  private tick (): void {
    if (this.closed) return
    const now = performance.now()
    this.instances.prune(now)
    if (this.link === 'down') return
    if (this.link === 'syncing' && !this.isResyncing()) {
      this.startResync()
      return
    }
    // The subscriber connection has no other command to time out on when its link is half-open.
    this.sub.ping().catch(this.onCommandError)
    this.beat().then((kept) => {
      // Our key expired (we were paused past the TTL, or Redis was flushed): the others may have
      // deleted our counts, so write them all again.
      if (!kept && this.link === 'up' && !this.isResyncing()) {
        this.opts.logger.warn({}, 'redis: our instance key had expired; resyncing')
        this.startResync()
      }
    }, this.onCommandError)
    if (this.link !== 'up') return
    this.flushDirty()
    for (const [topic, state] of this.topics) {
      if (now - state.refreshedAt < MEMBERS_REFRESH) continue
      state.refreshedAt = now
      this.pub.pexpire(this.names.membersKey(topic), MEMBERS_TTL).catch(this.onCommandError)
    }
  }

  private isResyncing (): boolean {
    return this.resyncGeneration === this.generation
  }

  private setLink (link: RedisLinkState): void {
    if (link === this.link) return
    this.link = link
    if (link === 'down') this.logOutage()
    if (link === 'up') {
      this.outageLogged = false
      this.opts.logger.info({ url: redactUrl(this.opts.url), instance: this.instanceId }, 'redis link up')
    }
  }

  private logOutage (): void {
    if (this.outageLogged || this.closed) return
    this.outageLogged = true
    this.opts.logger.warn({ url: redactUrl(this.opts.url), err: this.lastError }, 'redis link down; rooms are served per instance until it is back')
  }

  /**
   * Called once every subscriber has left: writes the last counts (all 0), says goodbye so the
   * others stop counting us at once, and closes both connections.
   */
  private async shutdown (): Promise<void> {
    clearInterval(this.heartbeat)
    for (const [topic, state] of this.topics) this.release(topic, state)
    if (this.usable()) {
      const goodbye = Promise.all([
        ...[...this.dirty].map(async (topic) => await this.writeMembership(topic)),
        this.pub.del(this.names.instanceKey(this.instanceId)),
        this.pub.publish(this.names.instances, encodeInstanceMessage({ kind: 'bye', instance: this.instanceId }))
      ])
      await this.bounded(goodbye)
    }
    this.generation++
    this.setLink('closed')
    await Promise.all([this.pub, this.sub].map(async (client) => {
      if (client.status === 'ready') await this.bounded(client.quit())
      client.disconnect()
    }))
  }

  /** Waits for `promise` at most CLOSE_WAIT ms and never rejects. */
  private async bounded (promise: Promise<unknown>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      promise.catch(this.onCommandError),
      new Promise((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT) })
    ])
    clearTimeout(timer)
  }
}

export const createRedisRelay = (options: RedisRelayOptions): RedisRelay => new Relay(options)

/**
 * Prometheus metrics for one server, in a registry of its own (never prom-client's global one), so
 * several servers can live in one process. Values are read from the server's plain counters at
 * scrape time; the message path never touches prom-client.
 */

import { Counter, Gauge, Registry } from 'prom-client'
import type { LockStats } from './lock-service.js'
import { REJECTION_REASONS, type Counters, type RedisStats } from './stats.js'

export interface Levels {
  connections: number
  topics: number
  subscriptions: number
  addresses: number
}

/** `redis` reads the Redis link's stats; null registers no Redis metrics. `locks` reads the arbiter's. */
export const createMetricsRegistry = (counters: Counters, levels: () => Levels, redis: (() => RedisStats) | null = null, locks: (() => LockStats) | null = null): Registry => {
  const registry = new Registry()
  const registers = [registry]

  const gauge = (name: string, help: string, read: (levels: Levels) => number): void => {
    new Gauge({ name, help, registers, collect () { this.set(read(levels())) } })
  }
  gauge('signaling_connections', 'Open WebSocket connections.', (l) => l.connections)
  gauge('signaling_topics', 'Topics with at least one subscriber.', (l) => l.topics)
  gauge('signaling_subscriptions', 'Topic subscriptions over all connections.', (l) => l.subscriptions)
  gauge('signaling_addresses', 'Client addresses tracked (IPv4 addresses, IPv6 /64s): with connections, or limited recently.', (l) => l.addresses)

  // prom-client counters only go up by increments, so each scrape adds what happened since the last.
  const counter = (name: string, help: string, read: () => number): void => {
    let reported = 0
    new Counter({
      name,
      help,
      registers,
      collect () {
        const value = read()
        this.inc(value - reported)
        reported = value
      }
    })
  }
  counter('signaling_messages_received_total', 'Frames received from clients, refused ones included.', () => counters.messagesIn)
  counter('signaling_messages_sent_total', 'Frames sent to clients (relayed publishes and pongs).', () => counters.messagesOut)

  const reported = new Map<string, number>(REJECTION_REASONS.map((reason) => [reason, 0]))
  new Counter({
    name: 'signaling_rejections_total',
    help: 'Refused frames, topics, upgrades and dropped connections, by reason.',
    labelNames: ['reason'],
    registers,
    collect () {
      for (const reason of REJECTION_REASONS) {
        const value = counters.rejections[reason]
        this.inc({ reason }, value - (reported.get(reason) ?? 0))
        reported.set(reason, value)
      }
    }
  })

  if (locks !== null) {
    new Gauge({ name: 'signaling_lock_watchers', help: 'Connections following the locks of a room, over all rooms.', registers, collect () { this.set(locks().watchers) } })
    new Gauge({ name: 'signaling_locks_held', help: 'Leases held (memory arbiter only: with Redis the state is there).', registers, collect () { this.set(locks().held ?? 0) } })
    counter('signaling_lock_grants_total', 'Locks granted (acquire).', () => locks().granted)
    counter('signaling_lock_renewals_total', 'Leases renewed.', () => locks().renewed)
    counter('signaling_lock_releases_total', 'Locks released by their holder (or its clean close).', () => locks().released)
    counter('signaling_lock_revocations_total', 'Locks revoked by a peer with the right.', () => locks().revoked)
    counter('signaling_lock_refusals_total', 'Acquires refused because another peer held the lock.', () => locks().locked)
    counter('signaling_lock_unavailable_total', 'Lock requests answered unavailable (Redis unreachable, grace after start).', () => locks().unavailable)
  }

  if (redis !== null) {
    new Gauge({
      name: 'signaling_redis_up',
      help: 'Redis link: 1 when publishes and counts flow between instances, 0 while it is down, syncing or closed.',
      registers,
      collect () { this.set(redis().state === 'up' ? 1 : 0) }
    })
    new Gauge({
      name: 'signaling_redis_instances',
      help: 'Other instances heard from within the TTL.',
      registers,
      collect () { this.set(redis().instances) }
    })
    counter('signaling_redis_published_total', 'Publishes of clients here sent to the other instances.', () => redis().published)
    counter('signaling_redis_received_total', 'Publishes of other instances\' clients received from Redis.', () => redis().received)
    counter('signaling_redis_rejected_total', 'Messages and replies from Redis refused as malformed.', () => redis().rejected)
    counter('signaling_redis_dropped_total', 'Publishes not sent to the other instances because the Redis link was down.', () => redis().dropped)
    counter('signaling_redis_syncs_total', 'Completed Redis (re)synchronisations: 1 after the first connection, one more per recovery.', () => redis().syncs)
  }

  return registry
}

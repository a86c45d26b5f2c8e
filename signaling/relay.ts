/**
 * Topic relay: who is subscribed to which topic, and delivering a publish to all of them.
 *
 * The server talks to topics only through `TopicRelay`, so a relay that puts a pub/sub bus
 * between several server instances (redis-relay.ts) needs no change to connection handling. Such
 * a relay owns the `clients` count too: it must count subscribers across all instances, because
 * clients rely on `clients === 1` meaning "nobody else is in this room".
 */

import { encodePublish } from './protocol.js'

/** One end that receives frames; the server's connection implements it. */
export interface Subscriber {
  /** Sends one already encoded text frame; false when it was not sent. Must not throw. */
  deliver: (frame: Buffer) => boolean
}

export interface TopicRelay {
  /** Adds `subscriber` to `topic`, creating the topic. Idempotent. */
  subscribe: (topic: string, subscriber: Subscriber) => void
  /** Removes `subscriber` from `topic`; a topic left empty is deleted at once. Idempotent. */
  unsubscribe: (topic: string, subscriber: Subscriber) => void
  /**
   * Delivers `{ type: 'publish', topic, data, clients, sender }` to every subscriber of `topic`,
   * the publisher included, where `clients` is the number of subscribers and `sender` the
   * publisher's handle (sender-handle.ts; left out when undefined). Returns the number of frames
   * delivered here (a relay may deliver later, and then returns 0).
   */
  publish: (topic: string, data: unknown, sender?: string) => number
  /** Number of topics with at least one subscriber here. */
  readonly topicCount: number
  /** Number of (topic, subscriber) pairs here. */
  readonly subscriptionCount: number
  /** Lets go of what the relay holds outside this process; called once, after every subscriber left. */
  close: () => Promise<void>
}

/** The in-process relay, with the two operations a relay built on top of it needs. */
export interface LocalRelay extends TopicRelay {
  /** Subscribers of `topic` in this process (0 for an unknown topic). */
  countOf: (topic: string) => number
  /**
   * Delivers `data` to every subscriber of `topic` in this process, with `clients` as the count
   * and `sender` as the publisher's handle. Returns the number of frames delivered.
   */
  deliver: (topic: string, data: unknown, clients: number, sender?: string) => number
}

/** The in-process relay: one map from topic name to its subscribers. */
export const createLocalRelay = (): LocalRelay => {
  const topics = new Map<string, Set<Subscriber>>()
  let subscriptions = 0

  const deliver = (topic: string, data: unknown, clients: number, sender?: string): number => {
    const subscribers = topics.get(topic)
    if (subscribers === undefined) return 0
    const frame = Buffer.from(encodePublish(topic, data, clients, sender))
    let delivered = 0
    // A subscriber that is dropped while we deliver (slow receiver) unsubscribes synchronously;
    // deleting from a Set during for..of is safe and the dropped one is simply not visited.
    for (const subscriber of subscribers) {
      if (subscriber.deliver(frame)) delivered++
    }
    return delivered
  }

  return {
    subscribe (topic, subscriber) {
      let subscribers = topics.get(topic)
      if (subscribers === undefined) {
        subscribers = new Set()
        topics.set(topic, subscribers)
      }
      if (subscribers.has(subscriber)) return
      subscribers.add(subscriber)
      subscriptions++
    },

    unsubscribe (topic, subscriber) {
      const subscribers = topics.get(topic)
      if (subscribers === undefined || !subscribers.delete(subscriber)) return
      subscriptions--
      if (subscribers.size === 0) topics.delete(topic)
    },

    publish: (topic, data, sender) => deliver(topic, data, topics.get(topic)?.size ?? 0, sender),

    countOf: (topic) => topics.get(topic)?.size ?? 0,

    deliver,

    get topicCount () {
      return topics.size
    },

    get subscriptionCount () {
      return subscriptions
    },

    close: async () => {}
  }
}

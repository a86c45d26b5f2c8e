/**
 * Topic relay: who is subscribed to which topic, and delivering a publish to all of them.
 *
 * The server talks to topics only through `TopicRelay`, so that a later relay can put a pub/sub
 * bus (Redis, NATS) between several server instances without touching connection handling. Such
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
   * Delivers `{ type: 'publish', topic, data, clients }` to every subscriber of `topic`, the
   * publisher included, where `clients` is the number of subscribers. Returns the number of frames
   * delivered here.
   */
  publish: (topic: string, data: unknown) => number
  /** Number of topics with at least one subscriber. */
  readonly topicCount: number
  /** Number of (topic, subscriber) pairs. */
  readonly subscriptionCount: number
}

/** The in-process relay: one map from topic name to its subscribers. */
export const createLocalRelay = (): TopicRelay => {
  const topics = new Map<string, Set<Subscriber>>()
  let subscriptions = 0

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

    publish (topic, data) {
      const subscribers = topics.get(topic)
      if (subscribers === undefined) return 0
      const frame = Buffer.from(encodePublish(topic, data, subscribers.size))
      let delivered = 0
      // A subscriber that is dropped while we deliver (slow receiver) unsubscribes synchronously;
      // deleting from a Set during for..of is safe and the dropped one is simply not visited.
      for (const subscriber of subscribers) {
        if (subscriber.deliver(frame)) delivered++
      }
      return delivered
    },

    get topicCount () {
      return topics.size
    },

    get subscriptionCount () {
      return subscriptions
    }
  }
}

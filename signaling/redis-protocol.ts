/**
 * What signaling instances say to each other over Redis (see PROTOCOL.md, "Several instances"):
 * the channel and key names, the bus messages with their guards and encoders, and the one Lua
 * script that changes a topic's membership. Pure, like protocol.ts: whatever arrives from Redis is
 * untrusted input and goes through a guard that returns null, never an exception.
 */

import { createHash } from 'node:crypto'
import { decodeJson, isRecord, isWithinDepth } from './protocol.js'
import { isSenderHandle } from './sender-handle.js'

/** Names under one prefix, so several clusters can share a Redis (channels ignore the db number). */
export interface RedisNames {
  /** Channel of the heartbeats and goodbyes of every instance. */
  instances: string
  /** Channel of one topic: its publishes and membership changes. */
  topicChannel: (topic: string) => string
  /** The topic of a topic channel, or null for any other channel. */
  topicOf: (channel: string) => string | null
  /** Hash of one topic: instance id → that instance's subscriber count, and `#` → sequence number. */
  membersKey: (topic: string) => string
  /** Key that exists while an instance is alive (it expires `ttl` after the last heartbeat). */
  instanceKey: (instance: string) => string
  /** `instanceKey(id)` is this followed by the id (the Lua script builds it). */
  instanceKeyPrefix: string
}

export const createNames = (prefix: string): RedisNames => {
  const topicPrefix = `${prefix}topic:`
  return {
    instances: `${prefix}instances`,
    topicChannel: (topic) => topicPrefix + topic,
    topicOf: (channel) => channel.startsWith(topicPrefix) && channel.length > topicPrefix.length ? channel.slice(topicPrefix.length) : null,
    membersKey: (topic) => `${prefix}members:${topic}`,
    instanceKey: (instance) => `${prefix}instance:${instance}`,
    instanceKeyPrefix: `${prefix}instance:`
  }
}

/** Messages on a topic channel. */
export type TopicBusMessage =
  /** A client of instance `instance` published `data` to the topic; `sender` is its handle there. */
  | { kind: 'publish', instance: string, data: unknown, sender?: string }
  /** Instance `instance` now has `count` subscribers of the topic; `seq` orders it against snapshots. */
  | { kind: 'members', instance: string, count: number, seq: number }

/** Messages on the instances channel. */
export type InstanceBusMessage =
  /** Instance `instance` is alive (sent every third of the TTL). */
  | { kind: 'alive', instance: string }
  /** Instance `instance` is shutting down: stop counting it now. */
  | { kind: 'bye', instance: string }

export interface BusLimits {
  /** Longest message text accepted from Redis, in UTF-16 code units. */
  maxMessageLength: number
  /** Deepest nesting of a publish's data (the same rule as for clients). */
  maxDataDepth: number
}

/** Instance ids are ours (UUIDs); anything longer than this did not come from an instance. */
export const MAX_INSTANCE_ID_LENGTH = 64

/** Larger than any real subscriber count of one instance, small enough to add up safely. */
export const MAX_MEMBER_COUNT = 2 ** 31 - 1

export const isInstanceId = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= MAX_INSTANCE_ID_LENGTH

export const isMemberCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_MEMBER_COUNT

const isSeq = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0

const decodeRecord = (text: unknown, limits: BusLimits): Record<string, unknown> | null => {
  if (typeof text !== 'string' || text.length > limits.maxMessageLength) return null
  const value = decodeJson(text)
  return isRecord(value) ? value : null
}

/** A message from a topic channel, or null when it is not one. */
export const parseTopicMessage = (text: unknown, limits: BusLimits): TopicBusMessage | null => {
  const value = decodeRecord(text, limits)
  if (value === null || !isInstanceId(value.i)) return null
  if (value.k === 'p') {
    if (value.d === undefined || !isWithinDepth(value.d, limits.maxDataDepth)) return null
    // An instance of before sender handles sends none; one that sends anything else is not ours.
    if (value.h === undefined) return { kind: 'publish', instance: value.i, data: value.d }
    if (!isSenderHandle(value.h)) return null
    return { kind: 'publish', instance: value.i, data: value.d, sender: value.h }
  }
  if (value.k === 'm') {
    if (!isMemberCount(value.n) || !isSeq(value.s)) return null
    return { kind: 'members', instance: value.i, count: value.n, seq: value.s }
  }
  return null
}

/** A message from the instances channel, or null when it is not one. */
export const parseInstanceMessage = (text: unknown, limits: BusLimits): InstanceBusMessage | null => {
  const value = decodeRecord(text, limits)
  if (value === null || !isInstanceId(value.i)) return null
  if (value.k === 'alive' || value.k === 'bye') return { kind: value.k, instance: value.i }
  return null
}

export const encodeBusPublish = (instance: string, data: unknown, sender?: string): string =>
  JSON.stringify(sender === undefined ? { k: 'p', i: instance, d: data } : { k: 'p', i: instance, d: data, h: sender })

export const encodeInstanceMessage = (message: InstanceBusMessage): string =>
  JSON.stringify({ k: message.kind, i: message.instance })

/**
 * Sets one instance's subscriber count of a topic, tells the topic channel, and returns what the
 * other live instances hold, all in one atomic step, so that a snapshot and the membership messages
 * that follow it leave no gap and no overlap (the `#` sequence number orders them).
 *
 * KEYS[1] the topic's members hash. ARGV: instance id, its count (0 removes it), the topic channel,
 * the instance key prefix, the hash's TTL in ms.
 * Returns `{ seq, id1, count1, ttl1, id2, count2, ttl2, ... }` (the caller excluded), where ttl is
 * what the instance's key has left in ms (-1: no expiry); `{ 0 }` when a count of 0 was written to
 * a topic nobody holds. Fields of instances whose key has expired are deleted on the way: a
 * crashed instance is forgotten by the next change to each of its topics.
 */
export const MEMBERSHIP_SCRIPT = `
local key, id, count = KEYS[1], ARGV[1], tonumber(ARGV[2])
if count == 0 and redis.call('EXISTS', key) == 0 then return { 0 } end
local seq = redis.call('HINCRBY', key, '#', 1)
if count == 0 then redis.call('HDEL', key, id) else redis.call('HSET', key, id, count) end
redis.call('PUBLISH', ARGV[3], '{"k":"m","i":' .. cjson.encode(id) .. ',"n":' .. count .. ',"s":' .. seq .. '}')
local out = { seq }
local fields = redis.call('HGETALL', key)
for j = 1, #fields, 2 do
  local field = fields[j]
  if field ~= '#' and field ~= id then
    local ttl = redis.call('PTTL', ARGV[4] .. field)
    if ttl ~= -2 then
      out[#out + 1] = field
      out[#out + 1] = fields[j + 1]
      out[#out + 1] = ttl
    else
      redis.call('HDEL', key, field)
    end
  end
end
redis.call('PEXPIRE', key, ARGV[5])
return out
`

export const MEMBERSHIP_SCRIPT_SHA = createHash('sha1').update(MEMBERSHIP_SCRIPT).digest('hex')

/** What the membership script saw: the sequence number and the other live instances' counts. */
export interface Snapshot {
  seq: number
  counts: Map<string, number>
  /** ms each instance's key had left (-1: it does not expire): how much longer it counts as alive. */
  expiresIn: Map<string, number>
  /** Fields left out because they were malformed (someone else wrote them) or over the limit. */
  refused: number
}

/**
 * The script's reply, or null when it does not have the script's shape (it is still input from
 * Redis). A malformed field is left out and counted rather than spoiling the whole snapshot: one
 * bad entry in a topic's hash must not keep every instance from ever joining the topic.
 */
export const parseSnapshot = (reply: unknown, maxInstances: number): Snapshot | null => {
  if (!Array.isArray(reply) || reply.length % 3 !== 1) return null
  const [seq, ...triples] = reply as unknown[]
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return null
  const counts = new Map<string, number>()
  const expiresIn = new Map<string, number>()
  let refused = 0
  for (let j = 0; j < triples.length; j += 3) {
    const instance = triples[j]
    const count = typeof triples[j + 1] === 'string' ? Number(triples[j + 1]) : Number.NaN
    const ttl = triples[j + 2]
    if (!isInstanceId(instance) || !isMemberCount(count) || typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < -1 || counts.size >= maxInstances) {
      refused++
      continue
    }
    counts.set(instance, count)
    expiresIn.set(instance, ttl)
  }
  return { seq, counts, expiresIn, refused }
}

/**
 * The wire format of y-webrtc signaling (see PROTOCOL.md) as data and pure functions: the message
 * types, guards that turn any text frame into a `ClientMessage` or `null`, and the encoders for
 * what the server sends. Nothing here touches a socket, so every rule is testable on its own.
 */

import { toLockRequest, type LockRequest, type LockServerMessage } from './lock-protocol.js'
import type { TurnMessage } from './turn.js'

export type ClientMessage =
  | { type: 'subscribe', topics: string[] }
  | { type: 'unsubscribe', topics: string[] }
  | { type: 'publish', topic: string, data: unknown }
  | { type: 'ping' }
  | LockRequest

export type ServerMessage =
  | { type: 'publish', topic: string, data: unknown, clients: number, sender?: string }
  | { type: 'pong' }
  | TurnMessage
  | { type: 'error', code: ErrorFrameCode, topic: string }
  | LockServerMessage

/** Why the server refused part of a message, in an error frame (see PROTOCOL.md). */
export type ErrorFrameCode =
  /** A subscribe or publish named a topic outside the connection's token. */
  | 'forbidden_topic'

/** Close codes the server sends. 1xxx are RFC 6455 codes, 4xxx are this server's own. */
export const CloseCode = {
  /** The server is shutting down (`close()`, SIGINT, SIGTERM). */
  GoingAway: 1001,
  /** A WebSocket protocol violation (sent by `ws`). */
  ProtocolError: 1002,
  /** A text frame that is not valid UTF-8 (sent by `ws`). */
  InvalidPayload: 1007,
  /** A frame larger than `maxPayload` (sent by `ws`). */
  MessageTooBig: 1009,
  /**
   * No valid access token: sent right after the upgrade when the token is missing, malformed,
   * wrongly signed or expired (reason `unauthorized`), and when the token of an open connection
   * expires (reason `token expired`).
   */
  Unauthorized: 4401,
  /** The same code as `Unauthorized`, by the name it had first: the token's `exp` passed while connected. */
  TokenExpired: 4401,
  /** The connection kept sending after its rate limit was exhausted. */
  RateLimited: 4429
} as const

export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

export interface ParseLimits {
  /** Most topics one subscribe or unsubscribe message may carry. */
  maxTopics: number
  /** Longest topic name, in UTF-16 code units. */
  maxTopicLength: number
  /** Deepest nesting of objects and arrays inside a publish's `data` (the top level counts 1). */
  maxDataDepth: number
}

/**
 * Deep enough for any y-webrtc signal (about 3 levels), shallow enough that re-encoding the data
 * can never overflow the stack (JSON.stringify throws RangeError near 10,000 levels).
 */
export const MAX_DATA_DEPTH = 32

export const DEFAULT_PARSE_LIMITS: ParseLimits = {
  maxTopics: 100,
  maxTopicLength: 256,
  maxDataDepth: MAX_DATA_DEPTH
}

/** Parses JSON text; `undefined` (which no JSON text can produce) means it was not JSON. */
export const decodeJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A JSON object (not null, not an array): the shape of every message, from clients and from Redis. */
export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

export const isTopicName = (value: unknown, limits: ParseLimits): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= limits.maxTopicLength

const toTopicList = (value: unknown, limits: ParseLimits): string[] | null => {
  if (!Array.isArray(value) || value.length > limits.maxTopics) return null
  for (const topic of value) {
    if (!isTopicName(topic, limits)) return null
  }
  return value as string[]
}

/** True when no object or array inside `value` is nested deeper than `maxDepth`. Iterative. */
export const isWithinDepth = (value: unknown, maxDepth: number): boolean => {
  const stack: Array<{ node: object, depth: number }> = []
  if (typeof value === 'object' && value !== null) stack.push({ node: value, depth: 1 })
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (item.depth > maxDepth) return false
    for (const child of Object.values(item.node)) {
      if (typeof child === 'object' && child !== null) stack.push({ node: child, depth: item.depth + 1 })
    }
  }
  return true
}

/** The guard: a decoded JSON value becomes a `ClientMessage`, or `null` when it is not one. */
export const toClientMessage = (value: unknown, limits: ParseLimits = DEFAULT_PARSE_LIMITS): ClientMessage | null => {
  if (!isRecord(value)) return null
  switch (value.type) {
    case 'subscribe':
    case 'unsubscribe': {
      const topics = toTopicList(value.topics, limits)
      return topics === null ? null : { type: value.type, topics }
    }
    case 'publish': {
      const { topic, data } = value
      if (!isTopicName(topic, limits) || data === undefined || !isWithinDepth(data, limits.maxDataDepth)) return null
      return { type: 'publish', topic, data }
    }
    case 'ping':
      return { type: 'ping' }
    case 'lock':
      return toLockRequest(value, limits.maxTopicLength)
    default:
      return null
  }
}

/** Text frame to message: `null` for anything that is not a well-formed client message. */
export const parseMessage = (text: string, limits: ParseLimits = DEFAULT_PARSE_LIMITS): ClientMessage | null => {
  const value = decodeJson(text)
  return value === undefined ? null : toClientMessage(value, limits)
}

/**
 * The relayed form of a publish. Only `type`, `topic`, `data`, `clients` and the server's own
 * `sender` (sender-handle.ts) are sent on: any other field a client put in its publish is dropped
 * rather than forwarded to everyone in the topic, so no client can write a `sender`.
 */
export const encodePublish = (topic: string, data: unknown, clients: number, sender?: string): string =>
  JSON.stringify((sender === undefined ? { type: 'publish', topic, data, clients } : { type: 'publish', topic, data, clients, sender }) satisfies ServerMessage)

export const PONG = JSON.stringify({ type: 'pong' } satisfies ServerMessage)

export const encodeError = (code: ErrorFrameCode, topic: string): string =>
  JSON.stringify({ type: 'error', code, topic } satisfies ServerMessage)

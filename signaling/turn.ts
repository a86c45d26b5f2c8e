/**
 * TURN credentials handed to clients, in the shared-secret scheme coturn implements (its "TURN
 * REST API": `use-auth-secret` with `static-auth-secret`). Many users sit behind NATs that only a
 * TURN relay gets through, and a relay must not be open to anyone: the signaling server, which
 * already decides who may connect, mints short-lived credentials that coturn can check without
 * ever talking to it.
 *
 * - username: `EXPIRY:USER`, EXPIRY the Unix time in seconds after which coturn refuses it;
 * - credential: base64(HMAC-SHA1(secret, username)).
 *
 * Each connection gets `{ type: 'turn', iceServers, ttl, expiresAt }` right after it opens and a
 * fresh one when half the lifetime has passed (PROTOCOL.md, "TURN credentials"). With access
 * tokens, credentials never outlive the token that let the client in.
 */

import { createHmac, randomBytes } from 'node:crypto'
import { SignalingError } from './errors.js'

export interface TurnOptions {
  /** coturn's `static-auth-secret`: at least 16 bytes (every client sees HMACs of it, so it must resist guessing). */
  secret: string
  /** The TURN (and STUN) URLs clients get, e.g. `['turn:turn.example.com:3478', 'turns:turn.example.com:5349?transport=tcp']`. */
  urls: string[]
  /** Seconds a credential is valid; a fresh one is sent every half of it. Default 3600. */
  ttl?: number | undefined
}

export interface TurnSettings {
  secret: string
  urls: string[]
  ttl: number
}

export interface TurnIceServer {
  urls: string[]
  username: string
  credential: string
}

/** The server-to-client message (PROTOCOL.md). */
export interface TurnMessage {
  type: 'turn'
  iceServers: TurnIceServer[]
  /** Seconds from now the credentials are valid: what clients go by (their clock may differ). */
  ttl: number
  /** When they expire, in ms since the epoch by the server's clock. */
  expiresAt: number
}

export const DEFAULT_TURN_TTL = 3600
export const MIN_TURN_SECRET_BYTES = 16
/** What clients accept (src/transport/turn.ts): a URL list the server would send must fit it. */
export const MAX_TURN_URLS = 8
const MAX_URL_LENGTH = 1024
const TURN_URL = /^(turns?|stuns?):[^\s]+$/

/** Validates the `turn` option of `createSignalingServer`; null when it is not set. */
export const resolveTurnOptions = (turn: TurnOptions | undefined): TurnSettings | null => {
  if (turn === undefined) return null
  if (typeof turn !== 'object' || turn === null) throw new SignalingError('INVALID_OPTION', 'turn must be an object { secret, urls, ttl }')
  const { secret, urls, ttl = DEFAULT_TURN_TTL } = turn
  if (typeof secret !== 'string') throw new SignalingError('INVALID_OPTION', 'turn.secret must be a string (coturn\'s static-auth-secret)')
  if (Buffer.byteLength(secret) < MIN_TURN_SECRET_BYTES) throw new SignalingError('WEAK_SECRET', `turn.secret must be at least ${MIN_TURN_SECRET_BYTES} bytes`)
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_TURN_URLS || !urls.every((url) => typeof url === 'string' && url.length <= MAX_URL_LENGTH && TURN_URL.test(url))) {
    throw new SignalingError('INVALID_OPTION', `turn.urls must be 1 to ${MAX_TURN_URLS} turn:, turns:, stun: or stuns: URLs`)
  }
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > 7 * 86400) throw new SignalingError('INVALID_OPTION', 'turn.ttl must be an integer number of seconds from 1 to 604800')
  return { secret, urls: [...urls], ttl }
}

/** coturn's REST API credential for `user`, valid until `expiry` (Unix seconds). */
export const turnCredential = (secret: string, user: string, expiry: number): { username: string, credential: string } => {
  const username = `${expiry}:${user}`
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') }
}

/**
 * The message for one client at `now` (ms). `notAfter` (ms, the access token's expiry) caps the
 * lifetime. Null when nothing is left of it.
 */
export const turnMessage = (settings: TurnSettings, user: string, now: number, notAfter = Infinity): TurnMessage | null => {
  const expiry = Math.floor(Math.min(now + settings.ttl * 1000, notAfter) / 1000)
  const ttl = expiry - Math.floor(now / 1000)
  if (ttl <= 0) return null
  const { username, credential } = turnCredential(settings.secret, user, expiry)
  return { type: 'turn', iceServers: [{ urls: settings.urls, username, credential }], ttl, expiresAt: expiry * 1000 }
}

/** A random label for the USER part: coturn logs it and applies per-user quotas to it. */
export const turnUser = (): string => randomBytes(9).toString('base64url')

/**
 * Sends `send` a message now and a fresh one every half lifetime, until `send` returns false (the
 * connection is gone) or the returned stop function is called.
 */
export const issueTurnCredentials = (settings: TurnSettings, send: (frame: Buffer) => boolean, notAfter = Infinity, now: () => number = Date.now): () => void => {
  const user = turnUser()
  let timer: ReturnType<typeof setTimeout> | undefined
  const issue = (): void => {
    const message = turnMessage(settings, user, now(), notAfter)
    if (message === null || !send(Buffer.from(JSON.stringify(message)))) return
    timer = setTimeout(issue, Math.max(message.ttl * 500, 500))
    timer.unref()
  }
  issue()
  return () => clearTimeout(timer)
}

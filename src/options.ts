/**
 * The options of `joinRoom`, their defaults, and their validation: every option is checked before
 * a session creates anything, so a refused join leaves nothing behind (no socket, timer or port).
 */

import type { JWK } from 'jose'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { issuerProblem, type IssuerKey } from './trust/room-token.js'
import type { Json } from './store/json.js'
import type { Limits } from './store/limits.js'

/**
 * Every option may be left out or be `undefined` (which counts as left out), so that
 * `{ token: process.env.TOKEN }` compiles under `exactOptionalPropertyTypes`.
 */
export interface JoinOptions {
  /** Signaling server URLs. Default `['ws://localhost:4444']`. */
  signaling?: string[] | undefined
  /** y-webrtc's room password: encrypts signaling traffic. Default none. */
  password?: string | undefined
  /** Appended to each signaling URL as `?token=`, for servers with access control. Default none. */
  token?: string | undefined
  /** Passed to simple-peer: `config` (iceServers), `wrtc`, ... Default `{}`. */
  peerOpts?: Record<string, unknown> | undefined
  /** The most WebRTC connections this peer opens. Default y-webrtc's (20 to 34). */
  maxConns?: number | undefined
  /** The store's limits. Default `{ maxValueBytes: 1024, maxKeys: 100, maxTotalBytes: 65536, maxKeyBytes: 1024 }`. */
  limits?: { [K in keyof Limits]?: Limits[K] | undefined } | undefined
  /** This peer's metadata (JSON, at most `maxValueBytes`), visible to the other peers. Default null. */
  metadata?: Json | undefined
  /** Milliseconds to wait for the room's state (and for a signaling server). Default 10000. */
  joinTimeout?: number | undefined
  /** `'signaling'`: add the TURN servers the signaling server hands out to `peerOpts.config.iceServers`. Default none. */
  turn?: 'signaling' | undefined
  /** Makes the room protected: per-key write rights from an app-issued room token (README "Permissions"). Default none. */
  auth?: AuthOptions | undefined
  /**
   * Bounded history (README "Long sessions"): the overwritten structs the current epoch may hold
   * (overwrites Yjs could not merge) before this peer moves the room to a fresh document holding
   * the live entries. Default 10000; 0: this peer never starts a move (it still follows others').
   */
  compactAfter?: number | undefined
}

export interface AuthOptions {
  /** The issuer's public key (a JWK), or `{ jwksUrl }`. */
  issuer: IssuerKey
  /**
   * Returns a room token bound to `peerKey` (this session's public key): usually a call to the
   * app's backend, which mints it with `createRoomToken` (`y-session-store/auth`). Called when the
   * session starts, a minute before each token expires, and after a failure (a rejection, or a
   * token that cannot be used) again 2 s later, doubling to a minute. Without a `token` option, the
   * room token is also the signaling servers' access token.
   */
  token: (peerKey: JWK) => string | Promise<string>
}

export const DEFAULT_SIGNALING = ['ws://localhost:4444']
export const DEFAULT_JOIN_TIMEOUT = 10_000
const OPTIONS: ReadonlySet<string> = new Set(['signaling', 'password', 'token', 'peerOpts', 'maxConns', 'limits', 'metadata', 'joinTimeout', 'turn', 'auth', 'compactAfter'])

export const invalidOption = (message: string): SessionStoreError => new SessionStoreError(ErrorCodes.INVALID_OPTION, message)

/** Checks every option before anything is created, so a refused join leaves nothing behind. */
export const validateJoin = (room: unknown, options: JoinOptions): void => {
  if (typeof room !== 'string' || room.length === 0) throw invalidOption('the room name must be a non-empty string')
  if (typeof options !== 'object' || options === null) throw invalidOption('options must be an object')
  for (const name of Object.keys(options)) if (!OPTIONS.has(name)) throw invalidOption(`unknown option '${name}'`)
  const { signaling, password, token, peerOpts, maxConns, joinTimeout, compactAfter } = options
  if (signaling !== undefined && (!Array.isArray(signaling) || signaling.some((url) => typeof url !== 'string' || !URL.canParse(url)))) throw invalidOption('signaling must be an array of URLs')
  if (password !== undefined && (typeof password !== 'string' || password.length === 0)) throw invalidOption('password must be a non-empty string')
  if (token !== undefined && typeof token !== 'string') throw invalidOption('token must be a string')
  if (peerOpts !== undefined && (typeof peerOpts !== 'object' || peerOpts === null)) throw invalidOption('peerOpts must be an object')
  if (maxConns !== undefined && !(Number.isSafeInteger(maxConns) && maxConns > 0)) throw invalidOption('maxConns must be a positive integer')
  if (compactAfter !== undefined && !(Number.isSafeInteger(compactAfter) && compactAfter >= 0)) throw invalidOption('compactAfter must be a non-negative integer')
  if (joinTimeout !== undefined && !(Number.isFinite(joinTimeout) && joinTimeout >= 0)) throw invalidOption('joinTimeout must be a non-negative number of milliseconds')
  if (options.turn !== undefined && options.turn !== 'signaling') throw invalidOption("turn must be 'signaling' or absent")
  const { auth } = options
  if (auth !== undefined) {
    if (typeof auth !== 'object' || auth === null) throw invalidOption('auth must be { issuer, token }')
    const problem = issuerProblem(auth.issuer)
    if (problem !== null) throw invalidOption(problem)
    if (typeof auth.token !== 'function') throw invalidOption('auth.token must be a function (peerKey) => token')
  }
}

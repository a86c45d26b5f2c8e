/**
 * `y-session-store/signaling`: the signaling server that introduces y-webrtc peers to each
 * other. Node only. The public surface is what is exported here; other modules are internal.
 */

import { SERVER_PACKAGES, requirePackages } from './dependencies.js'
import type { SignalingServerOptions } from './options.js'
import type { SignalingServer } from './server.js'

export type { SignalingServer } from './server.js'

/**
 * Starts a signaling server (see server.ts). `ws` and `prom-client` (and `ioredis` with
 * `redisUrl`) are optional peer dependencies: without them this rejects with a SignalingError
 * `MISSING_DEPENDENCY` naming the `npm i` command. Everything else exported here (tokens,
 * TURN credentials, constants) works without them.
 */
export const createSignalingServer = async (options: SignalingServerOptions = {}): Promise<SignalingServer> => {
  requirePackages('y-session-store/signaling', options.redisUrl === undefined ? SERVER_PACKAGES : [...SERVER_PACKAGES, 'ioredis'])
  const { createSignalingServer: create } = await import('./server.js')
  return await create(options)
}
export { DEFAULT_OPTIONS } from './options.js'
export type { SignalingServerOptions } from './options.js'
export { createToken } from './auth.js'
export type { CreateTokenOptions } from './auth.js'
export { SignalingError } from './errors.js'
export type { SignalingErrorCode } from './errors.js'
export { CloseCode } from './protocol.js'
export type { ClientMessage, ErrorFrameCode, ServerMessage } from './protocol.js'
export { DEFAULT_TURN_TTL, turnCredential } from './turn.js'
export type { TurnIceServer, TurnMessage, TurnOptions } from './turn.js'
export { generateLockKey } from './lock-key.js'
export { roomTokenVerifier } from './lock-service.js'
export type { LockStats, VerifyRoomToken } from './lock-service.js'
export type { LockRequest, LockServerMessage } from './lock-protocol.js'
export { REJECTION_REASONS } from './stats.js'
export type { RedisLinkState, RedisStats, RejectionReason, SignalingStats } from './stats.js'
export type { Logger } from './logger.js'

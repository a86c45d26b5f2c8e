/**
 * `y-session-store/signaling`: the signaling server that introduces y-webrtc peers to each
 * other. Node only. The public surface is what is exported here; other modules are internal.
 */

export { createSignalingServer } from './server.js'
export type { SignalingServer } from './server.js'
export { DEFAULT_OPTIONS } from './options.js'
export type { SignalingServerOptions } from './options.js'
export { createToken } from './auth.js'
export type { CreateTokenOptions } from './auth.js'
export { SignalingError } from './errors.js'
export type { SignalingErrorCode } from './errors.js'
export { CloseCode } from './protocol.js'
export type { ClientMessage, ErrorFrameCode, ServerMessage } from './protocol.js'
export { REJECTION_REASONS } from './stats.js'
export type { RedisLinkState, RedisStats, RejectionReason, SignalingStats } from './stats.js'
export type { Logger } from './logger.js'

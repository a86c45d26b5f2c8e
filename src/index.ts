/**
 * y-session-store: a shared realtime key-value store for everyone in a room, synced
 * peer-to-peer over WebRTC with Yjs. This is the isomorphic entry: it uses the runtime's
 * WebSocket and RTCPeerConnection (browsers). Node programs import `y-session-store/node`.
 */

export { joinRoom, Session } from './session.js'
export type { JoinOptions, AuthOptions, Permissions, Peer, PeersChange, SessionEvents, SessionStatus, SyncState, ConnectionInfo } from './session.js'
export { SessionStore } from './store/store.js'
export type { ChangeObserver, Completion, Observer, Usage, StoreOptions, StoreEntry, UpdatedBy, Writer } from './store/store.js'
export type { IssuerKey } from './trust/room-token.js'
export { SessionStoreError, ErrorCodes } from './errors.js'
export type { ErrorCode } from './errors.js'
export { DEFAULT_LIMITS } from './store/limits.js'
export type { Limits } from './store/limits.js'
export type { Json } from './store/json.js'

/**
 * The Node entry: the same API as the isomorphic one, with Node's missing pieces wired in:
 * `ws` as the WebSocket for y-webrtc's signaling client, `@roamhq/wrtc` as the WebRTC
 * implementation. Either can still be overridden (`peerOpts.wrtc`, a global WebSocket).
 */

import { WebSocket } from 'ws'
import wrtc from '@roamhq/wrtc'
import { joinRoom as joinRoomWith, type JoinOptions, type Session } from './session.js'
import type { WrtcImplementation } from './transport/framed-wrtc.js'

export * from './index.js'

/** Joins `room` from Node; see the isomorphic `joinRoom`. */
export const joinRoom = (room: string, options: JoinOptions = {}): Session => {
  // y-webrtc's signaling client (lib0/websocket) constructs the global WebSocket, which Node 20 lacks.
  const g = globalThis as { WebSocket?: unknown }
  g.WebSocket ??= WebSocket
  return joinRoomWith(room, options, { wrtc: wrtc as unknown as WrtcImplementation })
}

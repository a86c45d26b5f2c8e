/**
 * The Node entry: the same API as the isomorphic one, with Node's missing pieces wired in:
 * `ws` as the WebSocket for y-webrtc's signaling client (where Node has no global one), and
 * `@roamhq/wrtc` as the WebRTC implementation (unless `peerOpts.wrtc` passes another).
 *
 * Both are optional peer dependencies of the package, so that browser apps never install a native
 * WebRTC build. They are loaded when `joinRoom` first needs them; a missing one throws a
 * SessionStoreError MISSING_DEPENDENCY whose message is the `npm i` command.
 */

import { createRequire } from 'node:module'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { joinRoom as joinRoomWith, type JoinOptions, type Session } from './session.js'
import type { WrtcImplementation } from './transport/framed-wrtc.js'

export * from './index.js'

const require = createRequire(import.meta.url)

/** Loads an optional peer dependency (CommonJS) or throws MISSING_DEPENDENCY naming the install command. */
const load = <T>(name: string, purpose: string): T => {
  try {
    return require(name) as T
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'MODULE_NOT_FOUND' && String((err as Error).message).includes(`'${name}`)) {
      throw new SessionStoreError(ErrorCodes.MISSING_DEPENDENCY, `y-session-store/node needs ${name} for ${purpose}, and it is not installed: npm i ${name}`, { cause: err })
    }
    throw err
  }
}

/** Joins `room` from Node; see the isomorphic `joinRoom`. */
export const joinRoom = (room: string, options: JoinOptions = {}): Session => {
  // y-webrtc's signaling client (lib0/websocket) constructs the global WebSocket, which Node 20 lacks.
  const g = globalThis as { WebSocket?: unknown }
  g.WebSocket ??= load<{ WebSocket: unknown }>('ws', 'the signaling connection (Node has no global WebSocket before version 22)').WebSocket
  if (options.peerOpts?.wrtc !== undefined) return joinRoomWith(room, options)
  return joinRoomWith(room, options, { wrtc: load<WrtcImplementation>('@roamhq/wrtc', 'WebRTC (or pass peerOpts.wrtc)') })
}

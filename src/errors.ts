/**
 * The one error class of the library. Callers switch on `err.code`, never on message text.
 */

export const ErrorCodes = {
  /** The key is not a non-empty, well-formed string within `maxKeyBytes`. */
  INVALID_KEY: 'INVALID_KEY',
  /** The value is not JSON that survives a round trip unchanged (functions, NaN, Date, cycles...). */
  INVALID_VALUE: 'INVALID_VALUE',
  /** The value's JSON encoding is over `maxValueBytes`. */
  VALUE_TOO_LARGE: 'VALUE_TOO_LARGE',
  /** The write would add a key beyond `maxKeys`. */
  TOO_MANY_KEYS: 'TOO_MANY_KEYS',
  /** The write would push the total of keys and values past `maxTotalBytes`. */
  STORE_TOO_LARGE: 'STORE_TOO_LARGE',
  /** The store is not available: the session has been left (or was never joined). */
  NOT_AVAILABLE: 'NOT_AVAILABLE',
  /** This JavaScript realm is already in (or still leaving) a room of that name. */
  ALREADY_JOINED: 'ALREADY_JOINED',
  /** No signaling server could be reached within `joinTimeout`. */
  SIGNALING_UNAVAILABLE: 'SIGNALING_UNAVAILABLE',
  /** Another peer wrote an entry that breaks the per-entry rules; it is invisible here. */
  INVALID_REMOTE_ENTRY: 'INVALID_REMOTE_ENTRY',
  /** An application callback (observer, completion, event listener) threw. */
  CALLBACK_FAILED: 'CALLBACK_FAILED',
  /** A peer sent what this peer cannot process (signaling or data channel); it was dropped or closed. */
  PROTOCOL_ERROR: 'PROTOCOL_ERROR',
  /** An option passed to `joinRoom` is invalid (or unknown). */
  INVALID_OPTION: 'INVALID_OPTION',
  /** An installed dependency is not the version this library relies on (y-webrtc's internals). */
  INCOMPATIBLE_DEPENDENCY: 'INCOMPATIBLE_DEPENDENCY',
  /** A signaling server refused this peer's access token (missing, malformed, wrong or expired): close code 4401. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** A signaling server refused the room: the access token does not cover it. */
  FORBIDDEN: 'FORBIDDEN',
  /** A protected room: this peer's room token does not grant the key (or it has none, or it expired). */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** Another peer holds the key's lock (store.lock): only its holder may write the key. */
  LOCKED: 'LOCKED',
  /** No lock arbiter (signaling server) answered: the lock cannot be taken; the store itself keeps working. */
  LOCK_UNAVAILABLE: 'LOCK_UNAVAILABLE',
  /** An optional peer dependency this entry needs (`@roamhq/wrtc`, `ws`) is not installed; the message says `npm i ...`. */
  MISSING_DEPENDENCY: 'MISSING_DEPENDENCY'
} as const

export type ErrorCode = typeof ErrorCodes[keyof typeof ErrorCodes]

export class SessionStoreError extends Error {
  override name = 'SessionStoreError'
  readonly code: ErrorCode
  /** The key concerned, where there is one. */
  readonly key: string | undefined

  constructor (code: ErrorCode, message: string, { key, cause }: { key?: string, cause?: unknown } = {}) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.key = key
  }
}

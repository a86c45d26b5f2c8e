/**
 * The one error class of the signaling server. Callers switch on `err.code`, never on the message
 * text, so the text can improve without breaking anyone.
 */

export type SignalingErrorCode =
  /** An option of `createSignalingServer` or `createToken` is out of range or of the wrong type. */
  | 'INVALID_OPTION'
  /** The HS256 secret is shorter than 32 bytes (RFC 7518 §3.2 asks for at least the hash size). */
  | 'WEAK_SECRET'
  /** An optional peer dependency the server needs (`ws`, `prom-client`, `ioredis`, `pino`) is not installed. */
  | 'MISSING_DEPENDENCY'

export class SignalingError extends Error {
  readonly code: SignalingErrorCode

  constructor (code: SignalingErrorCode, message: string) {
    super(message)
    this.name = 'SignalingError'
    this.code = code
  }
}

/**
 * Shape guards shared by every layer (store, transport, signaling server): one definition of what
 * counts as a plain record, so that untrusted input is judged the same way everywhere.
 */

/** A non-null, non-array object: the shape of a JSON object or a parsed wire message. */
export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * Byte accounting for the store's limits. Sizes are UTF-8 bytes: a value's size is the byte
 * length of its JSON text, an entry's size is key bytes + value bytes.
 */

import { ErrorCodes, SessionStoreError } from '../errors.js'

export interface Limits {
  /** The most bytes one value's JSON text may take. Default 1024 (the product page's 1 KB). */
  maxValueBytes: number
  /** The most keys the store may hold. Default 100. */
  maxKeys: number
  /** The most bytes all keys and values together may take. Default 65536 (64 KB). */
  maxTotalBytes: number
  /** The most bytes one key may take. Default 1024. */
  maxKeyBytes: number
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxValueBytes: 1024,
  maxKeys: 100,
  maxTotalBytes: 65536,
  maxKeyBytes: 1024
})

/** UTF-8 byte length of a string, counting a lone surrogate as U+FFFD (3 bytes), as TextEncoder does. */
export const utf8Length = (s: string): number => {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** A key must survive UTF-8 transport unchanged: a lone surrogate would arrive as U+FFFD. */
export const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s)

export const resolveLimits = (limits: Partial<Limits> = {}): Limits => {
  const resolved = { ...DEFAULT_LIMITS }
  for (const name of Object.keys(DEFAULT_LIMITS) as Array<keyof Limits>) {
    const value = limits[name]
    if (value === undefined) continue
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new SessionStoreError(ErrorCodes.INVALID_OPTION, `limits.${name} must be a positive integer, got ${String(value)}`)
    }
    resolved[name] = value
  }
  return resolved
}

/**
 * Values are JSON: what a peer reads back equals `JSON.parse(JSON.stringify(value))` of what was
 * written. `encodeValue` refuses anything that JSON would carry unfaithfully instead of letting
 * `JSON.stringify` silently turn it into something else.
 */

import { ErrorCodes, SessionStoreError } from '../errors.js'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

const MAX_DEPTH = 1000

const invalid = (path: string, what: string): SessionStoreError =>
  new SessionStoreError(ErrorCodes.INVALID_VALUE, `value${path} is ${what}, which JSON cannot carry faithfully`)

/** Throws unless `value` is JSON; `seen` holds the objects on the path, made at the first one. */
const check = (value: unknown, path: string, seen: Set<object> | null): void => {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw invalid(path, String(value))
      return
    case 'object':
      break
    default:
      throw invalid(path, `a ${typeof value}`)
  }
  if (value === null) return
  seen ??= new Set()
  if (seen.has(value)) throw invalid(path, 'a cycle')
  if (seen.size >= MAX_DEPTH) throw invalid(path, `nested deeper than ${MAX_DEPTH}`)
  seen.add(value)
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) throw invalid(path, 'an Array subclass')
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw invalid(`${path}[${i}]`, 'a hole in an array')
      check(value[i], `${path}[${i}]`, seen)
    }
  } else {
    const proto: unknown = Object.getPrototypeOf(value)
    if (proto !== Object.prototype && proto !== null) {
      throw invalid(path, `an instance of ${(value as object).constructor?.name ?? 'a class'}`)
    }
    if (Object.getOwnPropertySymbols(value).length > 0) throw invalid(path, 'an object with symbol keys')
    for (const [k, v] of Object.entries(value)) {
      // Properties holding undefined are dropped, as JSON does.
      if (v !== undefined) check(v, `${path}.${k}`, seen)
    }
  }
  seen.delete(value)
}

/**
 * Whether `value` is JSON, as `check` decides, without building paths or sets: the check every
 * write makes. A cycle fails it at MAX_DEPTH; `check` then says where and why.
 */
const faithful = (value: unknown, depth: number): boolean => {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true
    case 'number':
      return Number.isFinite(value)
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth >= MAX_DEPTH) return false
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false
    for (let i = 0; i < value.length; i++) {
      if (!(i in value) || !faithful(value[i], depth + 1)) return false
    }
    return true
  }
  const proto: unknown = Object.getPrototypeOf(value)
  if ((proto !== Object.prototype && proto !== null) || Object.getOwnPropertySymbols(value).length > 0) return false
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key]
    if (v !== undefined && !faithful(v, depth + 1)) return false
  }
  return true
}

/** Throws SessionStoreError INVALID_VALUE unless `value` is JSON. */
const assertJson = (value: unknown): void => {
  if (faithful(value, 0)) return
  check(value, '', null)
  throw invalid('', 'not JSON') // unreachable while faithful and check agree
}

/** Returns the JSON text of `value`, or throws SessionStoreError INVALID_VALUE. */
export const encodeValue = (value: unknown): string => {
  if (value === undefined) throw invalid('', 'undefined')
  assertJson(value)
  return JSON.stringify(value)
}

/**
 * A copy of a value that `encodeValue` accepted or `decodeValue` returned, for handing a cached
 * value to a caller who may mutate it. Faster than a parse of its text; primitives are returned
 * as they are.
 */
export const cloneJson = <T extends Json>(value: T): T => {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(cloneJson) as T
  const out: Record<string, Json> = {}
  for (const key of Object.keys(value)) {
    const copy = cloneJson((value as Record<string, Json>)[key] as Json)
    // Assigning '__proto__' would set the prototype: defined instead, it stays an own property, as
    // JSON.parse makes it. (defineProperty for every key made a clone several times slower.)
    if (key === '__proto__') Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true })
    else out[key] = copy
  }
  return out as T
}

/**
 * Parses JSON text written by a peer. Returns undefined when the text is not JSON that this
 * library would have written (a peer cannot be trusted to obey).
 */
export const decodeValue = (text: unknown): Json | undefined => {
  if (typeof text !== 'string') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
    assertJson(value)
  } catch {
    return undefined
  }
  return value as Json
}

/**
 * The format of one store entry in the Y.Map: the JSON text of an envelope that carries the value
 * and who wrote it, when, and since when the key has held a value:
 *
 *     {"by":"<writer id>","at":<ms>,"since":<ms>,"m":<writer's metadata JSON>,"v":<value JSON>}
 *
 * exactly in that order and without whitespace between the fields, so that a reader finds the
 * value's text (whose size the limits count) as a slice of the envelope, and parses the metadata
 * and the value once each, without re-stringifying anything. `decodeEnvelope` is a pure function
 * over the text: it returns the parsed entry, or the reason it is invalid.
 *
 * In protected rooms (permissions) an entry is sealed: between `since` and `m` it carries
 *
 *     "ver":<n>,["del":true,]"pk":"<signer's peer id>","tok":"<signer's room token>","sig":"<signature>",
 *
 * the key's version (each write is one above the version it replaces), a tombstone mark for a
 * delete, the signer, the token that grants it the key, and its signature over the room, the key
 * and the envelope without the `sig` field (trust/signed-entry.ts). Every peer reads sealed
 * entries; only protected peers check the seal, and a tombstone reads as an absent key.
 *
 * A write made under the key's lock (store.lock) carries, right after `since`,
 *
 *     "lk":<fencing token>,"lg":"<the arbiter's signed grant of that lease>",
 *
 * so that a peer that was not told of the lease can check that the writer was given it.
 */

import { decodeValue, type Json } from './json.js'
import { isWellFormed, utf8Length, type Limits } from './limits.js'

/** Who wrote an entry, as the writer claims it: its peer id (the Yjs client id) and metadata. */
export interface Writer {
  id: string
  metadata: Json
}

/** An entry that passes the per-entry rules, parsed once. */
export interface Entry {
  readonly key: string
  /** The envelope as stored in the map. */
  readonly text: string
  /** Its size for the limits: key bytes + value text bytes (the envelope's other fields are free). */
  readonly bytes: number
  readonly value: Json
  readonly by: string
  readonly metadata: Json
  /** The writer's clock at the write, in ms. */
  readonly at: number
  /** The writer's clock when the key got its value, kept by overwrites: the entry's rank. */
  readonly since: number
  /** The seal of an entry written in a protected room; undefined in open rooms. */
  readonly seal?: Seal | undefined
  /** The fencing token of the lock its writer held on the key when it wrote (store.lock). */
  readonly lock?: number | undefined
  /** The arbiter's signed grant of that lock (a compact JWS: locks/wire.ts `verifyGrant`). */
  readonly grant?: string | undefined
  /** A tombstone: the key was deleted (written so under a lock, or in a protected room). */
  readonly deleted?: boolean | undefined
}

/** The protected fields of a sealed entry, as claimed: trust/signed-entry.ts checks them. */
export interface Seal {
  /** The key's version: one above the version this write replaced. */
  readonly ver: number
  /** A tombstone: the key was deleted (the entry's value is null and not shown). */
  readonly deleted: boolean
  /** The signer's peer id (its session key). */
  readonly signer: string
  /** The signer's room token (a JWT whose `cnf.jwk` is the signer's key). */
  readonly token: string
  /** The signature (base64url). */
  readonly signature: string
  /** The envelope's text without its `sig` field: what was signed (with room and key). */
  readonly unsigned: string
}

/** The most characters of a room token in a sealed entry. */
export const MAX_TOKEN_CHARS = 4096
/** The most characters of a lock grant in an entry (locks/wire.ts MAX_REQUEST_JWS_LENGTH). */
export const MAX_GRANT_CHARS = 4096
/** The most characters of an entry's lock and seal fields besides the token (token, grant, version, signer, signature). */
const MAX_SEAL_FIXED = '"lk":,"lg":"","ver":,"del":true,"pk":"","tok":"","sig":"",'.length + 16 + MAX_GRANT_CHARS + 16 + 180 + 200

/** A writer id: 1 to 128 printable ASCII characters, no quote or backslash (JSON needs no escape). */
export const WRITER_ID = /^[!#-[\]-~]{1,128}$/

const MS = '(0|[1-9][0-9]{0,15})'
/** Exported for tests: `readPrefix` must match exactly what it matches. */
export const PREFIX = new RegExp(`^\\{"by":"([!#-[\\]-~]{1,128})","at":${MS},"since":${MS},(?:"lk":${MS},(?:"lg":"([A-Za-z0-9_.-]{1,${MAX_GRANT_CHARS}})",)?)?(?:"ver":${MS},("del":true,)?"pk":"([A-Za-z0-9_.-]{43,180})","tok":"([A-Za-z0-9_.-]{1,${MAX_TOKEN_CHARS}})",("sig":"([A-Za-z0-9_-]{1,200})",)|("del":true,))?"m":`)
const VALUE_FIELD = ',"v":'

/** The index just past a clock (`0|[1-9][0-9]{0,15}`) that starts at `i`, or -1. */
const clockEnd = (s: string, i: number): number => {
  const first = s.charCodeAt(i)
  if (first === 0x30) return i + 1
  if (!(first >= 0x31 && first <= 0x39)) return -1
  let j = i + 1
  while (j < s.length && j - i < 16) {
    const c = s.charCodeAt(j)
    if (c < 0x30 || c > 0x39) break
    j++
  }
  return j
}

/**
 * PREFIX's match of `raw`: read by hand when the entry has neither lock nor seal fields (a live
 * update's usual entry; the pattern was most of its decode), by the pattern otherwise. The hand
 * reader answers only what the pattern would match the same way, and leaves every other text,
 * valid or not, to it.
 */
export const readPrefix = (raw: string): ArrayLike<string | undefined> & { 0: string } | null => {
  plain: {
    if (!raw.startsWith('{"by":"')) break plain
    let i = 7
    for (; i < raw.length && i < 7 + 129; i++) {
      const c = raw.charCodeAt(i)
      if (c === 0x22) break
      if (c < 0x21 || c > 0x7e || c === 0x5c) break plain
    }
    if (i === 7 || i > 7 + 128 || !raw.startsWith('","at":', i)) break plain
    const by = raw.slice(7, i)
    const atStart = i + 7
    const atEnd = clockEnd(raw, atStart)
    if (atEnd < 0 || !raw.startsWith(',"since":', atEnd)) break plain
    const sinceStart = atEnd + 9
    const sinceEnd = clockEnd(raw, sinceStart)
    if (sinceEnd < 0 || !raw.startsWith(',"m":', sinceEnd)) break plain
    return [raw.slice(0, sinceEnd + 5), by, raw.slice(atStart, atEnd), raw.slice(sinceStart, sinceEnd)]
  }
  return PREFIX.exec(raw)
}
/** The most UTF-16 code units an envelope has besides its metadata and value texts. */
const MAX_FIXED = '{"by":"","at":,"since":,"m":,"v":}'.length + 128 + 16 + 16 + MAX_SEAL_FIXED + MAX_TOKEN_CHARS

/** A non-negative integer that JSON and every peer read exactly: a clock in ms. */
export const isClock = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0

/** The envelope's text. `metadataText` and `valueText` are JSON texts the caller has validated. */
export const encodeEnvelope = (by: string, at: number, since: number, metadataText: string, valueText: string, { lock, grant, deleted = false }: { lock?: number | undefined, grant?: string | undefined, deleted?: boolean } = {}): string =>
  `{"by":"${by}","at":${at},"since":${since},${lockHead(lock, grant)}${deleted ? '"del":true,' : ''}"m":${metadataText}${VALUE_FIELD}${valueText}}`

/** What a sealed entry's signer supplies besides the envelope's own fields. */
export interface SealFields {
  ver: number
  deleted: boolean
  signer: string
  token: string
}

/** A sealed envelope without its signature: the text to sign (with room and key). */
export const encodeUnsignedEnvelope = (by: string, at: number, since: number, seal: SealFields, metadataText: string, valueText: string, lock?: number, grant?: string): string =>
  `{"by":"${by}","at":${at},"since":${since},${lockHead(lock, grant)}${sealHead(seal)}"m":${metadataText}${VALUE_FIELD}${valueText}}`

/** `grant` is a compact JWS (base64url and dots: nothing JSON escapes), written only with `lock`. */
const lockHead = (lock: number | undefined, grant: string | undefined): string =>
  lock === undefined ? '' : grant === undefined ? `"lk":${lock},` : `"lk":${lock},"lg":"${grant}",`

/** The sealed envelope: `unsigned` (from encodeUnsignedEnvelope) with the signature inserted before `m`. */
export const insertSignature = (unsigned: string, signature: string): string => {
  const at = unsigned.indexOf('"m":')
  return `${unsigned.slice(0, at)}"sig":"${signature}",${unsigned.slice(at)}`
}

const sealHead = ({ ver, deleted, signer, token }: SealFields): string =>
  `"ver":${ver},${deleted ? '"del":true,' : ''}"pk":"${signer}","tok":"${token}",`

/**
 * The index just past the JSON value that starts at `i` in `s`, or -1. Only finds the boundary:
 * what lies in between is checked by JSON.parse afterwards. A number, literal or anything else
 * that is not a string, object or array ends at the next comma.
 */
const valueEnd = (s: string, i: number): number => {
  let depth = 0
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x22) { // a string: skip to its closing quote
      for (i++; i < s.length; i++) {
        const d = s.charCodeAt(i)
        if (d === 0x5c) i++
        else if (d === 0x22) break
      }
      if (i >= s.length) return -1
      if (depth === 0) return i + 1
    } else if (c === 0x7b || c === 0x5b) {
      depth++
    } else if (c === 0x7d || c === 0x5d) {
      if (--depth <= 0) return depth === 0 ? i + 1 : -1
    } else if (c === 0x2c && depth === 0) {
      return i
    }
  }
  return -1
}

/**
 * Applies the per-entry rules every honest peer enforces to what a peer put under `key`: the
 * parsed entry, or why it is invalid. The writer's metadata obeys the value's rules (JSON, at
 * most `maxValueBytes`); an entry whose metadata breaks them is invalid as a whole.
 */
export const decodeEnvelope = (key: string, raw: unknown, limits: Limits): Entry | string => {
  const keyBytes = utf8Length(key)
  if (key.length === 0 || keyBytes > limits.maxKeyBytes || !isWellFormed(key)) return 'the key is empty, too long or not well-formed'
  if (typeof raw !== 'string') return 'the entry is not text'
  // UTF-8 takes at least one byte per UTF-16 code unit: a longer text is over the limits, unread.
  if (raw.length > MAX_FIXED + 2 * limits.maxValueBytes) return `the entry is ${raw.length} characters, more than any valid entry`
  const prefix = readPrefix(raw)
  if (prefix === null) return 'the entry is not an envelope {"by","at","since","m","v"} with a writer id and clocks'
  const at = Number(prefix[2])
  const since = Number(prefix[3])
  if (!isClock(at) || !isClock(since)) return 'a clock of the entry is not a safe integer'
  const lock = prefix[4] === undefined ? undefined : Number(prefix[4])
  if (lock !== undefined && !isClock(lock)) return 'the lock fencing token of the entry is not a safe integer'
  const grant = prefix[5]
  let seal: Seal | undefined
  if (prefix[6] !== undefined) {
    const ver = Number(prefix[6])
    if (!isClock(ver)) return 'the version of the entry is not a safe integer'
    const signatureField = prefix[10] as string
    const end = prefix[0].length - '"m":'.length
    seal = {
      ver,
      deleted: prefix[7] !== undefined,
      signer: prefix[8] as string,
      token: prefix[9] as string,
      signature: prefix[11] as string,
      unsigned: raw.slice(0, end - signatureField.length) + raw.slice(end)
    }
  }
  const deleted = seal?.deleted === true || prefix[12] !== undefined
  const metadataStart = prefix[0].length
  const metadataEnd = valueEnd(raw, metadataStart)
  if (metadataEnd < 0 || !raw.startsWith(VALUE_FIELD, metadataEnd) || raw.charCodeAt(raw.length - 1) !== 0x7d) {
    return 'the entry is not an envelope {"by","at","since","m","v"}'
  }
  const metadataText = raw.slice(metadataStart, metadataEnd)
  const metadataBytes = utf8Length(metadataText)
  if (metadataBytes > limits.maxValueBytes) return `the writer's metadata is ${metadataBytes} bytes, over the limit of ${limits.maxValueBytes}`
  const metadata = metadataText === 'null' ? null : decodeValue(metadataText)
  if (metadata === undefined) return 'the writer\'s metadata is not valid JSON'
  const valueText = raw.slice(metadataEnd + VALUE_FIELD.length, -1)
  const valueBytes = utf8Length(valueText)
  if (valueBytes > limits.maxValueBytes) return `the value is ${valueBytes} bytes, over the limit of ${limits.maxValueBytes}`
  const value = decodeValue(valueText)
  if (value === undefined) return 'the value is not valid JSON'
  // Every field spelled out, in one order: entries share one object shape (store.ts builds its own so).
  return { key, text: raw, bytes: keyBytes + valueBytes, value, by: prefix[1] as string, metadata, at, since, seal, lock, grant, deleted: deleted || undefined }
}

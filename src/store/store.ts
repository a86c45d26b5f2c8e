/**
 * The session store facade: the SDK-style API of the product page over one Y.Map, with its limits.
 *
 * Each entry is stored in the Y.Map as the JSON text of its value. Text makes the byte accounting
 * exact and cheap, and anything else a peer puts in the map (a non-string, text that is not JSON,
 * an oversize value) is recognisably invalid. Peers cannot be trusted to obey the limits, so the
 * facade keeps its own view of the map: only entries that pass the per-entry rules are visible to
 * readers and observers; the others are reported once and otherwise ignored.
 *
 * Yjs resolves concurrent writes to one key by last writer wins; the store does not hide that.
 */

import type * as Y from 'yjs'
import { ErrorCodes, SessionStoreError } from '../errors.js'
import { cloneJson, decodeValue, encodeValue, type Json } from './json.js'
import { isWellFormed, resolveLimits, utf8Length, type Limits } from './limits.js'

export type ChangeObserver = (key: string, value: Json | undefined) => void

/** The handle `observeChanges` returns; pass it to `removeObserver`. */
export interface Observer {
  /** The keys observed; null for an `observeAllChanges` observer. */
  readonly keys: readonly string[] | null
}

export type Completion = (finalValue: Json | undefined, error: SessionStoreError | null) => void

export interface Usage {
  keys: number
  bytes: number
  limits: Limits
}

export interface StoreOptions {
  limits?: Partial<Limits>
  /** Receives what the store cannot throw to a caller: observer exceptions, invalid remote entries. */
  onError?: (error: SessionStoreError) => void
}

/** A visible entry: its JSON text as stored, its size (key + text), and its value parsed once. */
interface Entry {
  text: string
  bytes: number
  value: Json
}

interface ObserverRecord extends Observer {
  fn: ChangeObserver
}

/** The origin of transactions written through this facade (hocuspocus-style tagged origin). */
export interface LocalOrigin {
  readonly source: 'local'
  readonly store: SessionStore
}

export class SessionStore {
  readonly limits: Limits
  readonly #map: Y.Map<unknown>
  readonly #origin: LocalOrigin
  readonly #onError: (error: SessionStoreError) => void
  /** The visible entries: those that pass the per-entry rules. */
  readonly #entries = new Map<string, Entry>()
  readonly #observers = new Map<string, Set<ObserverRecord>>()
  readonly #allObservers = new Set<ObserverRecord>()
  #bytes = 0
  #closed = false
  /** The entry a local write is storing, so the map event it causes needs no parse or measure. */
  #writing: { key: string, entry: Entry } | null = null

  constructor (map: Y.Map<unknown>, { limits, onError = () => {} }: StoreOptions = {}) {
    this.limits = resolveLimits(limits)
    this.#map = map
    this.#origin = Object.freeze({ source: 'local' as const, store: this })
    this.#onError = onError
    for (const key of map.keys()) this.#refresh(key, true)
    map.observe(this.#onMapEvent)
  }

  /** True once the session has been left: every call then fails with NOT_AVAILABLE. */
  get closed (): boolean {
    return this.#closed
  }

  /**
   * Sets `key` to `value` (undefined deletes). Resolves the value every reader now sees, or
   * rejects with SessionStoreError; a refused write changes nothing. With `completion`, reports
   * through it instead, as in the SDK.
   */
  set (key: string, value: unknown): Promise<Json | undefined>
  set (key: string, value: unknown, completion: Completion): void
  set (key: string, value: unknown, completion?: Completion): Promise<Json | undefined> | void {
    let result: Promise<Json | undefined>
    try {
      result = Promise.resolve(this.#write(key, value))
    } catch (err) {
      result = Promise.reject(err)
    }
    if (completion === undefined) return result
    result.then(
      (finalValue) => this.#call(() => completion(finalValue, null), key),
      (err: SessionStoreError) => this.#call(() => completion(undefined, err), key)
    )
  }

  /** Deletes `key`. Deleting a missing key is not an error. */
  async delete (key: string): Promise<void> {
    this.#write(key, undefined)
  }

  /** One-shot read of `key`: its value, or undefined. */
  async object (key: string): Promise<Json | undefined> {
    return this.get(key)
  }

  /** Synchronous read of the local replica. */
  get (key: string): Json | undefined {
    this.#assertOpen()
    const entry = this.#entries.get(key)
    return entry === undefined ? undefined : cloneJson(entry.value)
  }

  has (key: string): boolean {
    this.#assertOpen()
    return this.#entries.has(key)
  }

  keys (): string[] {
    this.#assertOpen()
    return Array.from(this.#entries.keys())
  }

  toJSON (): Record<string, Json> {
    this.#assertOpen()
    const out: Record<string, Json> = {}
    for (const [key, entry] of this.#entries) out[key] = cloneJson(entry.value)
    return out
  }

  usage (): Usage {
    this.#assertOpen()
    return { keys: this.#entries.size, bytes: this.#bytes, limits: { ...this.limits } }
  }

  /**
   * Calls `fn` once per key in `keys` with its current value (undefined if absent), then on every
   * change of those keys, local or remote. An observer that throws is reported, never propagated.
   */
  observeChanges (keys: readonly string[], fn: ChangeObserver): Observer {
    this.#assertOpen()
    if (!Array.isArray(keys)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'observeChanges takes an array of keys')
    if (typeof fn !== 'function') throw new TypeError('observeChanges takes an observer function')
    keys.forEach((key) => this.#assertKey(key))
    const unique = Object.freeze([...new Set(keys)])
    const record: ObserverRecord = { keys: unique, fn }
    for (const key of unique) {
      let set = this.#observers.get(key)
      if (set === undefined) this.#observers.set(key, set = new Set())
      set.add(record)
    }
    for (const key of unique) this.#call(() => fn(key, this.get(key)), key)
    return record
  }

  /**
   * Calls `fn` once per key the store holds, then on every change of any key (a deleted key is
   * reported with undefined). For views of the whole store, such as an inspector.
   */
  observeAllChanges (fn: ChangeObserver): Observer {
    this.#assertOpen()
    if (typeof fn !== 'function') throw new TypeError('observeAllChanges takes an observer function')
    const record: ObserverRecord = { keys: null, fn }
    this.#allObservers.add(record)
    for (const key of this.keys()) this.#call(() => fn(key, this.get(key)), key)
    return record
  }

  /** Stops `observer`. Returns false if it was not observing. */
  removeObserver (observer: Observer): boolean {
    if (observer.keys === null) return this.#allObservers.delete(observer as ObserverRecord)
    let removed = false
    for (const key of observer.keys) {
      const set = this.#observers.get(key)
      if (set?.delete(observer as ObserverRecord) === true) {
        removed = true
        if (set.size === 0) this.#observers.delete(key)
      }
    }
    return removed
  }

  /** Detaches the facade from the map. Called by the session on leave. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#map.unobserve(this.#onMapEvent)
    this.#observers.clear()
    this.#allObservers.clear()
  }

  #write (key: string, value: unknown): Json | undefined {
    this.#assertOpen()
    this.#assertKey(key)
    const old = this.#entries.get(key)
    if (value === undefined) {
      if (this.#map.has(key)) this.#transact(() => this.#map.delete(key))
      return undefined
    }
    const text = encodeValue(value)
    const valueBytes = utf8Length(text)
    if (valueBytes > this.limits.maxValueBytes) {
      throw new SessionStoreError(ErrorCodes.VALUE_TOO_LARGE, `value of '${key}' is ${valueBytes} bytes, over the limit of ${this.limits.maxValueBytes}`, { key })
    }
    if (old === undefined && this.#entries.size + 1 > this.limits.maxKeys) {
      throw new SessionStoreError(ErrorCodes.TOO_MANY_KEYS, `the store holds ${this.#entries.size} keys; the limit is ${this.limits.maxKeys}`, { key })
    }
    const total = this.#bytes - (old?.bytes ?? 0) + utf8Length(key) + valueBytes
    // Concurrent writers can push the merged map over the limit: then only growing writes are refused.
    if (total > this.limits.maxTotalBytes && total > this.#bytes) {
      throw new SessionStoreError(ErrorCodes.STORE_TOO_LARGE, `writing '${key}' would make the store ${total} bytes, over the limit of ${this.limits.maxTotalBytes}`, { key })
    }
    const entry: Entry = { text, bytes: utf8Length(key) + valueBytes, value: JSON.parse(text) as Json }
    this.#writing = { key, entry }
    try {
      this.#transact(() => this.#map.set(key, text))
    } finally {
      this.#writing = null
    }
    return cloneJson(entry.value)
  }

  #transact (fn: () => void): void {
    const doc = this.#map.doc
    if (doc === null) fn()
    else doc.transact(fn, this.#origin)
  }

  #onMapEvent = (event: Y.YMapEvent<unknown>): void => {
    const remote = event.transaction.origin !== this.#origin
    for (const key of event.keysChanged) {
      const wasVisible = this.#entries.has(key)
      const visible = this.#refresh(key, remote)
      if (!wasVisible && !visible) continue
      for (const observers of [this.#observers.get(key), this.#allObservers]) {
        if (observers === undefined) continue
        for (const record of Array.from(observers)) {
          if (this.#closed) return
          if (!observers.has(record)) continue // removed by an earlier observer
          this.#call(() => record.fn(key, this.get(key)), key)
        }
      }
    }
  }

  /** Re-reads `key` from the map into the visible entries; returns whether it is visible. */
  #refresh (key: string, remote: boolean): boolean {
    const old = this.#entries.get(key)
    if (old !== undefined) {
      this.#bytes -= old.bytes
      this.#entries.delete(key)
    }
    if (!this.#map.has(key)) return false
    const raw = this.#map.get(key)
    const writing = this.#writing
    const entry = !remote && writing?.key === key && writing.entry.text === raw ? writing.entry : this.#readEntry(key, raw)
    if (typeof entry === 'string') {
      if (remote) this.#report(new SessionStoreError(ErrorCodes.INVALID_REMOTE_ENTRY, `ignoring the entry '${key}' written by another peer: ${entry}`, { key }))
      return false
    }
    this.#entries.set(key, entry)
    this.#bytes += entry.bytes
    return true
  }

  /** Applies the per-entry rules every honest peer enforces: the entry, or what is wrong with it. */
  #readEntry (key: string, raw: unknown): Entry | string {
    const keyBytes = utf8Length(key)
    if (key.length === 0 || keyBytes > this.limits.maxKeyBytes) return 'the key is empty or too long'
    if (typeof raw !== 'string') return 'the value is not JSON text'
    const bytes = utf8Length(raw)
    if (bytes > this.limits.maxValueBytes) return `the value is ${bytes} bytes, over the limit of ${this.limits.maxValueBytes}`
    const value = decodeValue(raw)
    if (value === undefined) return 'the value is not valid JSON'
    return { text: raw, bytes: keyBytes + bytes, value }
  }

  #assertKey (key: unknown): asserts key is string {
    if (typeof key !== 'string' || key.length === 0) {
      throw new SessionStoreError(ErrorCodes.INVALID_KEY, `keys are non-empty strings, got ${key === '' ? 'an empty string' : typeof key}`)
    }
    if (!isWellFormed(key)) throw new SessionStoreError(ErrorCodes.INVALID_KEY, 'the key holds a lone surrogate, which UTF-8 cannot carry', { key })
    const bytes = utf8Length(key)
    if (bytes > this.limits.maxKeyBytes) {
      throw new SessionStoreError(ErrorCodes.INVALID_KEY, `the key is ${bytes} bytes, over the limit of ${this.limits.maxKeyBytes}`, { key })
    }
  }

  #assertOpen (): void {
    if (this.#closed) throw new SessionStoreError(ErrorCodes.NOT_AVAILABLE, 'the session store is not available: the session has been left')
  }

  /** Runs an application callback; what it throws is reported, never propagated into Yjs. */
  #call (fn: () => void, key: string): void {
    try {
      fn()
    } catch (err) {
      this.#report(new SessionStoreError(ErrorCodes.CALLBACK_FAILED, `a callback for '${key}' threw: ${String(err)}`, { key, cause: err }))
    }
  }

  #report (error: SessionStoreError): void {
    try {
      this.#onError(error)
    } catch {}
  }
}

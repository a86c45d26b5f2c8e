/**
 * Which valid entries the store shows. Peers cannot be trusted to obey the whole-store limits
 * (concurrent writers, or one peer writing straight into the document, can push the merged map
 * past `maxKeys` and `maxTotalBytes`), so every honest peer applies one rule that depends only on
 * the document's content, never on arrival order or local state, and all of them agree:
 *
 * - When the valid entries are within both limits, all of them are visible.
 * - Otherwise they are ranked by (`since` ascending, then key in UTF-16 code-unit order), and taken
 *   greedily in that order while both limits hold: an entry that does not fit is hidden, and later,
 *   smaller ones may still fit. `since` is the writer's clock when the key got its value, and
 *   overwrites keep it, so the keys that were there first keep their place and an overwrite never
 *   moves its key behind the others.
 *
 * Hidden entries stay in the document; a delete or a shrink that makes room shows them again. The
 * normal case (within the limits) is bookkeeping per changed key; only a store over a limit keeps
 * the ranked order (kept sorted incrementally) and takes the greedy pass again on each change.
 */

import type { Limits } from './limits.js'

/** What the rule reads of an entry. */
export interface Ranked {
  readonly key: string
  readonly since: number
  /** Key bytes + value bytes. */
  readonly bytes: number
}

/** The ranking: `since` ascending, then key in code-unit order. Keys are unique, so it is total. */
export const compareRank = (a: Ranked, b: Ranked): number =>
  a.since !== b.since ? a.since - b.since : a.key < b.key ? -1 : a.key > b.key ? 1 : 0

/** The index of the first element of sorted `ranked` that does not rank before `entry`. */
const lowerBound = (ranked: readonly Ranked[], entry: Ranked): number => {
  let lo = 0
  let hi = ranked.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareRank(ranked[mid] as Ranked, entry) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** The visible entries of `ranked` (sorted by `compareRank`): taken in order while both limits hold. */
export const selectVisible = <E extends Ranked>(ranked: readonly E[], { maxKeys, maxTotalBytes }: Pick<Limits, 'maxKeys' | 'maxTotalBytes'>): Map<string, E> => {
  const visible = new Map<string, E>()
  let bytes = 0
  for (const entry of ranked) {
    if (bytes + entry.bytes > maxTotalBytes) continue
    visible.set(entry.key, entry)
    bytes += entry.bytes
    // An entry takes at least 2 bytes (a key and a value of one byte each): nothing more can fit.
    if (visible.size === maxKeys || maxTotalBytes - bytes < 2) break
  }
  return visible
}

/** A change of what readers see: the visible entry of `key` before and after (undefined: absent or hidden). */
export interface VisibleChange<E> {
  key: string
  before: E | undefined
  after: E | undefined
}

/** Changes at most this many entries of a ranked order one by one; more are merged in one pass. */
const INCREMENTAL = 16

/**
 * The valid entries of a store and the visible ones among them. `update` takes the new valid
 * entry of each changed key (undefined: absent or invalid) and returns what readers see change.
 */
export class Visibility<E extends Ranked> {
  readonly #limits: Pick<Limits, 'maxKeys' | 'maxTotalBytes'>
  readonly #valid = new Map<string, E>()
  #validBytes = 0
  #visible = new Map<string, E>()
  #visibleBytes = 0
  /** The valid entries sorted by rank, kept only while they are over a limit. */
  #ranked: E[] | null = null
  /** The visible entries in rank order, made when read after a change. */
  #ordered: E[] | null = null

  constructor (limits: Pick<Limits, 'maxKeys' | 'maxTotalBytes'>) {
    this.#limits = limits
  }

  /** The visible entries: always within both limits. */
  get visible (): ReadonlyMap<string, E> {
    return this.#visible
  }

  /** The visible entries in rank order: an order that depends only on the document, as the rule does. */
  ordered (): readonly E[] {
    this.#ordered ??= Array.from(this.#visible.values()).sort(compareRank)
    return this.#ordered
  }

  /** Key and value bytes of the visible entries. */
  get bytes (): number {
    return this.#visibleBytes
  }

  /** How many valid entries the limits hide. */
  get hidden (): number {
    return this.#valid.size - this.#visible.size
  }

  /** Applies the new valid entry of each changed key (each key at most once); returns what readers see change. */
  update (changes: Iterable<readonly [string, E | undefined]>): Array<VisibleChange<E>> {
    const touched: string[] = []
    const replaced: Array<readonly [E | undefined, E | undefined]> = []
    for (const [key, entry] of changes) {
      const old = this.#valid.get(key)
      if (old === entry) continue
      if (old !== undefined) this.#validBytes -= old.bytes
      if (entry !== undefined) {
        this.#valid.set(key, entry)
        this.#validBytes += entry.bytes
      } else if (old !== undefined) {
        this.#valid.delete(key)
      }
      touched.push(key)
      replaced.push([old, entry])
    }
    if (touched.length === 0) return []
    this.#ordered = null
    const within = this.#valid.size <= this.#limits.maxKeys && this.#validBytes <= this.#limits.maxTotalBytes
    if (within && this.#ranked === null) return this.#updateAllVisible(touched)
    const before = this.#visible
    if (within) {
      this.#ranked = null
      this.#visible = new Map(this.#valid)
      this.#visibleBytes = this.#validBytes
    } else {
      this.#rank(replaced)
      this.#visible = selectVisible(this.#ranked as E[], this.#limits)
      this.#visibleBytes = 0
      for (const entry of this.#visible.values()) this.#visibleBytes += entry.bytes
    }
    return diff(before, this.#visible, touched)
  }

  /** Within the limits and so before: every valid entry is visible, per changed key. */
  #updateAllVisible (touched: readonly string[]): Array<VisibleChange<E>> {
    const out: Array<VisibleChange<E>> = []
    for (const key of touched) {
      const before = this.#visible.get(key)
      const after = this.#valid.get(key)
      if (before !== undefined) this.#visibleBytes -= before.bytes
      if (after === undefined) this.#visible.delete(key)
      else {
        this.#visible.set(key, after)
        this.#visibleBytes += after.bytes
      }
      if (before !== after) out.push({ key, before, after })
    }
    return out
  }

  /** Brings the ranked order up to date with the valid entries, given each changed key's old and new entry. */
  #rank (replaced: ReadonlyArray<readonly [E | undefined, E | undefined]>): void {
    const ranked = this.#ranked
    if (ranked === null) {
      this.#ranked = Array.from(this.#valid.values()).sort(compareRank)
    } else if (replaced.length <= INCREMENTAL) {
      for (const [old, entry] of replaced) {
        if (old !== undefined && entry !== undefined && old.since === entry.since) {
          ranked[lowerBound(ranked, old)] = entry // an overwrite keeps its rank: no entry moves
          continue
        }
        if (old !== undefined) ranked.splice(lowerBound(ranked, old), 1)
        if (entry !== undefined) ranked.splice(lowerBound(ranked, entry), 0, entry)
      }
    } else {
      const gone = new Set<E>()
      const added: E[] = []
      for (const [old, entry] of replaced) {
        if (old !== undefined) gone.add(old)
        if (entry !== undefined) added.push(entry)
      }
      added.sort(compareRank)
      const merged: E[] = []
      let j = 0
      for (const entry of ranked) {
        if (gone.has(entry)) continue
        while (j < added.length && compareRank(added[j] as E, entry) < 0) merged.push(added[j++] as E)
        merged.push(entry)
      }
      while (j < added.length) merged.push(added[j++] as E)
      this.#ranked = merged
    }
  }
}

/** The keys whose visible entry differs between `before` and `after`: the touched ones first, in order. */
const diff = <E>(before: ReadonlyMap<string, E>, after: ReadonlyMap<string, E>, touched: readonly string[]): Array<VisibleChange<E>> => {
  const out: Array<VisibleChange<E>> = []
  const seen = new Set<string>()
  for (const key of touched) {
    if (!before.has(key) && !after.has(key)) continue // hidden or absent before and after: nothing to tell
    seen.add(key)
    const b = before.get(key)
    const a = after.get(key)
    if (b !== a) out.push({ key, before: b, after: a })
  }
  for (const [key, b] of before) {
    if (seen.has(key)) continue
    const a = after.get(key)
    if (a !== b) out.push({ key, before: b, after: a })
  }
  for (const [key, a] of after) {
    if (!seen.has(key) && !before.has(key)) out.push({ key, before: undefined, after: a })
  }
  return out
}

/**
 * The data every contender writes, defined once so the sides of a comparison cannot drift apart.
 */

/** 100 keys, the store's default key limit: k00 ... k99. */
export const KEYS: readonly string[] = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(2, '0')}`)

/** A throughput write: about 100 bytes of JSON, `seq` numbering the writes of one run. */
export const smallValue = (seq: number): { seq: number, pad: string } => ({ seq, pad: SMALL_PAD })
const SMALL_PAD = 'x'.repeat(80)

/**
 * A full-store value: 100 of them, with their keys, come close to the store's 64 KB limit
 * (65,536 bytes) without passing it at any generation up to 10^7.
 */
export const fullValue = (gen: number): { gen: number, pad: string } => ({ gen, pad: FULL_PAD })
const FULL_PAD = 'x'.repeat(620)

/** Bytes of the live data: every key and its value's JSON text, as the store counts them. */
export const liveBytes = (entries: Iterable<[string, unknown]>): number => {
  let bytes = 0
  for (const [key, value] of entries) bytes += Buffer.byteLength(key) + Buffer.byteLength(JSON.stringify(value))
  return bytes
}

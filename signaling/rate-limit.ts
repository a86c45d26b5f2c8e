/**
 * Token buckets, for a connection's frames and for an address's upgrades and frames. Pure: the
 * caller passes the clock (a monotonic one, `performance.now()`), so tests need no timers.
 *
 * Each message takes one token; tokens refill at `rate` per second up to `burst`. A message that
 * finds no token is dropped, and the bucket goes into debt by one: a sender that keeps going while
 * throttled reaches a debt of `burst` and is closed. The debt stops growing there, so a sender that
 * pauses pays it back within `2 * burst / rate` seconds and is served again.
 *
 * A bucket is one number, the time (ms, on the caller's clock) at which it will be full again
 * (the "theoretical arrival time" of GCRA): tokens at `now` are `burst - (fullAt - now) * rate /
 * 1000` while that time is ahead, `burst` once it has passed. Every connection and every client
 * address holds buckets, so one number each instead of an object of two is memory saved per idle
 * connection.
 */

export interface RateLimit {
  /** Tokens added per second. */
  rate: number
  /** Bucket size: the most messages accepted back to back. */
  burst: number
}

export type Verdict = 'allow' | 'drop' | 'close'

/** A full bucket: its time to be full has passed, whatever the clock reads. */
export const FULL = Number.NEGATIVE_INFINITY

/** Slack, in tokens, for the rounding of sums of clock readings that carry fractions of a ms. */
const EPSILON = 1e-6

/** Tokens the bucket `fullAt` lacks at `now` to be full: 0 (full) up to 2 * burst (full debt). */
const missing = (fullAt: number, limit: RateLimit, now: number): number => Math.max(0, fullAt - now) * limit.rate / 1000

/** One message at `now`: the bucket's new `fullAt`. A clock that went backwards would look like debt, never like tokens. */
export const charge = (fullAt: number, limit: RateLimit, now: number): number =>
  now + Math.min(missing(fullAt, limit, now) + 1, 2 * limit.burst) * 1000 / limit.rate

/** The verdict on the message that just charged the bucket to `fullAt`, at `now`. */
export const verdictOf = (fullAt: number, limit: RateLimit, now: number): Verdict => {
  const lacking = missing(fullAt, limit, now)
  if (lacking <= limit.burst + EPSILON) return 'allow'
  return lacking >= 2 * limit.burst - EPSILON ? 'close' : 'drop'
}

/** True when the bucket has refilled completely by `now`: forgetting it changes nothing. */
export const isFull = (fullAt: number, now: number): boolean => fullAt <= now

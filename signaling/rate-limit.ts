/**
 * Token buckets, for a connection's frames and for an address's upgrades and frames. Pure: the
 * caller passes the clock, so tests need no timers.
 *
 * Each message takes one token; tokens refill at `rate` per second up to `burst`. A message that
 * finds no token is dropped, and the bucket goes into debt by one: a sender that keeps going while
 * throttled reaches a debt of `burst` and is closed. The debt stops growing there, so a sender that
 * pauses pays it back within `2 * burst / rate` seconds and is served again.
 */

export interface RateLimit {
  /** Tokens added per second. */
  rate: number
  /** Bucket size: the most messages accepted back to back. */
  burst: number
}

export interface TokenBucket {
  tokens: number
  /** Clock reading (ms) of the last refill. */
  updatedAt: number
}

export type Verdict = 'allow' | 'drop' | 'close'

export const createBucket = (limit: RateLimit, now: number): TokenBucket => ({ tokens: limit.burst, updatedAt: now })

const refill = (bucket: TokenBucket, limit: RateLimit, now: number): void => {
  const elapsed = Math.max(0, now - bucket.updatedAt)
  bucket.tokens = Math.min(limit.burst, bucket.tokens + elapsed * limit.rate / 1000)
  bucket.updatedAt = now
}

export const take = (bucket: TokenBucket, limit: RateLimit, now: number): Verdict => {
  refill(bucket, limit, now)
  bucket.tokens = Math.max(bucket.tokens - 1, -limit.burst)
  if (bucket.tokens >= 0) return 'allow'
  return bucket.tokens <= -limit.burst ? 'close' : 'drop'
}

/** True when the bucket has refilled completely by `now`: forgetting it changes nothing. */
export const isFull = (bucket: TokenBucket, limit: RateLimit, now: number): boolean =>
  bucket.tokens + Math.max(0, now - bucket.updatedAt) * limit.rate / 1000 >= limit.burst

/**
 * Per-connection token bucket. Pure: the caller passes the clock, so tests need no timers.
 *
 * Each message takes one token; tokens refill at `rate` per second up to `burst`. A message that
 * finds no token is dropped, and the bucket goes into debt by one: a sender that keeps going while
 * throttled reaches a debt of `burst` and is closed. A sender that pauses pays its debt back at
 * `rate` per second and is served again.
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

export const take = (bucket: TokenBucket, limit: RateLimit, now: number): Verdict => {
  const elapsed = Math.max(0, now - bucket.updatedAt)
  bucket.tokens = Math.min(limit.burst, bucket.tokens + elapsed * limit.rate / 1000)
  bucket.updatedAt = now
  bucket.tokens -= 1
  if (bucket.tokens >= 0) return 'allow'
  return bucket.tokens <= -limit.burst ? 'close' : 'drop'
}

import { describe, expect, it } from 'vitest'
import { createBucket, take } from '../signaling/rate-limit.js'

describe('token bucket', () => {
  const limit = { rate: 10, burst: 5 }

  it('allows a full burst back to back, then drops', () => {
    const bucket = createBucket(limit, 0)
    const verdicts = Array.from({ length: 7 }, () => take(bucket, limit, 0))
    expect(verdicts).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop', 'drop'])
  })

  it('refills at the rate, never above the burst', () => {
    const bucket = createBucket(limit, 0)
    for (let i = 0; i < 5; i++) take(bucket, limit, 0)
    expect(take(bucket, limit, 0)).toBe('drop')
    // 1 s later: 10 tokens earned, which repay the debt of the dropped message and fill the bucket.
    expect(Array.from({ length: 6 }, () => take(bucket, limit, 1000))).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop'])
    // 0.2 s later: 2 tokens.
    expect(Array.from({ length: 3 }, () => take(bucket, limit, 1200))).toEqual(['allow', 'drop', 'drop'])
  })

  it('closes a sender that keeps going while throttled', () => {
    const bucket = createBucket(limit, 0)
    const verdicts = Array.from({ length: 10 }, () => take(bucket, limit, 0))
    expect(verdicts.slice(5)).toEqual(['drop', 'drop', 'drop', 'drop', 'close'])
  })

  it('forgives a sender that pauses after being throttled', () => {
    const bucket = createBucket(limit, 0)
    for (let i = 0; i < 8; i++) take(bucket, limit, 0)
    expect(take(bucket, limit, 1000)).toBe('allow')
  })

  it('ignores a clock that goes backwards', () => {
    const bucket = createBucket(limit, 1000)
    expect(take(bucket, limit, 0)).toBe('allow')
    expect(bucket.tokens).toBe(4)
  })
})

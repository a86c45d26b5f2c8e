/**
 * What this peer may send in reply to others, bounded, so that no one can make it amplify:
 * re-announces, awareness replies and sync replies each draw from a token bucket, per room or per
 * connection. A reply over budget is not sent; the other side's next ordinary message, or its
 * own retry, gets the same result a little later. The numbers are named here, in one place.
 */

/** Announces this peer publishes (its own and those answering others), per room. */
export const ANNOUNCE_BUDGET = { rate: 2, burst: 6 }
/** Answers to awareness queries, per connection. */
export const AWARENESS_REPLY_BUDGET = { rate: 0.5, burst: 2 }
/** Answers to sync step 1 (a whole state each), per connection. */
export const SYNC_REPLY_BUDGET = { rate: 0.5, burst: 3 }

export interface TokenBucket {
  /** Takes a token if there is one; returns whether it did. */
  take: () => boolean
}

/** A token bucket of `burst` tokens refilled at `rate` per second; `now` in ms (injectable for tests). */
export const createTokenBucket = ({ rate, burst }: { rate: number, burst: number }, now: () => number = Date.now): TokenBucket => {
  let tokens = burst
  let last = now()
  return {
    take: () => {
      const t = now()
      tokens = Math.min(burst, tokens + ((t - last) / 1000) * rate)
      last = t
      if (tokens < 1) return false
      tokens -= 1
      return true
    }
  }
}

/** Message types whose answer is a reply that costs this peer (see replication.ts). */
const MESSAGE_SYNC = 0
const SYNC_STEP_1 = 0
const MESSAGE_QUERY_AWARENESS = 3

/**
 * The hook that bounds replies per connection: a sync step 1 (answered with a whole state) or an
 * awareness query (answered with every state) over budget is dropped before it is read.
 */
export const replyBudgets = (onDrop: (reason: string) => void = () => {}, now: () => number = Date.now): { incoming: (connection: object, message: Uint8Array) => Uint8Array | null } => {
  const buckets = new WeakMap<object, { sync: TokenBucket, awareness: TokenBucket }>()
  return {
    incoming: (connection, message) => {
      const isSyncRequest = message[0] === MESSAGE_SYNC && message[1] === SYNC_STEP_1
      if (!isSyncRequest && message[0] !== MESSAGE_QUERY_AWARENESS) return message
      let bucket = buckets.get(connection)
      if (bucket === undefined) buckets.set(connection, bucket = { sync: createTokenBucket(SYNC_REPLY_BUDGET, now), awareness: createTokenBucket(AWARENESS_REPLY_BUDGET, now) })
      if ((isSyncRequest ? bucket.sync : bucket.awareness).take()) return message
      onDrop(isSyncRequest ? 'sync requests over budget' : 'awareness queries over budget')
      return null
    }
  }
}

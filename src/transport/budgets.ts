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
/**
 * State checks (anti-entropy: each may be answered with a repair, up to a whole state), per
 * connection. An honest peer sends one every 10 s, and one more per sync it forwards.
 */
export const STATE_CHECK_BUDGET = { rate: 1, burst: 10 }

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

/** Message types whose answer is a reply that costs this peer (see replication.ts, sync-v2.ts). */
const MESSAGE_QUERY_AWARENESS = 3
const MESSAGE_SYNC_STEP1_V2 = 33
const MESSAGE_STATE_CHECK = 37

/**
 * The hook that bounds replies per connection: a sync step 1 or a state check (answered with a
 * whole state, or a repair of one) or an awareness query (answered with a state) over budget is
 * dropped before it is read. A dropped check costs nothing lasting: the next one repairs.
 */
export const replyBudgets = (onDrop: (reason: string) => void = () => {}, now: () => number = Date.now): { incoming: (connection: object, message: Uint8Array) => Uint8Array | null } => {
  const buckets = new WeakMap<object, { sync: TokenBucket, check: TokenBucket, awareness: TokenBucket }>()
  return {
    incoming: (connection, message) => {
      const type = message[0]
      if (type !== MESSAGE_SYNC_STEP1_V2 && type !== MESSAGE_STATE_CHECK && type !== MESSAGE_QUERY_AWARENESS) return message
      let bucket = buckets.get(connection)
      if (bucket === undefined) {
        buckets.set(connection, bucket = {
          sync: createTokenBucket(SYNC_REPLY_BUDGET, now),
          check: createTokenBucket(STATE_CHECK_BUDGET, now),
          awareness: createTokenBucket(AWARENESS_REPLY_BUDGET, now)
        })
      }
      const [budget, what] = type === MESSAGE_SYNC_STEP1_V2 ? [bucket.sync, 'sync requests'] : type === MESSAGE_STATE_CHECK ? [bucket.check, 'state checks'] : [bucket.awareness, 'awareness queries']
      if (budget.take()) return message
      onDrop(`${what} over budget`)
      return null
    }
  }
}

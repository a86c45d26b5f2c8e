/**
 * Assembles the lock arbiter of a server from its options: the memory arbiter of one process, or
 * the Redis one with `redisUrl`; the grant signer from `lockKey`, a key generated at start, or (with
 * Redis and no `lockKey`) the key the first instance stored there; and the service on top.
 */

import { MemoryArbiter, type LockArbiter } from './lock-arbiter.js'
import { createLockSigner, generateLockKey, type LockSigner } from './lock-key.js'
import { LockService } from './lock-service.js'
import type { Logger } from './logger.js'
import type { LockSettings, RedisSettings } from './options.js'
import { RedisArbiter } from './redis-locks.js'
import { SignalingError } from './errors.js'
import type { Counters } from './stats.js'

export const createLocks = async (settings: LockSettings, redis: RedisSettings | null, counters: Counters, logger: Logger): Promise<LockService> => {
  const redisArbiter = redis === null ? null : new RedisArbiter({ url: redis.url, prefix: redis.prefix, grace: settings.grace, logger })
  const arbiter: LockArbiter = redisArbiter ?? new MemoryArbiter({ grace: settings.grace })

  let signer: LockSigner | null = null
  if (settings.key !== null || redisArbiter === null) {
    try {
      signer = await createLockSigner(settings.key ?? await generateLockKey())
    } catch (err) {
      await arbiter.close()
      throw new SignalingError('INVALID_OPTION', `lockKey: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  // Shared through Redis: asked for when first needed, and again after a failure (Redis away).
  let candidate: Promise<LockSigner | null> | null = null
  const sharedSigner = async (): Promise<LockSigner | null> => {
    if (signer !== null || redisArbiter === null) return signer
    candidate ??= (async () => {
      try {
        signer = await createLockSigner(await redisArbiter.sharedKey(await generateLockKey()))
        return signer
      } catch (err) {
        logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'the lock key could not be read from Redis yet')
        return null
      } finally {
        candidate = null
      }
    })()
    return await candidate
  }

  return new LockService({ arbiter, signer: sharedSigner, verifyRoomToken: settings.verifyRoomToken, counters, logger })
}

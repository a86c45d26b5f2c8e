/**
 * Waiting helpers for tests. Tests wait on events and conditions, never on fixed sleeps:
 * a sleep is either too short on a loaded machine or wastes time on an idle one.
 */

export class TimeoutError extends Error {
  constructor (what: string, ms: number) {
    super(`timed out after ${ms} ms waiting for ${what}`)
    this.name = 'TimeoutError'
  }
}

/** Rejects with a TimeoutError naming `what` when `promise` has not settled within `ms`. */
export const withTimeout = <T>(promise: Promise<T>, ms: number, what = 'a promise'): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Polls `cond` (sync or async) until it returns a truthy value, which is returned.
 * Polling is the fallback for state that has no event; prefer `once` where an event exists.
 */
export const waitFor = async <T>(
  cond: () => T | Promise<T>,
  { timeout = 10_000, interval = 10, what = 'a condition' }: { timeout?: number, interval?: number, what?: string } = {}
): Promise<Exclude<T, false | null | undefined | 0 | ''>> => {
  const deadline = Date.now() + timeout
  let last: unknown
  for (;;) {
    try {
      const value = await cond()
      if (value) return value as Exclude<T, false | null | undefined | 0 | ''>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      const err = new TimeoutError(what, timeout)
      if (last !== undefined) err.cause = last
      throw err
    }
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

/** Node's EventEmitter, lib0's Observable(V2), ws's WebSocket: anything with on/off by name. */
interface OnceEmitter {
  on: (name: any, fn: any) => unknown
  off?: (name: any, fn: any) => unknown
}

/** Resolves with the first payload of event `name` (Node EventEmitter or lib0 Observable style). */
export const once = <T = unknown>(emitter: OnceEmitter, name: string, ms = 10_000): Promise<T> => {
  let handler: ((value: T) => void) | undefined
  const p = new Promise<T>((resolve) => {
    handler = (value: T) => {
      emitter.off?.(name, handler as any)
      resolve(value)
    }
    emitter.on(name, handler)
  })
  return withTimeout(p, ms, `event '${name}'`).finally(() => emitter.off?.(name, handler as any))
}

/**
 * One clock for every process of a run. `process.hrtime` reads CLOCK_MONOTONIC, which Linux
 * shares across processes, so a timestamp taken in one peer can be subtracted from one taken in
 * another (unlike `performance.now()`, whose origin is each process's start).
 */

/** Milliseconds on the machine-wide monotonic clock, with sub-microsecond resolution. */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Lets the event loop run I/O once: what a tight write loop does every `yieldEvery` writes. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class TimeoutError extends Error {
  override name = 'TimeoutError'
}

/** Rejects with a TimeoutError naming `what` when `promise` has not settled within `ms`. */
export const withTimeout = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Resolves once `check()` is true. For state that announces no event (y-webrtc's connection
 * count, a key count across two APIs); polling every `interval` ms bounds the error of a
 * measurement taken here, so measured times never go through it.
 */
export const until = async (check: () => boolean, ms: number, what: string, interval = 10): Promise<void> => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new TimeoutError(`${what}: not reached within ${ms} ms`)
    await sleep(interval)
  }
}

/**
 * The server's npm dependencies are optional peer dependencies of the package, so that a browser
 * app that installs `y-session-store` does not also get a WebSocket server, a Redis client,
 * Prometheus and a logger. Whoever runs the server installs them; this module turns their absence
 * into one clear error naming the command, instead of a module-resolution error from deep inside.
 */

import { createRequire } from 'node:module'
import { SignalingError } from './errors.js'

/** What `createSignalingServer` loads; `ioredis` only with `redisUrl`. */
export const SERVER_PACKAGES = ['ws', 'prom-client'] as const
/** What the CLI loads besides the server's. */
export const CLI_PACKAGES = ['ws', 'prom-client', 'pino'] as const

const require = createRequire(import.meta.url)

const isMissing = (err: unknown, name: string): boolean => {
  const code = (err as { code?: unknown }).code
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && String((err as Error).message).includes(`'${name}`)
}

/** The packages of `names` that cannot be resolved from here. */
export const missingPackages = (names: readonly string[]): string[] => names.filter((name) => {
  try {
    require.resolve(name)
    return false
  } catch (err) {
    if (isMissing(err, name)) return true
    throw err
  }
})

/** The error for `missing` packages that `what` needs. */
export const missingDependencyError = (what: string, missing: readonly string[]): SignalingError =>
  new SignalingError('MISSING_DEPENDENCY', `${what} needs ${missing.join(', ')}, not installed: npm i ${missing.join(' ')}`)

/** Throws MISSING_DEPENDENCY when any of `names` is not installed. */
export const requirePackages = (what: string, names: readonly string[]): void => {
  const missing = missingPackages(names)
  if (missing.length > 0) throw missingDependencyError(what, missing)
}

/** Loads a CommonJS package synchronously, or throws MISSING_DEPENDENCY. */
export const loadPackage = <T>(what: string, name: string): T => {
  try {
    return require(name) as T
  } catch (err) {
    if (isMissing(err, name)) throw missingDependencyError(what, [name])
    throw err
  }
}

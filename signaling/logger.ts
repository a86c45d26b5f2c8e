/**
 * The logging surface the server needs: a structural subset of pino's `Logger`, so a pino instance
 * can be passed as is and the library itself never imports pino (only the CLI does).
 */

export interface Logger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

const ignore = (): void => {}

/** The default: the library stays silent unless a logger is passed in. */
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore }

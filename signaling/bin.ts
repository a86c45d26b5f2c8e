#!/usr/bin/env node
/**
 * The `y-session-store-signaling` command: checks that the server's optional peer dependencies
 * are installed (a clear `npm i` line instead of a module-resolution stack), then runs cli.ts.
 */

import { CLI_PACKAGES, missingDependencyError, missingPackages } from './dependencies.js'

const missing = missingPackages(CLI_PACKAGES)
if (missing.length > 0) {
  process.stderr.write(`${missingDependencyError('y-session-store-signaling', missing).message}\n`)
  process.exit(1)
}
await import('./cli.js')

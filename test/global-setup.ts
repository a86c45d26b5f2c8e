/**
 * vitest's global setup: runs once before any test file. It brings the machine's prerequisites
 * (test/helpers/prerequisites.ts) and, when something is still missing, says so before the tests
 * and again after them, next to the summary.
 */
import { ensurePrerequisites, hostSystem } from './helpers/prerequisites.js'

export default function setup (): () => void {
  const outcome = ensurePrerequisites(hostSystem(), (line) => process.stderr.write(`${line}\n`))
  if (outcome.message === null) return () => {}
  process.stderr.write(`\n${outcome.message}\n\n`)
  return () => { process.stderr.write(`\n${outcome.message}\n`) }
}

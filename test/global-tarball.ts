/**
 * vitest's global setup for the tests that install the package like a user: a directory that every
 * test file of the run shares, so that `npm pack` runs once per run, in the first file that needs
 * the tarball (test/helpers/tarball.ts), and in none when no such file runs.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

export default async function setup (project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'y-session-store-tarball-'))
  project.provide('tarballDir', dir)
  return async () => { await rm(dir, { recursive: true, force: true }) }
}

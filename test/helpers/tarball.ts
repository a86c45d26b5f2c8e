/**
 * The package as npm publishes it, for the tests that install it the way a user does. `npm pack`
 * runs at most once per test run: the first test file that asks packs into the directory that
 * test/global-tarball.ts provides, and the others wait for it. Each caller then installs the
 * tarball into an empty project of its own. The tarball holds `dist/` as it is: `npm test` builds
 * first.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { inject } from 'vitest'
import { waitFor } from './wait.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where this run's tarball is packed (test/global-tarball.ts). */
    tarballDir: string
  }
}

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const run = promisify(execFile)

/** What the packing file writes for the others: the tarball's path, or why packing failed. */
const FAILED = 'failed: '

const pack = async (dir: string): Promise<string> => {
  if (!existsSync(join(ROOT, 'dist/src/index.js'))) throw new Error('dist/ is missing: run `npm run build` first')
  const outcome = join(dir, 'tarball')
  try {
    await mkdir(join(dir, 'lock')) // atomic: the one file that creates it packs
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    const text = await waitFor(async () => await readFile(outcome, 'utf8').catch(() => ''), { timeout: 60_000, interval: 50, what: 'another test file to pack the tarball' })
    if (text.startsWith(FAILED)) throw new Error(`npm pack ${text}`)
    return text
  }
  let text: string
  try {
    const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: ROOT, timeout: 60_000 })
    text = join(dir, stdout.trim().split('\n').at(-1) as string)
  } catch (err) {
    text = `${FAILED}${(err as Error).message}`
  }
  await writeFile(`${outcome}.tmp`, text)
  await rename(`${outcome}.tmp`, outcome)
  if (text.startsWith(FAILED)) throw new Error(`npm pack ${text}`)
  return text
}

let packed: Promise<string> | undefined

/** The path of this run's tarball of the package (`npm pack`), packed on the first call of the run. */
export const packedTarball = async (): Promise<string> => await (packed ??= pack(inject('tarballDir')))

export interface Project {
  dir: string
  /** Removes the project's directory. */
  remove: () => Promise<void>
}

/**
 * A new project in a temp directory, made as a user makes one (`npm init -y`, which writes
 * `"type": "commonjs"`), with the tarball and `packages` installed from the npm registry (the
 * npm cache makes that fast). Install scripts do not run.
 */
export const installProject = async (name: string, packages: readonly string[] = []): Promise<Project> => {
  const dir = await mkdtemp(join(tmpdir(), `y-session-store-${name}-`))
  const remove = async (): Promise<void> => { await rm(dir, { recursive: true, force: true }) }
  try {
    await run('npm', ['init', '-y'], { cwd: dir })
    await run('npm', ['install', await packedTarball(), ...packages, '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', '--loglevel=error'], { cwd: dir, timeout: 75_000 })
  } catch (err) {
    await remove()
    throw err
  }
  return { dir, remove }
}

/**
 * What `npm test` needs from the machine beyond node_modules, and how it gets it: on Debian as
 * root, `apt-get install` of whatever is missing, once, before the tests (vitest's global setup,
 * test/global-setup.ts); anywhere else, one message naming exactly what to install. The tests that
 * need a missing program then fail with their own message, the others still run.
 *
 * The decisions are pure functions over an injected `System` (which programs exist, who we are,
 * how to run a command), so they are tested without touching the machine.
 */

import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync } from 'node:fs'
import { delimiter, isAbsolute, join } from 'node:path'

export interface Prerequisite {
  /** An absolute path, or a command looked up on PATH. */
  command: string
  /** The Debian package that provides it. */
  debian: string
  /** Which tests need it, for the message. */
  neededBy: string
  /** Only needed where the tests that use it can run at all (network namespaces need root). */
  onlyWithNetns?: boolean
}

export const PREREQUISITES: readonly Prerequisite[] = [
  { command: '/usr/bin/chromium', debian: 'chromium', neededBy: 'the browser end-to-end tests' },
  { command: 'redis-server', debian: 'redis-server', neededBy: 'the multi-instance signaling tests' },
  { command: 'turnserver', debian: 'coturn', neededBy: 'the TURN relay test', onlyWithNetns: true },
  { command: 'ip', debian: 'iproute2', neededBy: 'the TURN relay test (network namespaces)', onlyWithNetns: true }
]

export interface ExecResult {
  status: number | null
  output: string
}

export interface System {
  /** Whether `command` (an absolute path, or a name on PATH) is an executable. */
  which: (command: string) => boolean
  /** The effective user id; null where there is none (Windows). */
  uid: () => number | null
  platform: NodeJS.Platform
  /** Whether this is Debian (or a derivative with apt-get). */
  debian: boolean
  /** CI=true: the tests that need network namespaces must run. */
  ci: boolean
  exec: (command: string, args: string[], env?: Record<string, string>) => ExecResult
}

/** Whether this machine can run the tests that build network namespaces (see test/helpers/netns.ts). */
export const netnsPossible = (system: Pick<System, 'uid' | 'platform'>): boolean =>
  system.platform === 'linux' && system.uid() === 0

/** The prerequisites this machine needs and lacks. */
export const missingPrerequisites = (system: System, list: readonly Prerequisite[] = PREREQUISITES): Prerequisite[] => {
  const netns = netnsPossible(system) || system.ci
  return list.filter((item) => (item.onlyWithNetns !== true || netns) && !system.which(item.command))
}

/** Whether `npm test` may install the missing packages itself. */
export const canInstall = (system: System): boolean =>
  system.debian && system.uid() === 0 && system.which('apt-get')

/** The one message for what is still missing; null when nothing is. */
export const missingMessage = (missing: readonly Prerequisite[], system: System, failure?: string): string | null => {
  if (missing.length === 0) return null
  const lines = missing.map((item) => `  - ${item.command} (Debian package ${item.debian}), for ${item.neededBy}`)
  const packages = missing.map((item) => item.debian).join(' ')
  let how: string
  if (failure !== undefined) how = `apt-get failed (${failure}); install them by hand: apt-get install -y ${packages}`
  else if (system.debian && system.uid() === 0) how = `apt-get is not on PATH; install them with it: apt-get install -y ${packages}`
  else if (system.debian) how = `install them as root (npm test does it itself when run as root): sudo apt-get install -y ${packages}`
  else how = `install them with your system's package manager (Chromium must be at /usr/bin/chromium); on Debian: apt-get install -y ${packages}`
  return `npm test: missing on this machine:\n${lines.join('\n')}\n${how}\nThe tests that need them will fail; the others run.`
}

export interface Outcome {
  /** Debian packages installed by this call. */
  installed: string[]
  /** Still missing afterwards. */
  missing: Prerequisite[]
  message: string | null
}

/**
 * Installs what is missing where it can (Debian, root: the same apt-get calls as a CI image's
 * setup), then reports what is still missing. Never throws: a failed install is in the message.
 */
export const ensurePrerequisites = (system: System, log: (line: string) => void = () => {}, list: readonly Prerequisite[] = PREREQUISITES): Outcome => {
  const missing = missingPrerequisites(system, list)
  if (missing.length === 0) return { installed: [], missing, message: null }
  if (!canInstall(system)) return { installed: [], missing, message: missingMessage(missing, system) }
  const packages = Array.from(new Set(missing.map((item) => item.debian)))
  log(`npm test: installing ${packages.join(' ')} from Debian (apt-get, once)`)
  const env = { DEBIAN_FRONTEND: 'noninteractive' }
  const steps: Array<[string, string[]]> = [
    ['apt-get', ['update', '-qq']],
    ['apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages]]
  ]
  for (const [command, args] of steps) {
    const result = system.exec(command, args, env)
    if (result.status !== 0) {
      const still = missingPrerequisites(system, list)
      const tail = result.output.trim().split('\n').slice(-3).join(' | ')
      return { installed: [], missing: still, message: missingMessage(still, system, `${command} ${args[0] ?? ''} exited with ${String(result.status)}: ${tail}`) }
    }
  }
  const still = missingPrerequisites(system, list)
  return { installed: packages, missing: still, message: missingMessage(still, system, still.length > 0 ? 'the packages installed, but these are still not found' : undefined) }
}

const isExecutable = (path: string): boolean => {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** This machine, for real. */
export const hostSystem = (): System => ({
  which: (command) => isAbsolute(command)
    ? isExecutable(command)
    : (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, command))),
  uid: () => typeof process.getuid === 'function' ? process.getuid() : null,
  platform: process.platform,
  debian: existsSync('/etc/debian_version'),
  ci: process.env.CI === 'true',
  exec: (command, args, env = {}) => {
    const result = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    return { status: result.error === undefined ? result.status : null, output: `${result.stdout ?? ''}${result.stderr ?? ''}${result.error?.message ?? ''}` }
  }
})

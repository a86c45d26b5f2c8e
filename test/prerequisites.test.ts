/**
 * The prerequisite check of `npm test` against a fake machine: which programs exist, who runs it,
 * and what apt-get does are all injected.
 */
import { describe, expect, it } from 'vitest'
import { ensurePrerequisites, hostSystem, missingPrerequisites, type System } from './helpers/prerequisites.js'

interface Fake extends System {
  calls: string[]
  present: Set<string>
}

const ALL = ['/usr/bin/chromium', 'redis-server', 'turnserver', 'ip', 'apt-get']

/** A machine with `present` programs; apt-get install makes each named package's program appear. */
const fakeSystem = ({ present = ALL, uid = 0, debian = true, platform = 'linux' as NodeJS.Platform, ci = false, failOn = null as string | null } = {}): Fake => {
  const programs: Record<string, string> = { chromium: '/usr/bin/chromium', 'redis-server': 'redis-server', coturn: 'turnserver', iproute2: 'ip' }
  const fake: Fake = {
    calls: [],
    present: new Set(present),
    which: (command) => fake.present.has(command),
    uid: () => uid,
    platform,
    debian,
    ci,
    exec: (command, args, env) => {
      fake.calls.push(`${env?.DEBIAN_FRONTEND === 'noninteractive' ? 'DEBIAN_FRONTEND=noninteractive ' : ''}${command} ${args.join(' ')}`)
      if (failOn !== null && args[0] === failOn) return { status: 100, output: 'E: Unable to locate package chromium\n' }
      if (args[0] === 'install') for (const pkg of args.filter((a) => !a.startsWith('-')).slice(1)) fake.present.add(programs[pkg] ?? pkg)
      return { status: 0, output: '' }
    }
  }
  return fake
}

describe('prerequisites of npm test', () => {
  it('does nothing when everything is there', () => {
    const system = fakeSystem()
    expect(ensurePrerequisites(system)).toEqual({ installed: [], missing: [], message: null })
    expect(system.calls).toEqual([])
  })

  it('on Debian as root installs exactly the missing packages, once, after apt-get update', () => {
    const system = fakeSystem({ present: ['ip', 'apt-get', 'turnserver'] })
    const logged: string[] = []
    const outcome = ensurePrerequisites(system, (line) => logged.push(line))
    expect(system.calls).toEqual([
      'DEBIAN_FRONTEND=noninteractive apt-get update -qq',
      'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium redis-server'
    ])
    expect(outcome).toEqual({ installed: ['chromium', 'redis-server'], missing: [], message: null })
    expect(logged.join('\n')).toContain('installing chromium redis-server')
    // A second run finds them and installs nothing.
    system.calls.length = 0
    expect(ensurePrerequisites(system).installed).toEqual([])
    expect(system.calls).toEqual([])
  })

  it('names a missing binary and the command that installs it for an unprivileged user, without running apt-get', () => {
    const system = fakeSystem({ present: ['redis-server', 'apt-get'], uid: 1000 })
    const outcome = ensurePrerequisites(system)
    expect(system.calls).toEqual([])
    // turnserver and ip are not needed: the TURN test needs root and skips without it.
    expect(outcome.missing.map((p) => p.command)).toEqual(['/usr/bin/chromium'])
    expect(outcome.message).toContain('/usr/bin/chromium (Debian package chromium), for the browser end-to-end tests')
    expect(outcome.message).toContain('sudo apt-get install -y chromium')
    expect(outcome.message).toContain('the others run')
  })

  it('under CI an unprivileged run still needs coturn: the TURN test must run there', () => {
    const system = fakeSystem({ present: ['/usr/bin/chromium', 'redis-server'], uid: 1000, ci: true })
    expect(missingPrerequisites(system).map((p) => p.debian)).toEqual(['coturn', 'iproute2'])
  })

  it('elsewhere than Debian only says what to install', () => {
    const system = fakeSystem({ present: [], debian: false, platform: 'darwin', uid: 501 })
    const outcome = ensurePrerequisites(system)
    expect(system.calls).toEqual([])
    expect(outcome.message).toContain("install them with your system's package manager (Chromium must be at /usr/bin/chromium)")
    expect(outcome.message).toContain('redis-server (Debian package redis-server)')
    expect(outcome.message).not.toContain('coturn')
  })

  it('a failing apt-get is reported with what is still missing, and nothing throws', () => {
    const system = fakeSystem({ present: ['apt-get', 'ip', 'turnserver', 'redis-server'], failOn: 'install' })
    const outcome = ensurePrerequisites(system)
    expect(outcome.installed).toEqual([])
    expect(outcome.missing.map((p) => p.debian)).toEqual(['chromium'])
    expect(outcome.message).toMatch(/apt-get install exited with 100: E: Unable to locate package chromium/)
    expect(outcome.message).toContain('apt-get install -y chromium')
  })

  it('without apt-get, root on Debian gets the message instead of a failed install', () => {
    const system = fakeSystem({ present: ['ip', 'turnserver'] })
    expect(ensurePrerequisites(system).message).toContain('apt-get is not on PATH; install them with it: apt-get install -y chromium redis-server')
    expect(system.calls).toEqual([])
  })

  it('the real machine is described consistently', () => {
    const system = hostSystem()
    expect(system.which(process.execPath)).toBe(true)
    expect(system.which('no-such-program-y-session-store')).toBe(false)
    expect(system.exec(process.execPath, ['-e', 'process.exit(3)']).status).toBe(3)
  })
})

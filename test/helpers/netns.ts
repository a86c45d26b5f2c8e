/**
 * A small network of Linux network namespaces for tests of peers that cannot reach each other,
 * built and torn down by the test that needs it (as root; `ip netns`):
 *
 *     peer A ns  10.14.1.2 ── veth ── 10.14.1.1 ┐
 *                                               ├─ "server" ns, also 10.14.0.1 on its loopback:
 *     peer B ns  10.14.2.2 ── veth ── 10.14.2.1 ┘   coturn and the signaling server listen there
 *
 * Each peer namespace has a default route to the server namespace (WebRTC gathers no candidates
 * without one), and the server namespace does not forward: A and B reach the server, never each
 * other, as two peers behind symmetric NATs that only a TURN relay connects. All addresses exist
 * only inside these namespaces. Every namespace and every process in it is removed when the test
 * ends, also when it fails half-way through building.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { waitFor, withTimeout } from './wait.js'

export const SERVER_ADDRESS = '10.14.0.1'

const ip = (...args: string[]): void => {
  const result = spawnSync('ip', args, { encoding: 'utf8' })
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`ip ${args.join(' ')} failed: ${result.error?.message ?? result.stderr.trim()}`)
  }
}

/**
 * Why network namespaces cannot be built here, or null when they can (probed by creating and
 * removing one).
 */
export const netnsUnavailable = (): string | null => {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)'
  const name = `ys-probe-${process.pid}-${randomBytes(3).toString('hex')}`
  try {
    ip('netns', 'add', name)
    ip('netns', 'del', name)
    return null
  } catch (err) {
    return (err as Error).message
  }
}

export interface NatLab {
  /** Namespace of the TURN and signaling servers. */
  readonly server: string
  /** Namespaces of peers A and B. */
  readonly peers: readonly [string, string]
  /** A long-lived process in namespace `ns`, killed when the test ends; `output()` is its stdout and stderr. */
  spawnIn: (ns: string, command: string, args: string[]) => ChildProcess & { output: () => string }
}

const exited = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise((resolve) => child.once('exit', resolve))
}

/** Builds the namespaces above; they are deleted when the test ends. */
export const createNatLab = (): NatLab => {
  const id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`
  const server = `ys-${id}-srv`
  const peers = [`ys-${id}-a`, `ys-${id}-b`] as const
  const created: string[] = []
  const children = new Set<ChildProcess>()
  onTestFinished(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await withTimeout(Promise.all(Array.from(children, exited)), 10_000, 'the processes in the namespaces to exit')
    for (const ns of created) {
      // Anything else still inside (a grandchild) goes too, so the namespace really disappears.
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.trim().split('\n').filter(Boolean) ?? []
      for (const pid of pids) {
        try { process.kill(Number(pid), 'SIGKILL') } catch {}
      }
      spawnSync('ip', ['netns', 'del', ns])
    }
  })
  for (const ns of [server, ...peers]) {
    ip('netns', 'add', ns)
    created.push(ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
  }
  ip('-n', server, 'addr', 'add', `${SERVER_ADDRESS}/32`, 'dev', 'lo')
  // New namespaces do not forward; said explicitly, since the whole test rests on it.
  ip('netns', 'exec', server, 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward')
  peers.forEach((ns, i) => {
    const subnet = `10.14.${i + 1}`
    ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `peer${i}`, 'netns', server)
    ip('-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'route', 'add', 'default', 'via', `${subnet}.1`)
    ip('-n', server, 'addr', 'add', `${subnet}.1/24`, 'dev', `peer${i}`)
    ip('-n', server, 'link', 'set', `peer${i}`, 'up')
  })

  const spawnIn = (ns: string, command: string, args: string[]): ChildProcess & { output: () => string } => {
    const child = spawn('ip', ['netns', 'exec', ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    return Object.assign(child, { output: () => output })
  }
  return { server, peers, spawnIn }
}

export interface TurnServer {
  /** `turn:10.14.0.1:3478?transport=udp` */
  readonly url: string
  readonly output: () => string
}

/** coturn (`turnserver`) in the server namespace, checking credentials against `secret` (REST API scheme). */
export const startTurnServer = async (lab: NatLab, secret: string): Promise<TurnServer> => {
  const probe = spawnSync('turnserver', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined) throw new Error("coturn's turnserver is missing: apt-get install -y coturn")
  const files = await mkdtemp(join(tmpdir(), 'y-session-store-coturn-'))
  onTestFinished(async () => { await rm(files, { recursive: true, force: true }) })
  const turn = lab.spawnIn(lab.server, 'turnserver', [
    '-n', // no configuration file: everything is here
    `--listening-ip=${SERVER_ADDRESS}`,
    `--relay-ip=${SERVER_ADDRESS}`,
    '--listening-port=3478',
    '--min-port=49152',
    '--max-port=49407',
    '--use-auth-secret',
    `--static-auth-secret=${secret}`,
    '--realm=y-session-store.test',
    '--no-tls',
    '--no-dtls',
    '--no-cli',
    '--no-tcp-relay',
    '--log-file=stdout',
    '--simple-log',
    '--verbose', // prints the 'listener opened' line waited for below
    // Its own files, not the system's: other runs may have a coturn of their own.
    `--pidfile=${join(files, 'turnserver.pid')}`,
    `--userdb=${join(files, 'turndb')}`
  ])
  await waitFor(() => {
    if (turn.exitCode !== null) throw new Error(`turnserver exited with ${turn.exitCode}: ${turn.output()}`)
    return /UDP listener opened on: ?10\.14\.0\.1:3478/.test(turn.output())
  }, { timeout: 15_000, interval: 20, what: 'turnserver to listen' }).catch((err: Error) => {
    err.message += `\n${turn.output()}`
    throw err
  })
  return { url: `turn:${SERVER_ADDRESS}:3478?transport=udp`, output: turn.output }
}

/**
 * Starting the two signaling servers, each in a process of its own so that its memory and CPU
 * can be read from /proc without counting anyone else's.
 */

import type { SignalingServerOptions, SignalingStats } from 'y-session-store/signaling'
import type { OurServerCommands } from '../servers/ours.js'
import type { YWebrtcServerCommands } from '../servers/y-webrtc.js'
import { Child } from './child.js'
import { now, sleep } from './clock.js'
import { cpuMs, rssBytes } from './proc.js'

export const SERVERS = ['y-webrtc', 'ours'] as const

/**
 * Every client of a benchmark connects from 127.0.0.1, where real users would each have an address
 * of their own: our server's per-address limits would count them all as one, so they are lifted.
 */
export const ONE_ADDRESS_FOR_ALL: SignalingServerOptions = {
  maxConnectionsPerAddress: 20_000,
  connectionsPerSecondPerAddress: 100_000,
  messagesPerSecondPerAddress: 1_000_000,
  messageBurstPerAddress: 10_000_000
}
export type ServerName = typeof SERVERS[number]

export const SERVER_LABELS: Record<ServerName, string> = {
  'y-webrtc': 'y-webrtc bin/server.js',
  ours: 'y-session-store signaling'
}

export interface RunningServer {
  name: ServerName
  url: string
  pid: number
  rss: () => number
  cpuMs: () => number
  /** Full GC in the server process, then its memory: RSS from /proc, the V8 heap from the process itself. */
  settle: () => Promise<SettledMemory>
  /**
   * The memory of a process that has been idle for a while: `settle` every 2 s, for `after` ms at
   * least, until V8 has given back its young generation (at most `YOUNG_SETTLED` in two readings
   * in a row), or for `STEADY_TIMEOUT` more.
   */
  steady: (after?: number) => Promise<SettledMemory & { waitedMs: number }>
  /** Our server's counters (null for y-webrtc's, which has none). */
  stats: () => Promise<SignalingStats | null>
  alive: () => boolean
  close: () => Promise<void>
}

export interface SettledMemory {
  rss: number
  heapUsed: number
  /** Memory of C++ objects bound to JavaScript ones (sockets' buffers among them). */
  external: number
  /** V8's young generation, committed bytes: a burst of allocation grows it, idleness shrinks it back. */
  young: number
}

/**
 * V8 grows its young generation to tens of MiB under a burst of allocation (10,000 handshakes are
 * one) and gives it back a few seconds after allocation stops. That is a cost of recent work, not
 * of what the process holds, so memory held is read once the young generation is this small again.
 */
export const YOUNG_SETTLED = 2 * 2 ** 20
const STEADY_TIMEOUT = 60_000

export const startServer = async (name: ServerName, options: SignalingServerOptions = {}): Promise<RunningServer> => {
  // Under plain node, as each server's users run it (`plain`: tsx's loader would hold memory of its own).
  const child = name === 'ours'
    ? await Child.spawn<OurServerCommands>('our-server', 'bench/servers/ours.ts', {
      args: [JSON.stringify(options)],
      execArgv: ['--expose-gc'],
      readyEvent: 'listening',
      plain: true
    })
    : await Child.spawn<YWebrtcServerCommands & Partial<OurServerCommands>>('y-webrtc-server', 'node_modules/y-webrtc/bin/server.js', {
      execArgv: ['--expose-gc', '--import', './bench/servers/y-webrtc.ts'],
      env: { PORT: '0' },
      readyEvent: 'listening',
      plain: true
    })
  const { pid } = child
  const settle = async (): Promise<SettledMemory> => {
    const { heapUsed, external, young } = await child.call('gc', undefined)
    return { rss: rssBytes(pid), heapUsed, external, young }
  }
  return {
    name,
    url: child.hello.url as string,
    pid,
    rss: () => rssBytes(pid),
    cpuMs: () => cpuMs(pid),
    settle,
    steady: async (after = 0) => {
      const start = now()
      // Settled in two readings in a row: V8 hands the pages it shrank away to a thread to unmap.
      let settled = 0
      for (;;) {
        const memory = await settle()
        const waitedMs = now() - start
        settled = memory.young <= YOUNG_SETTLED ? settled + 1 : 0
        if ((settled >= 2 && waitedMs >= after) || waitedMs >= after + STEADY_TIMEOUT) return { ...memory, waitedMs }
        await sleep(2_000)
      }
    },
    stats: async () => name === 'ours' ? await (child as Child<OurServerCommands>).call('stats', undefined) : null,
    alive: () => child.process.exitCode === null && child.process.signalCode === null,
    close: () => child.kill()
  }
}

/**
 * Starting the two signaling servers, each in a process of its own so that its memory and CPU
 * can be read from /proc without counting anyone else's.
 */

import type { SignalingServerOptions, SignalingStats } from 'y-session-store/signaling'
import type { OurServerCommands } from '../servers/ours.js'
import type { YWebrtcServerCommands } from '../servers/y-webrtc.js'
import { Child } from './child.js'
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
}

export const startServer = async (name: ServerName, options: SignalingServerOptions = {}): Promise<RunningServer> => {
  const child = name === 'ours'
    ? await Child.spawn<OurServerCommands>('our-server', 'bench/servers/ours.ts', {
      args: [JSON.stringify(options)],
      execArgv: ['--expose-gc'],
      readyEvent: 'listening'
    })
    : await Child.spawn<YWebrtcServerCommands & Partial<OurServerCommands>>('y-webrtc-server', 'node_modules/y-webrtc/bin/server.js', {
      execArgv: ['--expose-gc', '--import', './bench/servers/y-webrtc.ts'],
      env: { PORT: '0' },
      readyEvent: 'listening'
    })
  const { pid } = child
  return {
    name,
    url: child.hello.url as string,
    pid,
    rss: () => rssBytes(pid),
    cpuMs: () => cpuMs(pid),
    settle: async () => {
      const { heapUsed, external } = await child.call('gc', undefined)
      return { rss: rssBytes(pid), heapUsed, external }
    },
    stats: async () => name === 'ours' ? await (child as Child<OurServerCommands>).call('stats', undefined) : null,
    alive: () => child.process.exitCode === null && child.process.signalCode === null,
    close: () => child.kill()
  }
}

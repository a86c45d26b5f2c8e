/**
 * Session-store peers in separate Node processes (test/fixtures/peer.mjs), driven over IPC.
 * Each peer is killed when the test that spawned it ends (registered with onTestFinished).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'
import { once, withTimeout } from './wait.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/peer.mjs', import.meta.url))
/** A modified client that can send what honest peers never do (test/fixtures/hostile-peer.mjs). */
export const HOSTILE_FIXTURE = fileURLToPath(new URL('../fixtures/hostile-peer.mjs', import.meta.url))

export interface PeerEvent {
  event: string
  [field: string]: unknown
}

export class PeerProcess extends EventEmitter {
  readonly events: PeerEvent[] = []
  private nextId = 0
  private readonly pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  constructor (readonly name: string, readonly child: ChildProcess) {
    super()
    child.on('message', (message: any) => {
      if (typeof message.id === 'number') {
        const waiter = this.pending.get(message.id)
        this.pending.delete(message.id)
        if (message.ok) waiter?.resolve(message.result)
        else waiter?.reject(Object.assign(new Error(`${name}: ${String(message.error.message)}`), { code: message.error.code }))
      } else {
        this.events.push(message)
        // An 'error' event with no listener would throw here; the test reads it from `events`.
        if (message.event !== 'error' || this.listenerCount('error') > 0) this.emit(message.event, message)
      }
    })
    // A call racing the child's death (a sampler's, as the test ends and kills it) fails to write
    // (EPIPE): an 'error' event nobody listens to would fail the whole run. The exit below rejects
    // every call still waiting.
    child.on('error', () => {})
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`${name} exited (${String(code ?? signal)})`))
      this.pending.clear()
      resolve({ code, signal })
    }))
  }

  call<T = any>(cmd: string, args: Record<string, unknown> = {}, timeout = 30_000): Promise<T> {
    const id = this.nextId++
    const result = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.child.send({ id, cmd, args })
    })
    return withTimeout(result, timeout, `${this.name}.${cmd}`)
  }

  kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<unknown> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exited
  }
}

export const spawnPeer = async (name: string, fixture = FIXTURE, { execArgv = [] }: { execArgv?: string[] } = {}): Promise<PeerProcess> => {
  const child = fork(fixture, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
  const peer = new PeerProcess(name, child)
  onTestFinished(async () => { await peer.kill() })
  await once(peer, 'ready', 15_000)
  return peer
}

/** Spawns a peer inside network namespace `netns` (`ip netns exec`, as root; see netns.ts). */
export const spawnPeerIn = async (netns: string, name: string): Promise<PeerProcess> => {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, FIXTURE], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const peer = new PeerProcess(name, child)
  onTestFinished(async () => { await peer.kill() })
  await once(peer, 'ready', 15_000)
  return peer
}

/** Spawns a peer and joins `room`; resolves once its store is available. */
export const joinPeer = async (name: string, room: string, options: Record<string, unknown>): Promise<PeerProcess & { joined: any }> => {
  const peer = await spawnPeer(name)
  const joined = await peer.call('join', { room, options })
  return Object.assign(peer, { joined })
}

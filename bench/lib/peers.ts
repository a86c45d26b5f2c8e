/** Spawning contender peers (each in its own process) and tearing them down. */

import type { KvCommands } from '../peers/kv-peer.js'
import type { JoinSpec, KvContenderName } from '../peers/contenders.js'
import type { RawCommands } from '../peers/raw-peer.js'
import { Child } from './child.js'

export type KvChild = Child<KvCommands>
export type RawChild = Child<RawCommands>

export const spawnKv = (contender: KvContenderName, label: string): Promise<KvChild> =>
  Child.spawn<KvCommands>(`${contender}:${label}`, 'bench/peers/kv-peer.ts', { args: [contender], execArgv: process.env.BENCH_PEER_PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PEER_PROFILE}`, '--cpu-prof-interval=50'] })

export const spawnKvPeers = (contender: KvContenderName, count: number, label = 'peer'): Promise<KvChild[]> =>
  Promise.all(Array.from({ length: count }, (_, i) => spawnKv(contender, `${label}${i}`)))

export const spawnRaw = (label: string): Promise<RawChild> =>
  Child.spawn<RawCommands>(`raw:${label}`, 'bench/peers/raw-peer.ts')

/**
 * Joins `peers` into one room one after another, each once connected to all before it, then
 * checks that the mesh is complete. One at a time, because stock y-webrtc peers that join at the
 * same moment do not always form a full mesh (offer glare): setup is not what these scenarios
 * measure, and it must not fail one contender for a reason that has nothing to do with the scenario.
 */
export const formMesh = async (peers: KvChild[], spec: JoinSpec, timeout = 30_000): Promise<void> => {
  for (const [i, peer] of peers.entries()) {
    await peer.call('join', spec)
    await peer.call('waitConnected', { count: i, timeout }, timeout + 5_000)
  }
  await Promise.all(peers.map((peer) => peer.call('waitConnected', { count: peers.length - 1, timeout }, timeout + 5_000)))
}

/**
 * Spawns `count` peers of `contender` and forms their mesh; if that fails (a stock y-webrtc peer
 * can crash on a signaling race), tries once more with fresh processes. `retries` says why it had to.
 */
export const spawnMesh = async (contender: KvContenderName, count: number, spec: JoinSpec, label = 'peer'): Promise<{ peers: KvChild[], retries: string[] }> => {
  const retries: string[] = []
  for (;;) {
    const peers = await spawnKvPeers(contender, count, label)
    try {
      await formMesh(peers, spec)
      return { peers, retries }
    } catch (err) {
      await dismiss(peers)
      const reason = err instanceof Error ? err.message : String(err)
      if (retries.length > 0) throw new Error(`the mesh did not form twice: ${retries[0] as string}; then ${reason}`)
      retries.push(reason)
    }
  }
}

/** Leaves politely (bounded), then kills: the next scenario starts from no peers at all. */
export const dismiss = async (peers: Array<Child<any>>): Promise<void> => {
  await Promise.all(peers.map(async (peer) => {
    await peer.call('leave', undefined, 5_000).catch(() => {})
    // A profiled peer exits by itself after leaving, writing its profile.
    if (process.env.BENCH_PEER_PROFILE !== undefined) await Promise.race([peer.exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
    await peer.kill()
  }))
}

/** A room name no earlier scenario used: rooms are never shared between measurements. */
let rooms = 0
export const freshRoom = (what: string): string => `bench-${what}-${process.pid}-${rooms++}`

/**
 * The locks bench (issue 13): `npm run bench:locks`. Peers in their own processes
 * (bench/permissions/peer.mjs) over real WebRTC, the signaling server (in this process) as the
 * arbiter, with `lockGrace: 0`.
 *
 * - update round trip: one peer of two calls `store.update` 300 times one after another (lock,
 *   handoff barrier, read, write, release): p50 and p99.
 * - contended updates (each peer connected to at least min(N - 1, 5) others): 2, 5 and 10 peers each start 20 updates of one key at once; updates per
 *   second until the last one is done, and the final count checked on every peer.
 *
 * Writes bench/results/locks.json and .md.
 */

import { fork, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createSignalingServer } from '../../dist/signaling/index.js'

interface Child { call: <T>(cmd: string, args?: unknown) => Promise<T>, child: ChildProcess }

const spawnPeer = async (): Promise<Child> => {
  const child = fork(fileURLToPath(new URL('../permissions/peer.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  child.on('message', (m: any) => {
    if (typeof m.id !== 'number') return
    const w = pending.get(m.id)
    pending.delete(m.id)
    if (m.ok === true) w?.resolve(m.result)
    else w?.reject(new Error(m.error))
  })
  await new Promise<void>((resolve) => child.once('message', () => resolve()))
  return {
    child,
    call: async <T>(cmd: string, args: unknown = {}) => await new Promise<T>((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      child.send({ id, cmd, args })
    })
  }
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
const round = (n: number, digits = 2): number => Number(n.toFixed(digits))

const room = async (url: string, name: string, count: number): Promise<Child[]> => {
  const peers = await Promise.all(Array.from({ length: count }, async () => await spawnPeer()))
  for (const peer of peers) await peer.call('join', { room: name, url, auth: null })
  await Promise.all(peers.map(async (peer) => await peer.call('waitConnected', { count: Math.min(count - 1, 5) })))
  return peers
}

const main = async (): Promise<void> => {
  const started = new Date().toISOString()
  const load = loadavg()[0] ?? 0
  const server = await createSignalingServer({ port: 0, host: '127.0.0.1', lockGrace: 0 })
  const result: Record<string, unknown> = { started, machine: { cpus: cpus().length, load } }
  try {
    const pair = await room(server.url, `bench-locks-rtt-${process.pid}`, 2)
    try {
      const times = (await (pair[0] as Child).call<number[]>('updateLoop', { key: 'n', count: 300 })).slice(20).sort((a, b) => a - b)
      result.update = { p50: round(quantile(times, 0.5)), p99: round(quantile(times, 0.99)), count: times.length }
      console.log('update round trip', result.update)
    } finally {
      for (const p of pair) p.child.kill('SIGKILL')
    }
    const contended: Array<Record<string, number>> = []
    for (const n of [2, 5, 10]) {
      const peers = await room(server.url, `bench-locks-${n}-${process.pid}`, n)
      try {
        const each = 20
        const start = performance.now()
        await Promise.all(peers.map(async (peer) => await peer.call('incrementMany', { key: 'votes', count: each })))
        const ms = performance.now() - start
        await Promise.all(peers.map(async (peer) => await peer.call('waitForValue', { key: 'votes', value: n * each })))
        const row = { peers: n, updates: n * each, ms: Math.round(ms), updatesPerS: round((n * each) / (ms / 1000), 1) }
        contended.push(row)
        console.log('contended', row)
      } finally {
        for (const p of peers) p.child.kill('SIGKILL')
      }
    }
    result.contended = contended
  } finally {
    await server.close()
  }
  const out = fileURLToPath(new URL('../results/', import.meta.url))
  writeFileSync(`${out}locks.json`, JSON.stringify(result, null, 2) + '\n')
  const update = result.update as { p50: number, p99: number }
  const md = [
    `# Locks bench (${started}, ${cpus().length} cores, load ${load.toFixed(1)})`,
    '',
    `update round trip (2 peers, one updating, 280 timed): p50 ${update.p50} ms, p99 ${update.p99} ms`,
    '',
    '| peers | updates (20 each, all at once) | ms | updates/s | final count exact |',
    '| --- | --- | --- | --- | --- |',
    ...(result.contended as Array<Record<string, number>>).map((r) => `| ${r.peers} | ${r.updates} | ${r.ms} | ${r.updatesPerS} | yes |`),
    ''
  ].join('\n')
  writeFileSync(`${out}locks.md`, md)
  console.log(md)
}

await main()
process.exit(0)

/**
 * A room that one hostile peer cannot break: every case of test/attacks/hostile.ts, over real
 * WebRTC, honest peers in their own processes (the victim with --expose-gc to measure its heap).
 * The heap figures are printed at the end, for the record.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { HOSTILE_CASES } from './attacks/hostile.js'
import { HOSTILE_FIXTURE, joinPeer, spawnPeer, type PeerProcess } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const MiB = 1024 * 1024
const measured: Array<{ name: string, peak: number, end: number, refusal: string }> = []

const dropped = async (peer: PeerProcess): Promise<Record<string, number>> => (await peer.call<{ dropped: Record<string, number> }>('stats')).dropped

describe('one hostile peer against two honest ones', () => {
  for (const row of HOSTILE_CASES) {
    it(row.name, { timeout: 120_000 }, async () => {
      const server = await startSignaling()
      const room = uniqueRoom('hostile')
      const options = { signaling: [server.url] }
      const victim = await spawnPeer('victim', undefined, { execArgv: ['--expose-gc'] })
      await victim.call('join', { room, options })
      const honest: Record<string, unknown> = {}
      for (let i = 0; i < 10; i++) {
        honest[`k${i}`] = { i, by: 'victim' }
        await victim.call('set', { key: `k${i}`, value: honest[`k${i}`] })
      }
      const other = await joinPeer('other', room, options)
      expect(other.joined.json).toEqual(honest)
      const hostile = await spawnPeer('hostile', HOSTILE_FIXTURE)
      await hostile.call('join', { room, options })
      await hostile.call('waitForPeers', { count: 2 })
      const victimId = await victim.call<string>('peerId')

      await victim.call('heapStart')
      const attack = hostile.call('attack', { name: row.attack, to: victimId }, 60_000).catch(() => null)
      // Honest writes keep arriving, within 1 s, while the attack goes on.
      for (let i = 0; i < 5; i++) {
        await other.call('set', { key: 'live', value: i })
        await victim.call('waitForValue', { key: 'live', value: i, timeout: 1000 })
      }
      await attack
      let refusal = ''
      if (row.refusal !== null) {
        await waitFor(async () => {
          refusal = Object.keys(await dropped(victim)).find((reason) => row.refusal?.test(reason) === true) ?? ''
          return refusal !== ''
        }, { timeout: 45_000, interval: 100, what: `the victim to refuse with ${String(row.refusal)}` })
      }
      const heap = await victim.call<{ peakGrowth: number, endGrowth: number }>('heapStop')
      measured.push({ name: row.name, peak: heap.peakGrowth, end: heap.endGrowth, refusal })
      expect(heap.peakGrowth).toBeLessThan(64 * MiB)

      // Every honest entry holds its honest value (a hostile peer may still add valid entries of its
      // own within the limits: without permissions, anyone may write), and the store is within them.
      const seen = await victim.call<Record<string, unknown>>('toJSON')
      expect(seen).toMatchObject({ ...honest, live: 4 })
      const usage = await victim.call<{ keys: number, bytes: number }>('usage')
      expect(usage.keys).toBeLessThanOrEqual(100)
      expect(usage.bytes).toBeLessThanOrEqual(65_536)
      const late = await joinPeer('late', room, options)
      expect(late.joined.json).toEqual(seen)
    })
  }

  afterAll(() => {
    const lines = measured.map((m) => `  ${m.name}: peak heap growth ${(m.peak / MiB).toFixed(1)} MiB, after ${(m.end / MiB).toFixed(1)} MiB; ${m.refusal === '' ? 'not a refusal' : `refused: ${m.refusal}`}`)
    process.stdout.write(`hostile-peer corpus, the victim's heap:\n${lines.join('\n')}\n`)
  })
})

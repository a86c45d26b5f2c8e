/**
 * Issue 15's first measurement, before any design: what one overwrite costs in heap and in state
 * for the structures that could hold a room's entries. `npm run bench:structures`.
 *
 * The workload of the history scenario: 100 keys of ~640-byte JSON text, overwritten round-robin;
 * with three writers, they take turns a round of 100 writes each. (Write by write, YKeyValue's
 * pairs of different writers do not merge and it slows down with its history: a first run of
 * 10^6 overwrites did not finish in 40 minutes.)
 * Each structure runs in its own child process (a fresh heap), writers' documents exchange
 * every update at once, and heap is read after a full GC, against the heap of the same process
 * before the first write:
 * - `Y.Map`: what the store holds today, one writer and three writers taking turns;
 * - y-utility's `YKeyValue` (a Y.Array of {key, val}, older pairs deleted), the same two ways;
 * - `Y.Map` in epochs: every `threshold` overwrites the writers move to a fresh document seeded
 *   with the live entries (the shape issue 15 proposes), the previous epoch's document kept until
 *   the next move, as a peer does.
 */

import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { YKeyValue } from 'y-utility/y-keyvalue'
import { KEYS, fullValue } from './lib/workload.js'

type Structure = 'ymap' | 'ykeyvalue' | 'ymap-epochs'
interface Point { overwrites: number, heapMiB: number, perWriterHeapMiB: number, stateV1: number, stateV2: number, live: number }

const gc = (): void => { (globalThis as { gc?: () => void }).gc?.() }
const heap = (): number => { gc(); gc(); return process.memoryUsage().heapUsed }

/** One structure, `writers` documents kept in sync, measured at each checkpoint. */
const measure = (structure: Structure, writers: number, checkpoints: number[], threshold: number): Point[] => {
  const before = heap()
  const text = (round: number): string => JSON.stringify(fullValue(round))
  let docs: Y.Doc[] = []
  let parents: Y.Doc[] = []
  let sets: Array<(key: string, value: string) => void> = []
  const connect = (): void => {
    for (const doc of docs) {
      doc.on('update', (update: Uint8Array, origin: unknown) => {
        if (origin === 'remote') return
        for (const other of docs) if (other !== doc) Y.applyUpdate(other, update, 'remote')
      })
    }
  }
  const open = (seed: Map<string, string> | null): void => {
    parents = docs
    docs = Array.from({ length: writers }, () => new Y.Doc())
    if (seed !== null) {
      const seedDoc = new Y.Doc()
      seedDoc.clientID = 1
      const map = seedDoc.getMap('session-store')
      seedDoc.transact(() => { for (const key of [...seed.keys()].sort()) map.set(key, seed.get(key)) })
      const update = Y.encodeStateAsUpdate(seedDoc)
      for (const doc of docs) Y.applyUpdate(doc, update, 'remote')
    }
    connect()
    if (structure === 'ykeyvalue') {
      sets = docs.map((doc) => {
        const kv = new YKeyValue<string>(doc.getArray('session-store'))
        return (key, value) => kv.set(key, value)
      })
    } else {
      sets = docs.map((doc) => {
        const map = doc.getMap<string>('session-store')
        return (key, value) => map.set(key, value)
      })
    }
  }
  open(null)
  const points: Point[] = []
  let done = 0
  let sinceMove = 0
  for (const target of checkpoints) {
    for (; done < target; done++) {
      const round = Math.floor(done / KEYS.length)
      const writer = sets[round % writers]
      ;(writer as (key: string, value: string) => void)(KEYS[done % KEYS.length] as string, text(round))
      if (structure === 'ymap-epochs' && ++sinceMove >= threshold) {
        sinceMove = 0
        const map = (docs[0] as Y.Doc).getMap<string>('session-store')
        const seed = new Map(Array.from(map.entries()))
        for (const parent of parents) parent.destroy()
        open(seed)
      }
    }
    const first = docs[0] as Y.Doc
    const entries = structure === 'ykeyvalue'
      ? first.getArray<{ key: string, val: string }>('session-store').toArray().map((e) => [e.key, e.val] as const)
      : Array.from(first.getMap<string>('session-store').entries())
    const live = entries.reduce((n, [key, value]) => n + Buffer.byteLength(key) + Buffer.byteLength(value), 0)
    const heapBytes = heap() - before
    points.push({
      overwrites: target,
      heapMiB: heapBytes / 2 ** 20,
      perWriterHeapMiB: heapBytes / writers / 2 ** 20,
      stateV1: Y.encodeStateAsUpdate(first).length,
      stateV2: Y.encodeStateAsUpdateV2(first).length,
      live
    })
  }
  return points
}

const self = fileURLToPath(import.meta.url)
const [, , mode, structureArg, writersArg, checkpointsArg, thresholdArg] = process.argv
if (mode === 'child') {
  const points = measure(structureArg as Structure, Number(writersArg), (checkpointsArg as string).split(',').map(Number), Number(thresholdArg))
  process.stdout.write(JSON.stringify(points))
} else {
  const quick = process.argv.includes('--quick')
  const checkpoints = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]
  const cases: Array<[Structure, number]> = [['ymap', 1], ['ymap', 3], ['ykeyvalue', 1], ['ykeyvalue', 3], ['ymap-epochs', 1], ['ymap-epochs', 3]]
  const threshold = 10_000
  const rows: string[] = []
  const results: Record<string, Point[]> = {}
  for (const [structure, writers] of cases) {
    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, 'child', structure, String(writers), checkpoints.join(','), String(threshold)], { maxBuffer: 1 << 24 }).toString()
    const points = JSON.parse(out) as Point[]
    results[`${structure}/${writers}`] = points
    for (const p of points) {
      rows.push(`| ${p.overwrites.toLocaleString('en')} | ${structure}${structure === 'ymap-epochs' ? ` (every ${threshold.toLocaleString('en')})` : ''} | ${writers} | ${p.perWriterHeapMiB.toFixed(2)} MiB | ${(p.perWriterHeapMiB * 2 ** 20 / p.overwrites).toFixed(1)} | ${(p.stateV1 / 1024).toFixed(1)} KiB | ${(p.stateV2 / 1024).toFixed(1)} KiB | ${(p.live / 1024).toFixed(1)} KiB |`)
    }
    process.stderr.write(`${structure} x${writers} done\n`)
  }
  const table = '| overwrites | structure | writers | heap growth per writer | bytes per overwrite | V1 state | V2 state | live data |\n|---|---|---|---|---|---|---|---|\n' + rows.join('\n') + '\n'
  process.stdout.write(table)
  writeFileSync(new URL('./results/structures.md', import.meta.url), `# Heap and state per overwrite, by structure (bench/structures.ts)\n\n${table}`)
  writeFileSync(new URL('./results/structures.json', import.meta.url), JSON.stringify({ threshold, results }, null, 2))
}

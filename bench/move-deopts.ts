/**
 * `npm run bench:move-deopts`: how much of V8's optimized code an epoch move throws away. Two
 * sessions in one process, over the memory link, play a ping-pong (A sets `ping0` or `ping1` in
 * turns, B's callback answers with `pong0` or `pong1`) for 8,000 round trips: 16,000 writes that
 * Yjs cannot merge (each side alternates two keys; the latency scenario's one key per side merges
 * and makes no history), so the room moves once, past the default `compactAfter` of 10,000
 * structs, at about round trip 5,000. The child runs with `--trace-deopt`; this counts V8's
 * deoptimizations (eager bailouts, and optimized functions invalidated at once by a broken
 * assumption) per 500 round trips, and names the functions deoptimized around each move.
 *
 * Why: a room's first move makes V8 optimize much of the data plane again, and on a small machine
 * that background compiling lengthens the tail of the round trips after it (README, Performance).
 * Measured on 2026-12-02: 55-61 deoptimizations at the first move, 0-3 at each later move
 * (`-- --compact-after 2000`: moves every 1,000 round trips); 49 once the seed was written in
 * place.
 */

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { joinRoom } from '../dist/src/session.js'
import { MemoryHub } from '../dist/src/transport/memory-link.js'

const ROUND_TRIPS = 8000
const WINDOW = 500
const compactArg = process.argv.indexOf('--compact-after')
const compactAfter = compactArg === -1 ? undefined : Number(process.argv[compactArg + 1])

const child = async (): Promise<void> => {
  const hub = new MemoryHub()
  const options = compactAfter === undefined ? {} : { compactAfter }
  const a = joinRoom('move-deopts', options, { link: hub.link })
  const b = joinRoom('move-deopts', options, { link: hub.link })
  const [storeA, storeB] = await Promise.all([a.sessionStore, b.sessionStore])
  storeB.observeChanges(['ping0', 'ping1'], (_key, value) => { if (typeof value === 'number') void storeB.set(`pong${value % 2}`, value) })
  let expected = -1
  let answered: (() => void) | null = null
  storeA.observeChanges(['pong0', 'pong1'], (_key, value) => { if (value === expected) answered?.() })
  let epoch = a.epoch.n
  for (let i = 0; i < ROUND_TRIPS; i++) {
    expected = i
    const round = new Promise<void>((resolve) => { answered = resolve })
    void storeA.set(`ping${i % 2}`, i)
    await round
    if (a.epoch.n !== epoch) {
      epoch = a.epoch.n
      console.log(`[move to epoch ${epoch}]`)
    }
    if ((i + 1) % WINDOW === 0) console.log(`[round trips ${i + 1}]`)
  }
  await Promise.all([a.leave(), b.leave()])
}

const parent = (): void => {
  const script = fileURLToPath(import.meta.url)
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--trace-deopt', script, 'child', ...process.argv.slice(2)], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
  if (run.status !== 0) throw new Error(`the child failed (${String(run.status)}): ${run.stderr.slice(-2000)}`)
  let count = 0
  let names: string[] = []
  let moved = false
  for (const line of run.stdout.split('\n')) {
    const bailout = /^\[bailout \(kind: [^,]+, reason: ([^)]*)\): begin\. deoptimizing \S+ <JSFunction (?:(\S+) )?\(sfi/.exec(line)
    const marked = /^\[marking dependent code .*SharedFunctionInfo ?([^>]*)>\)/.exec(line)
    if (bailout !== null || marked !== null) {
      count++
      names.push(bailout !== null ? `${bailout[2] ?? '(anonymous)'} (${bailout[1] ?? ''})` : `${marked?.[1] === undefined || marked[1] === '' ? '(anonymous)' : marked[1]} (code dependencies)`)
    } else if (line.startsWith('[move')) {
      moved = true
      console.log(line)
    } else if (line.startsWith('[round trips')) {
      console.log(`${line.slice(1, -1)}: ${count} deoptimizations in the last ${WINDOW}`)
      if (moved) console.log(`  ${names.join(', ')}`)
      count = 0
      names = []
      moved = false
    }
  }
}

if (process.argv[2] === 'child') await child()
else parent()

/**
 * `npm run bench [-- --quick] [-- --only latency,join]`: runs every scenario against its
 * anchors on this machine, in one go, and writes the results (JSON, Markdown, SVG chart).
 *
 * A full run writes bench/results/latest.*; `--quick` (the CI smoke run) writes quick.*, and a
 * run limited with `--only` writes partial.*, so neither can overwrite a committed full run.
 */

import { parseArgs } from 'node:util'
import { killAll } from './lib/child.js'
import { describeMachine, gitCommit, loadAverage, packageVersions } from './lib/machine.js'
import { ONE_ADDRESS_FOR_ALL, startServer, type RunningServer } from './lib/servers.js'
import { now } from './lib/clock.js'
import { writeResults } from './lib/report.js'
import type { Results } from './lib/results.js'
import { failure, type Context, type Failure } from './scenarios/context.js'
import { runLatency } from './scenarios/latency.js'
import { runThroughput } from './scenarios/throughput.js'
import { runJoin } from './scenarios/join.js'
import { runMesh } from './scenarios/mesh.js'
import { runHistory } from './scenarios/history.js'
import { runRooms } from './scenarios/rooms.js'
import { runSignaling } from './scenarios/signaling.js'
import { runBrowser } from './scenarios/browser.js'

const SCENARIOS = ['latency', 'throughput', 'join', 'mesh', 'history', 'rooms', 'browser', 'signaling'] as const
type ScenarioName = typeof SCENARIOS[number]

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' }
  }
})
const quick = values.quick === true
const only = values.only === undefined ? null : values.only.split(',').map((s) => s.trim())
for (const name of only ?? []) {
  if (!SCENARIOS.includes(name as ScenarioName)) throw new Error(`unknown scenario '${name}'; one of ${SCENARIOS.join(', ')}`)
}
const selected = SCENARIOS.filter((name) => only === null || only.includes(name))

const started = now()
const log = (scope: string) => (message: string): void => {
  console.log(`[${((now() - started) / 1000).toFixed(1).padStart(6)} s] ${scope}: ${message}`)
}

// Whatever ends the run, the processes it started end with it.
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

const loadBefore = loadAverage()
const results: Results = {
  run: { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', durationS: 0, commit: gitCommit(), versions: packageVersions(), machine: describeMachine(loadBefore) },
  scenarios: {}
}

// The rooms scenario needs no server: its peers are in one process per contender.
const peerScenarios = selected.filter((name) => name !== 'signaling' && name !== 'rooms')
let peerServers: Record<'y-webrtc' | 'ours', RunningServer> | null = null
if (peerScenarios.length > 0) {
  // The key-value contenders' signaling servers, default options (what each one's user runs), but
  // for the per-address limits of ours: every peer here is on 127.0.0.1.
  peerServers = { 'y-webrtc': await startServer('y-webrtc'), ours: await startServer('ours', ONE_ADDRESS_FOR_ALL) }
}

const contextFor = (scope: string): Context => ({
  quick,
  servers: peerServers as Record<'y-webrtc' | 'ours', RunningServer>,
  signalingFor: (contender) => (peerServers as Record<'y-webrtc' | 'ours', RunningServer>)[contender === 'y-webrtc' ? 'y-webrtc' : 'ours'].url,
  log: log(scope)
})

const run = async <T>(name: ScenarioName, fn: (ctx: Context) => Promise<T>): Promise<T | Failure | undefined> => {
  if (!selected.includes(name)) return undefined
  const ctx = contextFor(name)
  ctx.log('start')
  const t0 = now()
  try {
    const result = await fn(ctx)
    ctx.log(`done in ${((now() - t0) / 1000).toFixed(1)} s`)
    return result
  } catch (err) {
    ctx.log(`FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
    return failure(err)
  }
}

results.scenarios.latency = await run('latency', runLatency)
results.scenarios.throughput = await run('throughput', runThroughput)
results.scenarios.join = await run('join', runJoin)
results.scenarios.mesh = await run('mesh', runMesh)
results.scenarios.history = await run('history', runHistory)
results.scenarios.rooms = await run('rooms', runRooms)
results.scenarios.browser = await run('browser', runBrowser)
if (peerServers !== null) {
  // Rejections by our server would mean its limits, not the library, shaped the peer scenarios.
  const stats = await peerServers.ours.stats().catch(() => null)
  results.peerSignaling = { ourRejections: stats === null ? null : { ...stats.rejections } }
  // Idle from here; stopped anyway, so the load scenario has the machine alone.
  await Promise.all(Object.values(peerServers).map((server) => server.close()))
}
results.scenarios.signaling = await run('signaling', runSignaling)

results.run.durationS = Math.round((now() - started) / 1000)
results.run.machine = describeMachine(loadBefore)
const written = await writeResults(results, quick ? 'quick' : only !== null ? 'partial' : 'latest')
log('bench')(`wrote ${written.join(', ')}`)
killAll()

/**
 * `npm run bench:idle [-- --runs 3] [-- --server ours]`: the signaling scenario's idle row alone
 * (scenario 4's `measureIdle`, the same method and the same 10,000 clients), repeated, with the
 * median of each reading and the load average around each run. Nothing is written to results/:
 * a full run's numbers are the committed ones.
 */

import { parseArgs } from 'node:util'
import { killAll } from './lib/child.js'
import { loadAverage } from './lib/machine.js'
import { SERVERS, type RunningServer, type ServerName } from './lib/servers.js'
import { measureIdle, type IdleResult } from './scenarios/signaling.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, server: { type: 'string', default: 'ours' } } })
const runs = Number(values.runs)
const server = values.server as ServerName
if (!SERVERS.includes(server)) throw new Error(`unknown server '${server}'; one of ${SERVERS.join(', ')}`)

process.on('exit', killAll)

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  const at = (i: number): number => sorted[i] ?? Number.NaN
  return sorted.length % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2
}

const ctx = { quick: false, log: (m: string) => console.log(m), signalingFor: () => '', servers: {} as Record<ServerName, RunningServer> }
const results: IdleResult[] = []
for (let i = 0; i < runs; i++) {
  const before = loadAverage()[0]
  const r = await measureIdle(ctx, server)
  results.push(r)
  console.log(`run ${i + 1}: ${Math.round(r.bytesPerConnection)} B RSS, ${Math.round(r.heapBytesPerConnection)} B heap per connection held; load average ${before} -> ${loadAverage()[0]}`)
}
const of = (f: (r: IdleResult) => number): string => results.map(f).map(Math.round).join(', ') + ` (median ${Math.round(median(results.map(f)))})`
console.log(`${server}, ${results[0]?.connections} idle connections, ${runs} runs`)
console.log(`RSS per connection held: ${of((r) => r.bytesPerConnection)}`)
console.log(`heap per connection held: ${of((r) => r.heapBytesPerConnection)}`)
console.log(`RSS per connection 2 s after the burst: ${of((r) => r.burstBytesPerConnection)}`)

/**
 * Writing a run's results: the JSON (everything measured), a readable Markdown report with the
 * targets first, and the SVG chart of the round-trip distributions it links to.
 */

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { REPO_ROOT } from './child.js'
import { latencyChart } from './svg.js'
import { chunkHelpers, chunkTails, judgeTargets } from './targets.js'
import type { PreviousIdle, Results } from './results.js'
import { LABELS, type ContenderName, type Failure } from '../scenarios/context.js'
import type { LatencyResult } from '../scenarios/latency.js'
import type { ThroughputResult } from '../scenarios/throughput.js'
import type { JoinAttempt, JoinResult } from '../scenarios/join.js'
import type { MeshResult } from '../scenarios/mesh.js'
import type { HistoryResult } from '../scenarios/history.js'
import type { BrowserResult } from '../scenarios/browser.js'
import { ROOM_LABELS, type RoomsResult } from '../scenarios/rooms.js'
import { IDLE_HOLD_S, MAX_P99_MS, MIN_DELIVERED, type LoadStep, type SignalingResult } from '../scenarios/signaling.js'
import { SERVER_LABELS } from './servers.js'

const RESULTS_DIR = `${REPO_ROOT}bench/results/`

const COLORS: Record<ContenderName, string> = {
  'simple-peer': '#7f7f7f',
  'y-webrtc': '#1f77b4',
  'session-store': '#e6550d'
}

/** Writes via a .tmp file and a rename, so a reader never sees half a file. */
const writeAtomic = async (path: string, text: string): Promise<void> => {
  await writeFile(`${path}.tmp`, text)
  await rename(`${path}.tmp`, path)
}

const ok = <T extends object>(x: T | Failure | undefined): x is T => x !== undefined && !('error' in x)

const ms = (x: number | null | undefined): string => x == null || Number.isNaN(x) ? '–' : x < 10 ? x.toFixed(3) : x < 100 ? x.toFixed(1) : x.toFixed(0)
const int = (x: number): string => Math.round(x).toLocaleString('en-US')
const times = (x: number): string => Number.isFinite(x) ? `${x.toFixed(2)}×` : '–'
const kib = (x: number): string => `${(x / 1024).toLocaleString('en-US', { maximumFractionDigits: 1 })} KiB`

const count = (n: number, noun: string): string => `${int(n)} ${noun}${n === 1 ? '' : 's'}`

const table = (head: string[], rows: string[][]): string =>
  [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')

const failed = (what: string, f: Failure): string => `**${what} failed:** ${f.error}`

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)] as number
}

const rejections = (counts: Record<string, number> | null | undefined): string => {
  if (counts == null) return 'an unknown number of messages'
  const nonzero = Object.entries(counts).filter(([, n]) => n > 0)
  return nonzero.length === 0 ? 'nothing' : nonzero.map(([k, n]) => `${int(n)} (${k})`).join(', ')
}

const runSection = (r: Results, chart: string | null): string => {
  const m = r.run.machine
  const lines = [
    '# Benchmark results',
    '',
    `${r.run.mode === 'quick' ? 'A **quick** smoke run (short and small: not for comparison). ' : ''}Measured ${r.run.date.slice(0, 16).replace('T', ' ')} UTC in ${int(r.run.durationS)} s, ` +
      `on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.platform}. ` +
      `Load average (1, 5, 15 min) ${m.loadBefore.join(', ')} at the start and ${m.loadAfter.join(', ')} at the end: other work shared the machine.`,
    '',
    `Commit ${r.run.commit ?? 'unknown'}; ${Object.entries(r.run.versions).map(([k, v]) => `${k} ${v}`).join(', ')}. ` +
      'Every contender runs in its own processes over loopback, each key-value contender signaling through its own server ' +
      `(default options; ours rejected ${rejections(r.peerSignaling?.ourRejections)} during the peer scenarios). How each scenario works: [bench/README.md](../README.md).`,
    ''
  ]
  if (r.targets !== undefined) {
    lines.push('## Targets', '', table(['Target', 'y-session-store', 'anchor', 'ratio', 'verdict', 'note'],
      r.targets.map((t) => [t.target, t.ours, t.anchor, t.ratio, t.verdict === 'pass' ? '**pass**' : t.verdict === 'short' ? '**short**' : 'n/a', t.note])), '')
  }
  if (chart !== null) lines.push(`![Round-trip latency distributions](${chart})`, '')
  return lines.join('\n')
}

const latencySection = (l: LatencyResult | Failure | undefined): string => {
  if (l === undefined) return ''
  const head = '## 1. Round-trip latency\n\nA sets `ping`, B\'s change callback answers `pong`, A\'s callback sees it; '
  if (!ok(l)) return `${head}\n\n${failed('Latency', l)}\n`
  const floor = l.rows.find((r) => r.contender === 'simple-peer')?.summary.p50 ?? Number.NaN
  const stock = l.rows.find((r) => r.contender === 'y-webrtc')?.summary
  return `${head}${count(l.iterations, 'round trip')} each, in ${count(l.chunks, 'chunk')} per contender, taking turns (forwards, then backwards), after a warm-up: ` +
    `rounds of ${l.warmup.round} round trips until V8 was done compiling the pair's code (both peers' helper threads at most ${l.warmup.settledHelperMs} ms of CPU in each of two rounds in a row; at most ${l.warmup.max}), ` +
    'whose round trips and tail are shown apart (what the first seconds of a session cost). Milliseconds.\n\n' +
    'The library moves a room to a fresh document (an epoch) when the structs its history holds pass `compactAfter`; here each side overwrites its own key, ' +
    'whose overwritten items Yjs merges into one struct, so the ping-pong makes no history: a chunk in which a move ran anyway is marked in the p99 column. ' +
    'Helper ms is the CPU time of both peers\' Node helper threads in each chunk (from /proc; V8\'s background compiler, mostly, and its GC helpers): ' +
    'on a small machine they take cores from both peers\' main and libwebrtc threads, and the chunks where V8 compiles much are the chunks with long tails.\n\n' +
    table(['contender', 'p50', 'p99', 'max', 'mean', 'p50 × floor', 'p50 × y-webrtc', 'p99 × y-webrtc', 'p50 of each chunk', 'p99 of each chunk', 'helper ms of each chunk', 'warm-up: round trips, p50 / p99', 'helper ms of each warm-up round'], l.rows.map((r) => [
      LABELS[r.contender], ms(r.summary.p50), ms(r.summary.p99), ms(r.summary.max), ms(r.summary.mean),
      times(r.summary.p50 / floor), stock === undefined ? '–' : times(r.summary.p50 / stock.p50), stock === undefined ? '–' : times(r.summary.p99 / stock.p99),
      r.chunkP50s.map((x) => x.toFixed(3)).join(', '), chunkTails(r), chunkHelpers(r),
      `${r.warmupRoundTrips}, ${ms(r.cold.p50)} / ${ms(r.cold.p99)}`, r.warmupHelpers.join(', ')
    ])) + '\n'
}

const throughputSection = (t: ThroughputResult | Failure | undefined): string => {
  if (t === undefined) return ''
  const head = '## 2. Throughput\n\n'
  if (!ok(t)) return `${head}${failed('Throughput', t)}\n`
  const stock = t.rows.find((r) => r.contender === 'y-webrtc')?.median
  return `${head}A writes 100 keys (about 100-byte values) round-robin for ${t.durationMs / 1000} s as fast as the API allows, yielding to the event loop every ${t.yieldEvery} writes; ` +
    `B counts what it observes. ${count(t.rows[0]?.rounds.length ?? 0, 'round')} per contender on fresh pairs, taking turns (forwards, then backwards); the median round by write rate is shown. ` +
    `Round by round, y-session-store's writes/s over y-webrtc's: ${t.roundRatios.map((r) => times(r)).join(', ')} (median ${t.medianRoundRatio === null ? '–' : times(t.medianRoundRatio)}). ` +
    'CPU per write is A\'s whole process (libwebrtc\'s threads included) during the burst; messages and bytes are what A handed its data channel (below framing). ' +
    'B\'s lag runs from A\'s last write until B held every key\'s final value; B observes one change per key per message, so it observes fewer changes than A made writes. ' +
    'The raw simple-peer row sends one ~100-byte message per write in the same loop: the floor, since every data-channel send is a synchronous call into libwebrtc\'s threads.\n\n' +
    table(['contender', 'writes/s', '× y-webrtc', 'CPU µs per write', 'µs per write call', 'messages/s', 'bytes/s', 'BroadcastChannel posts per write', 'changes B observed/s', 'B\'s lag', 'every round (writes/s)'], t.rows.map((r) => [
      LABELS[r.contender],
      r.median === null ? '–' : int(r.median.writesPerSecond),
      r.median === null || stock == null ? '–' : times(r.median.writesPerSecond / stock.writesPerSecond),
      r.median === null ? '–' : r.median.cpuUsPerWrite.toFixed(0),
      r.median === null ? '–' : (1000 * r.median.inWritesMs / r.median.writes).toFixed(1),
      r.median === null ? '–' : int(r.median.messagesPerSecond),
      r.median === null ? '–' : int(r.median.bytesPerSecond),
      r.median === null ? '–' : r.median.broadcastPostsPerWrite.toFixed(2),
      r.median === null ? '–' : int(r.median.deliveredPerSecond),
      r.median?.lagMs == null ? 'never caught up' : `${ms(r.median.lagMs)} ms`,
      r.rounds.map((x) => ok(x) ? `${int(x.writesPerSecond)}${x.complete ? '' : ' (incomplete)'}` : `failed (${x.error})`).join(', ')
    ])) + '\n'
}

const retried = (retries: string[]): string => retries.length === 0 ? '' : `; formed at the second try, the first failed: ${retries.join('; ')}`

const joinOutcome = (attempts: Array<JoinAttempt | Failure>, timeoutMs: number): string => {
  const done = attempts.filter((a): a is JoinAttempt => ok(a) && a.completeMs !== null)
  if (done.length === attempts.length && done.length > 0) return 'joined'
  const first = attempts.find((a) => !ok(a) || a.completeMs === null)
  if (first === undefined) return 'not measured'
  if (!ok(first)) return `failed: ${first.error}`
  return `**no sync within ${timeoutMs / 1000} s** (${first.keysPresent} keys; ${int(first.traffic.bytesIn)} bytes received)`
}

const joinSection = (j: JoinResult | Failure | undefined): string => {
  if (j === undefined) return ''
  const head = '## 3. Join time\n\n'
  if (!ok(j)) return `${head}${failed('Join', j)}\n`
  const rows = j.rows.map((r) => {
    if ('error' in r) return [String(r.roomPeers), int(r.overwrites), LABELS[r.contender], '–', '–', '–', '–', `failed: ${r.error}`]
    const done = r.attempts.filter((a): a is JoinAttempt => ok(a) && a.completeMs !== null)
    const sent = r.roomTraffic === null ? '' : `; room's largest message ${int(r.roomTraffic.largestSend)} B, ${r.roomTraffic.channelsClosed} channels closed`
    return [
      String(r.roomPeers), int(r.overwrites), LABELS[r.contender], kib(r.stateBytes),
      done.length === 0 ? '–' : ms(median(done.map((a) => a.completeMs as number))),
      done.length === 0 ? '–' : ms(Math.max(...done.map((a) => a.completeMs as number))),
      done.length === 0 ? '–' : kib(median(done.map((a) => a.traffic.bytesIn))),
      joinOutcome(r.attempts, j.timeoutMs) + (done.length === r.attempts.length ? '' : sent) + retried(r.setupRetries) +
        (r.roomError === null ? '' : `; afterwards a room peer was gone: ${r.roomError}`)
    ]
  })
  return `${head}A room of N peers holds a full store (100 keys, about 64 KB), or the same after 50,000 overwrites; a new peer (a fresh process) joins. ` +
    'Time from `joinRoom` / `new WebrtcProvider` until every key holds its final value; bytes its data channels received by then. Up to 3 joins per room (one when a join times out).\n\n' +
    table(['room peers', 'overwrites', 'contender', 'room state', 'join ms (median)', 'join ms (max)', 'received', 'outcome'], rows) + '\n'
}

const stepRow = (label: string, s: LoadStep): string[] => [
  label, int(s.publishRate), int(s.relayedPerSecond), `${(100 * s.deliveredRatio).toFixed(1)} %`, ms(s.latency.p50), ms(s.latency.p99),
  `${s.serverCpuPercent.toFixed(0)} %`, s.serverCpuUsPerRelayed.toFixed(1), s.serverPeakRssMiB.toFixed(0), `${s.generatorCpuPercent.toFixed(0)} %`, s.held ? 'held' : 'missed'
]

const previousIdleLine = (previous: PreviousIdle | null | undefined): string => {
  if (previous == null || previous.servers.length === 0) return ''
  const servers = previous.servers.map(({ server, idle }) =>
    `${SERVER_LABELS[server]} ${int(idle.bytesPerConnection)} B of RSS and ${int(idle.heapBytesPerConnection)} B of heap` +
    (idle.burstBytesPerConnection === undefined ? '' : ` (${int(idle.burstBytesPerConnection)} B of RSS 2 s after the burst)`))
  const method = previous.servers.some(({ idle }) => idle.burstBytesPerConnection === undefined) ? ', read 2 s after the burst with the servers under tsx' : ''
  return `\nThe previous full run (${previous.date.slice(0, 10)}, commit ${previous.commit ?? 'unknown'}) measured per idle connection: ${servers.join('; ')}${method}.\n`
}

const signalingSection = (s: SignalingResult | Failure | undefined, previous?: PreviousIdle | null): string => {
  if (s === undefined) return ''
  const head = '## 4. Signaling server load\n\n'
  if (!ok(s)) return `${head}${failed('Signaling', s)}\n`
  const stepHead = ['server', 'publishes/s', 'relayed/s', 'delivered', 'p50 ms', 'p99 ms', 'server CPU', 'µs CPU per relayed', 'peak RSS MiB', 'generators CPU', '']
  const fixed = s.servers.map((l) => ok(l.fixed) ? stepRow(SERVER_LABELS[l.server], l.fixed) : [SERVER_LABELS[l.server], `failed: ${l.fixed.error}`])
  const ladder = s.servers.flatMap((l) => l.ladder.map((x) => stepRow(SERVER_LABELS[l.server], x)))
  const matched = s.servers.flatMap((l) => l.matched.map((x) => stepRow(SERVER_LABELS[l.server], x)))
  const best = s.servers.map((l) => [
    SERVER_LABELS[l.server],
    l.best === null ? 'none' : `${int(l.best.publishRate)}${l.bestIsCeiling ? ' (top of the ladder)' : ''}`,
    l.best === null ? '–' : int(l.best.relayedPerSecond),
    l.best === null ? '–' : ms(l.best.latency.p99),
    ok(l.idle) ? `${l.idle.baselineRssMiB.toFixed(1)} → ${l.idle.loadedRssMiB.toFixed(1)}` : `failed: ${l.idle.error}`,
    ok(l.idle) ? int(l.idle.bytesPerConnection) : '–',
    ok(l.idle) ? int(l.idle.heapBytesPerConnection) : '–',
    ok(l.idle) ? `${int(l.idle.burstBytesPerConnection)} (young generation ${l.idle.youngMiB.burst.toFixed(0)} MiB)` : '–',
    l.rejections === null ? 'n/a' : Object.entries(l.rejections).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'
  ])
  return `${head}${int(s.connections)} WebSocket clients in ${int(s.rooms)} rooms of 10 speak y-webrtc's signaling JSON; every publish (an ICE-candidate signal carrying its send time) is relayed to the room's 10 subscribers. ` +
    `Each server runs in its own process${s.pinned ? ', pinned to CPU 0, with its 2 load-generator processes pinned to CPU 1' : ''}; the two servers take turns at each rate. ` +
    `A rate is held when ≥ ${MIN_DELIVERED * 100} % of relayed messages arrive, p99 ≤ ${MAX_P99_MS} ms and no client is dropped (a miss is retried once). ` +
    `Our server ran with ${Object.entries(s.ourOptions).map(([k, v]) => `\`${k}: ${String(v)}\``).join(', ')} (its defaults are 10,000 connections, 100 messages/s and a burst of 1,000 per connection, and 20 connections and 200 messages/s per client address: every client here is on 127.0.0.1).\n\n` +
    `### Fixed rate (${int(s.fixedRate)} publishes/s)\n\n${table(stepHead, fixed)}\n\n` +
    `### Ladder (${s.stepSeconds} s per step)\n\n${table(stepHead, ladder)}\n\n` +
    `### Both at the highest rate both held (taking turns)\n\n${matched.length === 0 ? 'No rate was held by both.' : table(stepHead, matched)}\n\n` +
    `### Highest rate held, and ${int(s.idleConnections)} idle connections\n\n` +
    `A fresh server, idle ${IDLE_HOLD_S} s, then ${int(s.idleConnections)} clients, each subscribed to one of ${int(s.idleConnections / 10)} rooms, held ${IDLE_HOLD_S} s; both readings after a full GC, once V8 has shrunk its young generation back ` +
    '(the burst of handshakes grows it, a cost of the burst that V8 gives back seconds after it). The reading 2 s after the burst is in the last memory column.\n\n' +
    table(['server', 'highest publishes/s held', 'relayed/s', 'p99 ms', `RSS MiB, 0 → ${int(s.idleConnections)} idle`, 'RSS bytes per idle connection held', 'heap bytes per idle connection', 'RSS bytes per connection 2 s after the burst', 'our rejections'], best) + '\n' +
    previousIdleLine(previous)
}

const historySection = (h: HistoryResult | Failure | undefined): string => {
  if (h === undefined) return ''
  const head = '## 5. History growth\n\n'
  if (!ok(h)) return `${head}${failed('History', h)}\n`
  const rows = h.rows.flatMap((r) => !('error' in r)
    ? r.points.map((p) => [int(p.overwrites), LABELS[r.contender], kib(p.liveBytes), kib(p.stateBytes), times(p.stateBytes / p.liveBytes), kib(p.stateBytesV2), kib(p.syncWireBytes), times(p.syncWireBytes / p.stateBytesV2),
      p.syncMessageBytes > h.dataChannelLimit ? (r.contender === 'y-webrtc' ? '**over 256 KiB: unjoinable**' : `over 256 KiB: ${Math.ceil(p.syncMessageBytes / 16384)} frames`) : p.syncMessageBytes > 16384 && r.contender === 'session-store' ? `${Math.ceil(p.syncMessageBytes / 16384)} frames` : 'fits'])
    : [['–', LABELS[r.contender], `failed: ${r.error}`]])
  return `${head}One peer alone overwrites the full store's 100 keys (about 640-byte values) round after round. ` +
    'State is `Y.encodeStateAsUpdate` (V1) and `Y.encodeStateAsUpdateV2`; a joiner with an empty document receives y-webrtc\'s answer to its sync step 1 (the V1 state, one message), or the library\'s (its V2 sync step 2, plus its framing).\n\n' +
    table(['overwrites', 'contender', 'live data', 'state (V1)', 'state ÷ live', 'state (V2)', 'joiner receives', '÷ V2 state', 'one data-channel message?'], rows) + '\n'
}

/** Scenario 8's table, also what `npm run bench:history` writes (bench/results/history-room.md). */
export const roomsTable = (r: RoomsResult): string => {
  const rows = r.rows.flatMap((row) => {
    const label = ROOM_LABELS[row.contender]
    const measured = 'error' in row
      ? [['–', label, `failed: ${row.error}`]]
      : row.points.map((p) => [
        int(p.overwrites), label, kib(p.liveBytes), `${p.heapPerPeerMiB.toFixed(2)} MiB`, `${p.heapAboveLiveMiB.toFixed(2)} MiB`, kib(p.stateV1), kib(p.stateV2),
        `${kib(p.joinerBytesPerPeer)} (${times(p.joinerBytesPerPeer / p.liveBytes)})`, kib(p.joinerBytes), int(p.epoch),
        `${ms(p.writeMs.p50)} / ${ms(p.writeMs.p99)} / ${ms(p.writeMs.max)}`,
        p.moveMs.count === 0 ? '–' : `${count(p.moveMs.count, 'move')}: ${ms(p.moveMs.p50)} / ${ms(p.moveMs.p99)} / ${ms(p.moveMs.max)}`
      ])
    const skipped = row.skipped === null ? [] : row.skipped.overwrites.map((n) => [int(n), label, `not run: ${row.skipped?.reason ?? ''}`])
    return [...measured, ...skipped]
  })
  return table(['overwrites', 'contender', 'live data', 'heap per peer', 'heap per peer above live data', 'state V1', 'state V2', 'joiner receives from one peer (÷ live)', `joiner receives in all (${r.peers} peers)`, 'epoch', 'write ms p50 / p99 / max', 'moves so far: write ms when one ran p50 / p99 / max'], rows) + '\n'
}

const roomsSection = (r: RoomsResult | Failure | undefined): string => {
  if (r === undefined) return ''
  const head = '## 8. History in a live room\n\n'
  if (!ok(r)) return `${head}${failed('Rooms', r)}\n`
  return `${head}${r.peers} peers take turns overwriting the full store's 100 keys (about 640-byte values), a round of 100 writes each, yielding to the event loop every ${r.yieldEvery} writes; ` +
    `each contender's peers share one child process: the library's are sessions over the in-memory link (compactAfter ${r.compactAfter === null ? 'the default' : int(r.compactAfter)}), stock y-webrtc's (a Y.Map) and YKeyValue's are documents exchanging their updates directly. ` +
    'Heap per peer is the process\'s heap growth after a full GC, divided among the peers; state is the current document\'s. A joiner receives, for the library, every byte a fourth session got until it held every key (from each peer, and in all); for the others, the V1 state y-webrtc\'s sync step 2 sends from each peer. ' +
    'Write ms covers every write since the previous checkpoint, in the loop the 3 peers share (a move on any peer delays every write); moves are the writes during which a move ran, since the start.\n\n' +
    roomsTable(r)
}

const meshSection = (m: MeshResult | Failure | undefined): string => {
  if (m === undefined) return ''
  const head = '## 6. Mesh size\n\n'
  if (!ok(m)) return `${head}${failed('Mesh', m)}\n`
  const rows = m.rows.map((r) => !('error' in r)
    ? [String(r.peers), LABELS[r.contender], ms(r.toEveryPeer.p50), ms(r.toEveryPeer.p99), ms(r.toOnePeer.p50), String(r.missing),
        r.updateMessagesPerWrite.toFixed(2), (r.updateMessagesPerWrite * (r.peers - 1)).toFixed(1), r.messagesPerWrite.toFixed(2), int(r.bytesPerWrite),
        `${r.writerCpuPercent.toFixed(1)} %`, `${r.receiverCpuPercent.toFixed(1)} %`, r.setupS.toFixed(1) + retried(r.setupRetries)]
    : [String(r.peers), LABELS[r.contender], `failed: ${r.error}`])
  return `${head}N peers (processes) in one room; one writes a key every ${m.intervalMs} ms, ${m.writes} times after warm-up; the others record arrival times. ` +
    'Milliseconds until every peer had a write; what each receiver\'s data channels got per write (update messages; all messages, awareness renewals and state checks included; bytes), and the update messages per write in the whole room; CPU per peer over the window (percent of one core). N processes share the machine\'s cores, so large meshes measure the machine as much as the code.\n\n' +
    table(['peers', 'contender', 'to every peer p50', 'to every peer p99', 'to one peer p50', 'missing', 'update msgs per peer per write', 'update msgs per write (room)', 'all msgs per peer per write', 'bytes per peer per write', 'writer CPU', 'receiver CPU (mean)', 'mesh ready s'], rows) + '\n'
}

const browserSection = (b: BrowserResult | Failure | undefined): string => {
  if (b === undefined) return ''
  const head = '## 7. In Chromium\n\n'
  if (!ok(b)) return `${head}${failed('Browser', b)}\n`
  const floor = b.latency.find((r) => r.contender === 'simple-peer')?.summary
  const stock = b.latency.find((r) => r.contender === 'y-webrtc')?.summary
  const stockRate = b.throughput.find((r) => r.contender === 'y-webrtc')?.median?.writesPerSecond
  const label = (c: ContenderName): string => c === 'simple-peer' ? 'raw RTCDataChannel' : LABELS[c]
  return `${head}Scenarios 1 and 2 in Chromium ${b.chromium} (Debian's, headless), one browser context per peer, all three contenders bundled into one page. ` +
    `${count(b.iterations, 'round trip')} per contender in chunks taking turns; throughput ${b.durationMs / 1000} s per round, yielding every ${b.yieldEvery} writes, a fresh pair per round. ` +
    'A send in Chromium does not block on another thread as it does in Node, so these differ in kind from the Node rows. ' +
    'Chromium gives a page that is not cross-origin isolated `performance.now()` in steps of 0.1 ms, so round trips are quantised to 0.1 ms.\n\n' +
    table(['contender', 'round trip p50', 'p99', 'p50 × floor', 'p50 × y-webrtc', 'p99 × y-webrtc', 'p50 of each chunk'], b.latency.map((r) => [
      label(r.contender), ms(r.summary.p50), ms(r.summary.p99), floor === undefined ? '–' : times(r.summary.p50 / floor.p50),
      stock === undefined ? '–' : times(r.summary.p50 / stock.p50), stock === undefined ? '–' : times(r.summary.p99 / stock.p99), r.chunkP50s.map((x) => x.toFixed(3)).join(', ')
    ])) + '\n\n' +
    table(['contender', 'writes/s', '× y-webrtc', 'B\'s lag', 'every round (writes/s, lag ms)'], b.throughput.map((r) => [
      label(r.contender), r.median === null ? '–' : int(r.median.writesPerSecond),
      r.median === null || stockRate === undefined ? '–' : times(r.median.writesPerSecond / stockRate),
      r.median?.lagMs == null ? 'never caught up' : `${ms(r.median.lagMs)} ms`,
      r.rounds.map((x) => `${int(x.writesPerSecond)} (${x.lagMs === null ? 'never' : x.lagMs.toFixed(1)})`).join(', ')
    ])) + '\n'
}

export const renderMarkdown = (r: Results, chart: string | null): string => [
  runSection(r, chart),
  latencySection(r.scenarios.latency),
  throughputSection(r.scenarios.throughput),
  joinSection(r.scenarios.join),
  signalingSection(r.scenarios.signaling, r.previousIdle),
  historySection(r.scenarios.history),
  meshSection(r.scenarios.mesh),
  browserSection(r.scenarios.browser),
  roomsSection(r.scenarios.rooms)
].filter((s) => s !== '').join('\n')

/** The idle memory of the committed full run (`latest.json`), if there is one. */
const readPreviousIdle = async (): Promise<PreviousIdle | null> => {
  let previous: Results
  try {
    previous = JSON.parse(await readFile(`${RESULTS_DIR}latest.json`, 'utf8')) as Results
  } catch {
    return null
  }
  const { signaling } = previous.scenarios
  if (!ok(signaling)) return null
  return {
    date: previous.run.date,
    commit: previous.run.commit,
    servers: signaling.servers.flatMap((l) => ok(l.idle) ? [{ server: l.server, idle: l.idle }] : [])
  }
}

export const writeResults = async (results: Results, name: string): Promise<string[]> => {
  await mkdir(RESULTS_DIR, { recursive: true })
  results.targets = judgeTargets(results)
  if (results.scenarios.signaling !== undefined) results.previousIdle = await readPreviousIdle()
  const written: string[] = []
  let chart: string | null = null
  const { latency } = results.scenarios
  if (ok(latency)) {
    chart = name === 'latest' ? 'latency.svg' : `${name}-latency.svg`
    const svg = latencyChart('Round-trip latency by percentile', latency.rows.map((row) => ({
      label: `${LABELS[row.contender]}: p50 ${ms(row.summary.p50)} ms, p99 ${ms(row.summary.p99)} ms`,
      color: COLORS[row.contender],
      curve: row.curve
    })))
    await writeAtomic(`${RESULTS_DIR}${chart}`, svg)
    written.push(`${RESULTS_DIR}${chart}`)
  }
  await writeAtomic(`${RESULTS_DIR}${name}.json`, `${JSON.stringify(results, null, 2)}\n`)
  await writeAtomic(`${RESULTS_DIR}${name}.md`, renderMarkdown(results, chart))
  written.push(`${RESULTS_DIR}${name}.json`, `${RESULTS_DIR}${name}.md`)
  return written
}

/**
 * `npm run bench:redis [-- --quick]`: what relaying through Redis costs. The same load (200
 * WebSocket clients in 20 rooms of 10) runs against one signaling instance, one instance with
 * Redis, and two instances sharing a Redis with each room split 5 + 5 across them. Each setup gets
 * a fixed publish rate (latency at a realistic load) and then a closed loop (the most it sustains).
 *
 * Servers and redis-server run as child processes; this process is the load generator and holds
 * one clock, so a latency is receive time minus the send time carried in the message. The setups
 * run in turn, `--reps` times (3; 1 with --quick), and the table shows each figure's median over
 * the repetitions, so a burst of load from something else on the machine skews one setup less.
 * Writes bench/results/redis.md and .json (redis-quick.* with --quick) and prints the table.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { freePort } from '../test/helpers/net.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = `${ROOT}dist/signaling/cli.js`
const RESULTS = `${ROOT}bench/results/`

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, reps: { type: 'string' } } })
const quick = values.quick === true
const REPS = Number(values.reps ?? (quick ? 1 : 3))
if (!Number.isInteger(REPS) || REPS < 1) throw new Error('--reps must be a positive integer')

const ROOMS = 20
const PER_ROOM = 10
/** Publishes per second over all clients in the fixed-rate phase (each reaches 10 subscribers). */
const FIXED_RATE = 500
/** Messages each room keeps in flight in the closed loop (a message is done when all 10 got it). */
const WINDOW = 4
const WARMUP_MS = quick ? 500 : 2_000
const PHASE_MS = quick ? 2_000 : 10_000

interface Setup {
  name: string
  instances: number
  redis: boolean
}

const SETUPS: Setup[] = [
  { name: '1 instance', instances: 1, redis: false },
  { name: '1 instance + Redis', instances: 1, redis: true },
  { name: '2 instances + Redis', instances: 2, redis: true }
]

// ---- processes ----------------------------------------------------------------------------------

const children = new Set<ChildProcess>()
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))

/** Spawns `command` and resolves once its output matches `ready`. */
const startProcess = async (command: string, args: string[], ready: RegExp): Promise<{ child: ChildProcess, match: RegExpExecArray }> => {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let output = ''
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start: ${output}`)), 15_000)
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      const match = ready.exec(output)
      if (match === null) return
      clearTimeout(timer)
      resolve({ child, match })
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`${command} exited with ${String(code)}: ${output}`)))
  })
}

const stop = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
const cpuSeconds = (pid: number | undefined): number => {
  if (pid === undefined) return Number.NaN
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return Number.NaN
  }
}

const isRedisUp = async (url: string): Promise<boolean> =>
  (await (await fetch(`${url.replace('ws://', 'http://')}/metrics`)).text()).split('\n').includes('signaling_redis_up 1')

const waitUntil = async (what: string, cond: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// ---- load ---------------------------------------------------------------------------------------

interface Sample {
  /** Latency of every delivery, ms. */
  all: number[]
  /** Latency of deliveries that crossed to the other instance, ms. */
  crossed: number[]
  deliveries: number
  publishes: number
  wrongCounts: number
}

const newSample = (): Sample => ({ all: [], crossed: [], deliveries: 0, publishes: 0, wrongCounts: 0 })

interface Client {
  ws: WebSocket
  room: string
  instance: number
  /** Publishes of this client it has received back. */
  echoes: number
}

interface Load {
  clients: Client[]
  /** Set to record; null while warming up or idle. */
  sample: Sample | null
  /** Called when every member of room `room` has received message `id`. */
  onDone: ((room: number, id: number) => void) | null
  /** Publishes from `client` (a member of room number `room`); returns the message id. */
  publish: (client: Client, room: number) => number
  close: () => void
}

const connectClients = async (urls: string[], runId: string): Promise<Load> => {
  const clients: Client[] = []
  const pending = new Map<number, { remaining: number, room: number }>()
  let nextId = 0
  const load: Load = {
    clients,
    sample: null,
    onDone: null,
    publish: (client, room) => {
      const id = nextId++
      pending.set(id, { remaining: PER_ROOM, room })
      client.ws.send(JSON.stringify({ type: 'publish', topic: client.room, data: { id, from: client.instance, by: clients.indexOf(client), t: performance.now() } }))
      if (load.sample !== null) load.sample.publishes++
      return id
    },
    close: () => { for (const client of clients) client.ws.terminate() }
  }
  const opened: Array<Promise<void>> = []
  for (let i = 0; i < ROOMS * PER_ROOM; i++) {
    const room = Math.floor(i / PER_ROOM)
    // Members 0-4 of every room on the first instance, 5-9 on the second (when there is one).
    const instance = urls.length === 1 ? 0 : (i % PER_ROOM < PER_ROOM / 2 ? 0 : 1)
    const ws = new WebSocket(urls[instance] as string, { perMessageDeflate: false })
    const client: Client = { ws, room: `bench-${runId}-${room}`, instance, echoes: 0 }
    clients.push(client)
    ws.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as { type: string, clients?: number, data?: { id?: number, from?: number, by?: number, t?: number } }
      if (message.type !== 'publish' || typeof message.data?.id !== 'number') return
      if (message.data.by === i) client.echoes++
      const sample = load.sample
      if (sample !== null && typeof message.data.t === 'number') {
        const latency = performance.now() - message.data.t
        sample.all.push(latency)
        if (message.data.from !== instance) sample.crossed.push(latency)
        sample.deliveries++
        if (message.clients !== PER_ROOM) sample.wrongCounts++
      }
      const entry = pending.get(message.data.id)
      if (entry === undefined) return
      if (--entry.remaining === 0) {
        pending.delete(message.data.id)
        load.onDone?.(entry.room, message.data.id)
      }
    })
    opened.push(new Promise((resolve, reject) => {
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'subscribe', topics: [client.room] }))
        resolve()
      })
      ws.once('error', reject)
    }))
  }
  await Promise.all(opened)
  return load
}

/**
 * An instance holds a client's first publish until its Redis subscription is in place, so once
 * every client has its echo, every publish reaches every room mate. A second round then reaches
 * everyone, after which every instance also counts every member.
 */
const settle = async (load: Load): Promise<void> => {
  load.clients.forEach((client, i) => load.publish(client, Math.floor(i / PER_ROOM)))
  await waitUntil('every client\'s first echo', () => load.clients.every((client) => client.echoes > 0))
  const hellos = new Set(load.clients.map((client, i) => load.publish(client, Math.floor(i / PER_ROOM))))
  load.onDone = (_room, id) => { hellos.delete(id) }
  await waitUntil('every hello to reach its whole room', () => hellos.size === 0)
  load.onDone = null
}

const runFor = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Publishes FIXED_RATE messages per second, round robin over the clients. */
const fixedRate = async (load: Load, ms: number): Promise<void> => {
  const started = performance.now()
  let sent = 0
  let next = 0
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) * FIXED_RATE / 1000)
    for (; sent < due; sent++) {
      const i = next++ % load.clients.length
      load.publish(load.clients[i] as Client, Math.floor(i / PER_ROOM))
    }
  }, 5)
  await runFor(ms)
  clearInterval(timer)
}

/** Keeps WINDOW messages in flight per room; a room sends its next one when one reached all 10. */
const closedLoop = async (load: Load, ms: number): Promise<void> => {
  const turn = new Array<number>(ROOMS).fill(0)
  let running = true
  const sendFrom = (room: number): void => {
    const member = turn[room]!++ % PER_ROOM
    load.publish(load.clients[room * PER_ROOM + member] as Client, room)
  }
  load.onDone = (room) => { if (running) sendFrom(room) }
  for (let room = 0; room < ROOMS; room++) for (let k = 0; k < WINDOW; k++) sendFrom(room)
  await runFor(ms)
  running = false
  load.onDone = null
}

// ---- measurement --------------------------------------------------------------------------------

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number

interface PhaseResult {
  publishesPerS: number
  deliveriesPerS: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  crossedP99Ms: number | null
  wrongCounts: number
  /** CPU used per second of the phase, in cores: signaling processes and redis-server. */
  serverCores: number
  redisCores: number | null
}

const summarize = (sample: Sample, ms: number, serverCpu: number, redisCpu: number | null): PhaseResult => {
  const all = Float64Array.from(sample.all).sort()
  const crossed = Float64Array.from(sample.crossed).sort()
  const round = (x: number): number => Math.round(x * 100) / 100
  return {
    publishesPerS: Math.round(sample.publishes / (ms / 1000)),
    deliveriesPerS: Math.round(sample.deliveries / (ms / 1000)),
    p50Ms: round(quantile(all, 0.5)),
    p99Ms: round(quantile(all, 0.99)),
    maxMs: round(all.length === 0 ? Number.NaN : all[all.length - 1] as number),
    crossedP99Ms: crossed.length === 0 ? null : round(quantile(crossed, 0.99)),
    wrongCounts: sample.wrongCounts,
    serverCores: round(serverCpu / (ms / 1000)),
    redisCores: redisCpu === null ? null : round(redisCpu / (ms / 1000))
  }
}

const measure = async (load: Load, run: (ms: number) => Promise<void>, servers: ChildProcess[], redis: ChildProcess | null): Promise<PhaseResult> => {
  load.sample = null
  await run(WARMUP_MS)
  // Let the warm-up's messages drain before counting.
  await runFor(200)
  const sample = newSample()
  const cpuBefore = servers.map((child) => cpuSeconds(child.pid))
  const redisBefore = redis === null ? 0 : cpuSeconds(redis.pid)
  load.sample = sample
  const started = performance.now()
  await run(PHASE_MS)
  const ms = performance.now() - started
  load.sample = null
  const serverCpu = servers.reduce((sum, child, i) => sum + cpuSeconds(child.pid) - (cpuBefore[i] as number), 0)
  const redisCpu = redis === null ? null : cpuSeconds(redis.pid) - redisBefore
  await runFor(500)
  return summarize(sample, ms, serverCpu, redisCpu)
}

interface SetupResult {
  setup: Setup
  fixed: PhaseResult
  max: PhaseResult
}

const runSetup = async (setup: Setup): Promise<SetupResult> => {
  let redis: ChildProcess | null = null
  // Every client is on 127.0.0.1: the per-address limits are lifted with the others.
  const args = ['--port', '0', '--log-level', 'warn', '--max-connections', '10000', '--messages-per-second', '1000000', '--message-burst', '1000000',
    '--max-connections-per-address', '10000', '--connections-per-second-per-address', '100000', '--messages-per-second-per-address', '10000000', '--message-burst-per-address', '10000000']
  if (setup.redis) {
    const port = await freePort()
    redis = (await startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/)).child
    args.push('--redis-url', `redis://127.0.0.1:${port}`)
  }
  const servers: ChildProcess[] = []
  const urls: string[] = []
  for (let i = 0; i < setup.instances; i++) {
    const { child, match } = await startProcess(process.execPath, [CLI, ...args], /signaling server listening on (ws:\/\/\S+)\n/)
    servers.push(child)
    urls.push(match[1] as string)
  }
  if (setup.redis) for (const url of urls) await waitUntil(`the Redis link of ${url}`, async () => await isRedisUp(url))

  const load = await connectClients(urls, Math.random().toString(36).slice(2, 8))
  await settle(load)
  const fixed = await measure(load, async (ms) => await fixedRate(load, ms), servers, redis)
  const max = await measure(load, async (ms) => await closedLoop(load, ms), servers, redis)
  load.close()
  for (const child of servers) await stop(child)
  if (redis !== null) await stop(redis)
  return { setup, fixed, max }
}

// ---- report -------------------------------------------------------------------------------------

const fmt = (x: number | null): string => x === null || Number.isNaN(x) ? '–' : String(x)

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Each figure's median over the repetitions of one setup and phase. */
const medianOf = (runs: PhaseResult[]): PhaseResult => {
  const pick = <K extends keyof PhaseResult>(key: K): number[] => runs.map((r) => r[key]).filter((x): x is number => typeof x === 'number')
  const of = (key: keyof PhaseResult): number | null => pick(key).length === 0 ? null : Math.round(median(pick(key)) * 100) / 100
  return {
    publishesPerS: of('publishesPerS') as number,
    deliveriesPerS: of('deliveriesPerS') as number,
    p50Ms: of('p50Ms') as number,
    p99Ms: of('p99Ms') as number,
    maxMs: of('maxMs') as number,
    crossedP99Ms: of('crossedP99Ms'),
    wrongCounts: runs.reduce((sum, r) => sum + r.wrongCounts, 0),
    serverCores: of('serverCores') as number,
    redisCores: of('redisCores')
  }
}

interface Summary {
  setup: Setup
  fixed: PhaseResult
  max: PhaseResult
}

/** CPU of the signaling processes per 1000 deliveries, in ms. */
const cpuPerThousand = (r: PhaseResult): number => Math.round(r.serverCores / r.deliveriesPerS * 1e6 * 10) / 10

const signed = (x: number, unit: string): string => `${x >= 0 ? '+' : ''}${Math.round(x * 100) / 100}${unit}`

const table = (summaries: Summary[]): string => {
  const rows = [
    '| setup | phase | publishes/s | deliveries/s | p50 ms | p99 ms | p99 cross-instance ms | max ms | signaling CPU (cores) | CPU ms / 1000 deliveries | redis CPU (cores) | wrong counts |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const { setup, fixed, max } of summaries) {
    for (const [phase, r] of [[`fixed ${FIXED_RATE} publishes/s`, fixed], ['max (closed loop)', max]] as const) {
      rows.push(`| ${setup.name} | ${phase} | ${r.publishesPerS} | ${r.deliveriesPerS} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${fmt(r.crossedP99Ms)} | ${fmt(r.maxMs)} | ${fmt(r.serverCores)} | ${cpuPerThousand(r)} | ${fmt(r.redisCores)} | ${r.wrongCounts} |`)
    }
  }
  const lines = [rows.join('\n'), '', 'What Redis adds, against 1 instance:', '']
  const first = summaries[0] as Summary
  for (const { setup, fixed, max } of summaries.slice(1)) {
    lines.push(`- ${setup.name}: max deliveries/s ${signed((max.deliveriesPerS / first.max.deliveriesPerS - 1) * 100, ' %')}, ` +
      `p50 / p99 at the fixed rate ${signed(fixed.p50Ms - first.fixed.p50Ms, ' ms')} / ${signed(fixed.p99Ms - first.fixed.p99Ms, ' ms')}, ` +
      `signaling CPU per 1000 deliveries at the fixed rate ${cpuPerThousand(fixed)} ms (1 instance: ${cpuPerThousand(first.fixed)} ms).`)
  }
  return lines.join('\n')
}

const redisVersion = (): string => {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined) throw new Error("install Debian's redis-server: apt-get install -y redis-server")
  return /v=(\S+)/.exec(probe.stdout)?.[1] ?? 'unknown'
}

const main = async (): Promise<void> => {
  const redis = redisVersion()
  const loadBefore = os.loadavg()
  const results: SetupResult[] = []
  for (let rep = 1; rep <= REPS; rep++) {
    for (const setup of SETUPS) {
      console.log(`run ${rep}/${REPS}: ${setup.name}`)
      results.push(await runSetup(setup))
    }
  }
  const summaries: Summary[] = SETUPS.map((setup) => {
    const runs = results.filter((r) => r.setup === setup)
    return { setup, fixed: medianOf(runs.map((r) => r.fixed)), max: medianOf(runs.map((r) => r.max)) }
  })
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    redis,
    loadBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
    loadAfter: os.loadavg().map((x) => Math.round(x * 100) / 100)
  }
  const markdown = [
    `# Signaling over Redis${quick ? ' (quick run)' : ''}`,
    '',
    `${ROOMS * PER_ROOM} WebSocket clients in ${ROOMS} rooms of ${PER_ROOM}; with 2 instances each room has ${PER_ROOM / 2} clients on each.`,
    `Fixed phase: ${FIXED_RATE} publishes/s over all clients. Max phase: each room keeps ${WINDOW} messages in flight`,
    'and sends the next when one has reached all its subscribers. Latency: publish to delivery, over every delivery',
    `(the echo included); "cross-instance" only counts deliveries on the other instance. ${PHASE_MS / 1000} s per phase after`,
    `${WARMUP_MS / 1000} s of warm-up; medians of ${REPS} run${REPS === 1 ? '' : 's'} per setup, setups taking turns.`,
    'Load generator, signaling processes and redis-server share this machine.',
    '',
    `Machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, Redis ${machine.redis}; ` +
      `load average ${machine.loadBefore.join(' / ')} before, ${machine.loadAfter.join(' / ')} after.`,
    '',
    table(summaries),
    ''
  ].join('\n')
  console.log(`\n${markdown}`)
  mkdirSync(RESULTS, { recursive: true })
  const name = quick ? 'redis-quick' : 'redis'
  writeFileSync(`${RESULTS}${name}.md`, markdown)
  writeFileSync(`${RESULTS}${name}.json`, `${JSON.stringify({ date: new Date().toISOString(), quick, machine, rooms: ROOMS, perRoom: PER_ROOM, fixedRate: FIXED_RATE, window: WINDOW, phaseMs: PHASE_MS, reps: REPS, summaries, runs: results }, null, 2)}\n`)
  console.log(`wrote bench/results/${name}.md and .json`)
}

await main()
process.exit(0)

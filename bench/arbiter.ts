/**
 * `npm run bench:arbiter [-- --quick]`: what a lock costs through the signaling server's arbiter.
 *
 * - Round trip: one ArbiterClient takes and gives back a lock (acquire + release, two request
 *   round trips, each signed by the client and checked by the server, the grant checked by the
 *   client), one pair after another; p50/p99 of the pair and of the acquire alone.
 * - Contention: 2 and 5 clients on one key, each looping acquire (waiting) + release for a fixed
 *   time: handoffs per second, and that no two ever held the key at once.
 *
 * Setups: one instance (memory arbiter), one instance + Redis, two instances + Redis (clients
 * alternate between them; the round trip's client on the first). Servers and redis-server run as
 * child processes (the built CLI, `--lock-grace 0`); this process holds every client, so the
 * numbers include the clients' crypto on one core. Writes bench/results/arbiter.md and .json
 * (arbiter-quick.* with --quick) and prints the table. The store's update bench is bench/locks/.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { WebSocket } from 'ws'
import { ArbiterClient } from '../src/locks/arbiter-client.js'
import { createIdentity } from '../src/trust/identity.js'
import { freePort } from '../test/helpers/net.js'
import { summarize, type Summary } from './lib/stats.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = `${ROOT}dist/signaling/cli.js`
const RESULTS = `${ROOT}bench/results/`

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } })
const quick = values.quick === true
const WARMUP = quick ? 50 : 200
const PAIRS = quick ? 300 : 2_000
const CONTENTION_MS = quick ? 2_000 : 5_000
const CONTENDERS = [2, 5]

interface Setup {
  name: string
  instances: number
  redis: boolean
}

const SETUPS: Setup[] = [
  { name: '1 instance (memory)', instances: 1, redis: false },
  { name: '1 instance + Redis', instances: 1, redis: true },
  { name: '2 instances + Redis', instances: 2, redis: true }
]

// ---- processes ----------------------------------------------------------------------------------

const children = new Set<ChildProcess>()
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))

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

const waitUntil = async (what: string, cond: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const startSetup = async (setup: Setup): Promise<{ urls: string[], stop: () => Promise<void> }> => {
  const procs: ChildProcess[] = []
  const args = ['--port', '0', '--lock-grace', '0', '--log-level', 'warn', '--messages-per-second', '100000', '--message-burst', '100000',
    '--messages-per-second-per-address', '100000', '--message-burst-per-address', '100000']
  if (setup.redis) {
    const port = await freePort()
    const { child } = await startProcess('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], /Ready to accept connections/)
    procs.push(child)
    args.push('--redis-url', `redis://127.0.0.1:${port}`)
  }
  const urls: string[] = []
  for (let i = 0; i < setup.instances; i++) {
    const { child, match } = await startProcess(process.execPath, [CLI, ...args], /signaling server listening on (ws:\/\/\S+)/)
    procs.push(child)
    urls.push(match[1] as string)
  }
  if (setup.redis) {
    for (const url of urls) {
      await waitUntil(`the Redis link of ${url}`, async () =>
        (await (await fetch(`${url.replace('ws://', 'http://')}/metrics`)).text()).split('\n').includes('signaling_redis_up 1'))
    }
  }
  return { urls, stop: async () => { for (const child of procs.reverse()) await stop(child) } }
}

// ---- clients ------------------------------------------------------------------------------------

interface BenchClient {
  client: ArbiterClient
  close: () => void
}

const openClient = async (url: string, room: string): Promise<BenchClient> => {
  const ws = new WebSocket(url)
  const frameListeners = new Set<(frame: unknown) => void>()
  const statusListeners = new Set<(connected: boolean) => void>()
  ws.on('message', (data) => {
    const frame: unknown = JSON.parse(String(data))
    for (const listener of frameListeners) listener(frame)
  })
  ws.on('error', () => {})
  ws.once('close', () => { for (const listener of statusListeners) listener(false) })
  const client = new ArbiterClient({
    identity: await createIdentity(),
    room,
    send: (frame) => ws.send(JSON.stringify(frame)),
    onFrame: (listener) => { frameListeners.add(listener); return () => frameListeners.delete(listener) },
    onStatus: (listener) => { statusListeners.add(listener); return () => statusListeners.delete(listener) }
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
      for (const listener of statusListeners) listener(true)
      resolve()
    })
    ws.once('error', reject)
  })
  await waitUntil('the lock client to watch the room', () => client.ready)
  return { client, close: () => { client.destroy(); ws.close() } }
}

interface RoundTrip {
  pair: Summary
  acquire: Summary
}

const roundTrip = async (url: string): Promise<RoundTrip> => {
  const room = `bench-${Math.random().toString(36).slice(2)}`
  const { client, close } = await openClient(url, room)
  const pairs: number[] = []
  const acquires: number[] = []
  for (let i = 0; i < WARMUP + PAIRS; i++) {
    const start = performance.now()
    const lock = await client.acquire('k')
    const acquired = performance.now()
    await lock.release()
    if (i >= WARMUP) {
      pairs.push(performance.now() - start)
      acquires.push(acquired - start)
    }
  }
  close()
  return { pair: summarize(pairs), acquire: summarize(acquires) }
}

interface Contention {
  contenders: number
  handoffsPerSecond: number
  overlaps: number
}

const contention = async (urls: string[], contenders: number): Promise<Contention> => {
  const room = `bench-${Math.random().toString(36).slice(2)}`
  const clients = await Promise.all(Array.from({ length: contenders }, async (_, i) => await openClient(urls[i % urls.length] as string, room)))
  let holding = 0
  let overlaps = 0
  let handoffs = 0
  const deadline = performance.now() + CONTENTION_MS
  const started = performance.now()
  await Promise.all(clients.map(async ({ client }) => {
    while (performance.now() < deadline) {
      const lock = await client.acquire('k', { wait: 30_000 })
      if (++holding > 1) overlaps++
      handoffs++
      // Held across a turn of the event loop, as an update's read-modify-write would be.
      await new Promise((resolve) => setImmediate(resolve))
      holding--
      await lock.release()
    }
  }))
  const elapsed = (performance.now() - started) / 1000
  for (const { close } of clients) close()
  return { contenders, handoffsPerSecond: handoffs / elapsed, overlaps }
}

// ---- run ----------------------------------------------------------------------------------------

interface Result {
  setup: string
  roundTrip: RoundTrip
  contention: Contention[]
}

const ms = (value: number): string => value.toFixed(2)

const main = async (): Promise<void> => {
  const results: Result[] = []
  for (const setup of SETUPS) {
    const running = await startSetup(setup)
    try {
      const trip = await roundTrip(running.urls[0] as string)
      const contended: Contention[] = []
      for (const n of CONTENDERS) contended.push(await contention(running.urls, n))
      results.push({ setup: setup.name, roundTrip: trip, contention: contended })
      process.stderr.write(`${setup.name}: acquire+release p50 ${ms(trip.pair.p50)} ms\n`)
    } finally {
      await running.stop()
    }
  }
  const lines = [
    `# Lock arbiter${quick ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
    `Round trip: ${PAIRS} acquire + release pairs one after another (after ${WARMUP} warm-up); contention: ${CONTENTION_MS / 1000} s per row.`,
    '',
    '| setup | acquire+release p50 | p99 | max | acquire p50 | p99 | ' + CONTENDERS.map((n) => `handoffs/s, ${n} clients`).join(' | ') + ' |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ' + CONTENDERS.map(() => '---:').join(' | ') + ' |',
    ...results.map((r) => `| ${r.setup} | ${ms(r.roundTrip.pair.p50)} ms | ${ms(r.roundTrip.pair.p99)} ms | ${ms(r.roundTrip.pair.max)} ms | ` +
      `${ms(r.roundTrip.acquire.p50)} ms | ${ms(r.roundTrip.acquire.p99)} ms | ` +
      r.contention.map((c) => `${c.handoffsPerSecond.toFixed(0)}${c.overlaps > 0 ? ` (${c.overlaps} OVERLAPS)` : ''}`).join(' | ') + ' |'),
    '',
    'With two instances, contending clients alternate between them. Every client lives in the benchmark process.',
    ''
  ]
  const name = quick ? 'arbiter-quick' : 'arbiter'
  mkdirSync(RESULTS, { recursive: true })
  writeFileSync(`${RESULTS}${name}.json.tmp`, JSON.stringify({ quick, pairs: PAIRS, results }, null, 2))
  writeFileSync(`${RESULTS}${name}.md.tmp`, lines.join('\n'))
  renameSync(`${RESULTS}${name}.json.tmp`, `${RESULTS}${name}.json`)
  renameSync(`${RESULTS}${name}.md.tmp`, `${RESULTS}${name}.md`)
  process.stdout.write(lines.join('\n'))
  if (results.some((r) => r.contention.some((c) => c.overlaps > 0))) process.exitCode = 1
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})

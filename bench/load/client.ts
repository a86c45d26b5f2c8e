/**
 * A signaling load generator process: WebSocket clients speaking y-webrtc's signaling JSON
 * (subscribe, publish { topic, data }, ping), the same against either server. Each publish
 * carries its send time (`t`, machine-wide monotonic clock) inside a realistic ICE-candidate
 * signal, so any process that receives the relayed message can time the relay.
 */

import { WebSocket } from 'ws'
import { serve } from '../lib/child.js'
import { now, sleep, until, withTimeout } from '../lib/clock.js'
import { createHistogram, record, type Histogram } from '../lib/stats.js'

interface Client {
  ws: WebSocket
  topic: string
  /** The publish frame around its timestamp: prefix + t + suffix. */
  prefix: string
  suffix: string
  open: boolean
}

const clients: Client[] = []
let closedUnexpectedly = 0
let lastReceivedAt = 0
let window: { from: number, to: number, received: number, histogram: Histogram } | null = null
let pongs = 0

const T_FIELD = Buffer.from('"t":')

const onMessage = (data: Buffer): void => {
  lastReceivedAt = now()
  const at = data.indexOf(T_FIELD)
  if (at === -1) {
    pongs++
    return
  }
  if (window === null) return
  const t = Number.parseFloat(data.toString('latin1', at + T_FIELD.length, at + T_FIELD.length + 24))
  if (t < window.from || t >= window.to) return
  window.received++
  record(window.histogram, lastReceivedAt - t)
}

const candidate = (index: number): string => JSON.stringify({
  type: 'candidate',
  candidate: {
    candidate: `candidate:${1_000_000 + index} 1 udp 2122260223 192.168.${index % 250}.${index % 200} ${40_000 + (index % 20_000)} typ host generation 0 ufrag abcd network-id 1`,
    sdpMLineIndex: 0,
    sdpMid: '0'
  }
})

const open = (url: string, index: number, rooms: number): Promise<Client> => new Promise((resolve, reject) => {
  const topic = `load-room-${index % rooms}`
  const peer = `peer-${index.toString(36).padStart(8, '0')}`
  const client: Client = {
    ws: new WebSocket(url, { perMessageDeflate: false }),
    topic,
    prefix: `{"type":"publish","topic":"${topic}","data":{"t":`,
    suffix: `,"type":"signal","from":"${peer}","to":"peer-00000000","token":1700000000000.123,"signal":${candidate(index)}}}`,
    open: false
  }
  client.ws.on('message', onMessage)
  client.ws.once('open', () => {
    client.open = true
    client.ws.send(JSON.stringify({ type: 'subscribe', topics: [topic] }))
    client.ws.send('{"type":"ping"}')
    resolve(client)
  })
  client.ws.once('error', reject)
  client.ws.once('close', () => {
    if (client.open) closedUnexpectedly++
    client.open = false
  })
})

const commands = {
  /** Opens `count` clients (global indexes from `firstIndex`), `concurrency` handshakes at a time; each subscribes and pings. */
  async connect ({ url, count, firstIndex, rooms, concurrency = 100 }: { url: string, count: number, firstIndex: number, rooms: number, concurrency?: number }) {
    const start = now()
    const pongsBefore = pongs
    let next = 0
    let failed = 0
    const worker = async (): Promise<void> => {
      while (next < count) {
        const index = firstIndex + next++
        try {
          clients.push(await withTimeout(open(url, index, rooms), 30_000, 'WebSocket open'))
        } catch {
          failed++
        }
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    const opened = count - failed
    // A pong answers the ping sent after the subscribe: every client is subscribed once all are back.
    await until(() => pongs - pongsBefore >= opened, 60_000, 'pongs', 20).catch(() => {})
    return { opened, failed, subscribed: pongs - pongsBefore, ms: now() - start }
  },

  /** Reopens clients that were closed (a server may drop slow readers); returns how many. */
  async heal ({ url, rooms }: { url: string, rooms: number }) {
    let reopened = 0
    for (let i = 0; i < clients.length; i++) {
      const old = clients[i] as Client
      if (old.open) continue
      const index = Number.parseInt(/peer-([0-9a-z]+)/.exec(old.suffix)?.[1] ?? '0', 36)
      clients[i] = await withTimeout(open(url, index, rooms), 30_000, 'WebSocket reopen')
      reopened++
    }
    return { reopened }
  },

  /**
   * Publishes `rate` messages per second, round-robin over this process's clients, from now until
   * `to` (machine-wide clock); counts relayed messages sent in [from, to) that arrive by `drainUntil`.
   */
  async load ({ rate, from, to, drainUntil }: { rate: number, from: number, to: number, drainUntil: number }) {
    window = { from, to, received: 0, histogram: createHistogram() }
    const closedBefore = closedUnexpectedly
    const start = now()
    const cpuBefore = process.cpuUsage()
    let sent = 0
    let sentInWindow = 0
    let next = 0
    while (now() < to) {
      const due = Math.floor(rate * (now() - start) / 1000) - sent
      for (let k = 0; k < due; k++) {
        let client = clients[next++ % clients.length] as Client
        for (let tries = 0; !client.open && tries < clients.length; tries++) client = clients[next++ % clients.length] as Client
        if (!client.open) break
        const t = now()
        client.ws.send(client.prefix + String(t) + client.suffix)
        sent++
        if (t >= from) sentInWindow++
      }
      await sleep(2)
    }
    const cpu = process.cpuUsage(cpuBefore)
    const cpuWall = now() - start
    while (now() < drainUntil) await sleep(20)
    const result = { sent: sentInWindow, received: window.received, histogram: window.histogram, closed: closedUnexpectedly - closedBefore, cpuPercent: 100 * (cpu.user + cpu.system) / 1000 / cpuWall }
    window = null
    return result
  },

  /** Resolves once nothing has arrived for `quietMs` (the server has drained its backlog), or after `timeout`. */
  async quiet ({ quietMs, timeout }: { quietMs: number, timeout: number }) {
    await until(() => now() - lastReceivedAt > quietMs, timeout, 'quiet', 50).catch(() => {})
    return { sinceLastMs: now() - lastReceivedAt }
  },

  open: () => clients.filter((c) => c.open).length,

  async close () {
    for (const client of clients) {
      client.open = false
      client.ws.terminate()
    }
    clients.length = 0
  }
}

export type LoadCommands = typeof commands

serve(commands)

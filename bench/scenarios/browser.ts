/**
 * Scenario 7, a browser pair: the round trip and the throughput of scenarios 1 and 2, in Chromium,
 * for this library, stock y-webrtc + Y.Map and a raw RTCDataChannel, all from one page
 * (bench/browser/page.ts, bundled here with esbuild). Each peer is a browser context of its own
 * (pages of one context would share BroadcastChannel), every pair connected over real WebRTC
 * (checked: connectionState 'connected'). In Chromium a data-channel send does not block on
 * another thread as @roamhq/wrtc's does, so the numbers differ in kind from Node's.
 *
 * Chromium is Debian's (/usr/bin/chromium), driven by playwright-core; the page is served from
 * 127.0.0.1 and signals through the contenders' own servers.
 */

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'
import { chromium, type Browser, type Page } from 'playwright-core'
import { freshRoom } from '../lib/peers.js'
import { summarize, type Summary } from '../lib/stats.js'
import { MAX_CONNS, turnOrder, type ContenderName, type Context } from './context.js'

export const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
const PAGE = fileURLToPath(new URL('../browser/page.ts', import.meta.url))

export interface BrowserLatencyRow {
  contender: ContenderName
  summary: Summary
  chunkP50s: number[]
}

export interface BrowserThroughputRound {
  writes: number
  writesPerSecond: number
  /** Milliseconds from A's last write until B held every key's final value; null if it never did. */
  lagMs: number | null
}

export interface BrowserThroughputRow {
  contender: ContenderName
  median: BrowserThroughputRound | null
  rounds: BrowserThroughputRound[]
}

export interface BrowserResult {
  chromium: string
  iterations: number
  durationMs: number
  yieldEvery: number
  latency: BrowserLatencyRow[]
  throughput: BrowserThroughputRow[]
}

interface Bench {
  join: (spec: { contender: 'y-webrtc' | 'session-store', room: string, signaling: string, maxConns: number }) => Promise<void>
  connected: () => number
  rawOffer: () => Promise<RTCSessionDescriptionInit>
  rawAnswer: (offer: RTCSessionDescriptionInit) => Promise<RTCSessionDescriptionInit>
  rawAccept: (answer: RTCSessionDescriptionInit) => Promise<void>
  respond: () => Promise<void>
  pingLoop: (args: { warmup: number, iterations: number }) => Promise<number[]>
  countUpdates: () => Promise<void>
  countResult: (args: { lastSeq: number, timeout: number }) => Promise<{ complete: boolean, count: number, allFinalAt: number }>
  writeBurst: (args: { durationMs: number, yieldEvery: number }) => Promise<{ writes: number, firstAt: number, lastAt: number, lastWriteAt: number, lastSeq: number }>
}

/** Calls `window.bench[name](arg)` in `page`. */
const call = async <K extends keyof Bench>(page: Page, name: K, arg?: Parameters<Bench[K]>[0]): Promise<Awaited<ReturnType<Bench[K]>>> =>
  await page.evaluate(async ([n, a]) => await (window as unknown as { bench: Record<string, (x: unknown) => unknown> }).bench[n as string]?.(a), [name, arg] as const) as Awaited<ReturnType<Bench[K]>>

const serve = async (script: string): Promise<{ url: string, server: Server }> => {
  const html = '<!doctype html><meta charset="utf-8"><title>bench</title><script type="module" src="/page.js"></script>'
  const server = createServer((req, res) => {
    if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server }
}

const waitConnected = async (pages: Page[], timeout = 30_000): Promise<void> => {
  const deadline = Date.now() + timeout
  for (;;) {
    const counts = await Promise.all(pages.map(async (page) => await call(page, 'connected')))
    if (counts.every((n) => n >= 1)) return
    if (Date.now() > deadline) throw new Error(`no WebRTC connection within ${timeout} ms (connected: ${counts.join(', ')})`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const pair = async (ctx: Context, browser: Browser, url: string, contender: ContenderName): Promise<{ a: Page, b: Page }> => {
  const open = async (): Promise<Page> => {
    const page = await (await browser.newContext()).newPage()
    page.setDefaultTimeout(120_000)
    await page.goto(url)
    await page.waitForFunction(() => (window as unknown as { bench?: unknown }).bench !== undefined)
    return page
  }
  const [a, b] = await Promise.all([open(), open()])
  if (contender === 'simple-peer') {
    const offer = await call(a, 'rawOffer')
    const answer = await call(b, 'rawAnswer', offer)
    await call(a, 'rawAccept', answer)
  } else {
    const spec = { contender, room: freshRoom('browser'), signaling: ctx.signalingFor(contender), maxConns: MAX_CONNS }
    await call(a, 'join', spec)
    await call(b, 'join', spec)
  }
  await waitConnected([a, b])
  return { a, b }
}

export const runBrowser = async (ctx: Context): Promise<BrowserResult> => {
  const warmup = ctx.quick ? 100 : 500
  const iterations = ctx.quick ? 300 : 3000
  const chunks = ctx.quick ? 1 : 3
  const rounds = ctx.quick ? 1 : 3
  const durationMs = ctx.quick ? 1000 : 3000
  const yieldEvery = 200
  const built = await esbuild.build({ entryPoints: [PAGE], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning' })
  const { url, server } = await serve(built.outputFiles[0]?.text ?? '')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 })
  const contenders: ContenderName[] = ['simple-peer', 'y-webrtc', 'session-store']
  try {
    const pairs = new Map<ContenderName, { a: Page, b: Page }>()
    for (const contender of contenders) {
      ctx.log(`connecting a ${contender} pair in Chromium`)
      pairs.set(contender, await pair(ctx, browser, url, contender))
    }
    const samples = new Map<ContenderName, number[]>(contenders.map((c) => [c, []]))
    const chunkP50s = new Map<ContenderName, number[]>(contenders.map((c) => [c, []]))
    for (const { b } of pairs.values()) await call(b, 'respond')
    for (let chunk = 0; chunk < chunks; chunk++) {
      for (const contender of turnOrder(contenders, chunk)) {
        const { a } = pairs.get(contender) as { a: Page }
        const got = await call(a, 'pingLoop', { warmup: chunk === 0 ? warmup : 50, iterations: Math.ceil(iterations / chunks) })
        samples.get(contender)?.push(...got)
        chunkP50s.get(contender)?.push(summarize(got).p50)
        ctx.log(`${contender} round trips, chunk ${chunk + 1}/${chunks}: p50 ${summarize(got).p50.toFixed(3)} ms`)
      }
    }
    // Throughput on fresh pairs: the round-trip pairs hold observers of their own.
    for (const { a, b } of pairs.values()) await Promise.all([a.context().close(), b.context().close()])
    pairs.clear()
    const all = new Map<ContenderName, BrowserThroughputRound[]>(contenders.map((c) => [c, []]))
    for (let round = 0; round < rounds; round++) {
      for (const contender of turnOrder(contenders, round)) {
        const { a, b } = await pair(ctx, browser, url, contender)
        try {
          await call(b, 'countUpdates')
          const written = await call(a, 'writeBurst', { durationMs, yieldEvery })
          const seen = await call(b, 'countResult', { lastSeq: written.lastSeq, timeout: 30_000 })
          const result = {
            writes: written.writes,
            writesPerSecond: written.writes / ((written.lastAt - written.firstAt) / 1000),
            lagMs: seen.complete ? seen.allFinalAt - written.lastWriteAt : null
          }
          all.get(contender)?.push(result)
          ctx.log(`${contender} throughput round ${round + 1}/${rounds}: ${Math.round(result.writesPerSecond)} writes/s, lag ${result.lagMs?.toFixed(1) ?? 'never'} ms`)
        } finally {
          await Promise.all([a.context().close(), b.context().close()])
        }
      }
    }
    return {
      chromium: browser.version(),
      iterations,
      durationMs,
      yieldEvery,
      latency: contenders.map((contender) => ({ contender, summary: summarize(samples.get(contender) ?? []), chunkP50s: chunkP50s.get(contender) ?? [] })),
      throughput: contenders.map((contender) => {
        const list = all.get(contender) ?? []
        const sorted = [...list].sort((x, y) => x.writesPerSecond - y.writesPerSecond)
        return { contender, median: sorted[Math.floor((sorted.length - 1) / 2)] ?? null, rounds: list }
      })
    }
  } finally {
    await browser.close()
    await new Promise((resolve) => server.close(resolve))
  }
}

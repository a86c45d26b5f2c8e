/**
 * Browser peers for end-to-end tests of the demo page: Debian's Chromium driven by playwright-core.
 * Each peer is its own browser context, because pages of one context would sync over
 * BroadcastChannel instead of WebRTC. The browser and every context are closed when the test that
 * opened them ends (registered with onTestFinished).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Locator, type Page } from 'playwright-core'
import { onTestFinished } from 'vitest'
import type { ConnectionInfo, SessionStatus } from '../../src/index.js'
import { TimeoutError, waitFor } from './wait.js'

export const CHROMIUM = '/usr/bin/chromium'
export const DEMO_DIR = fileURLToPath(new URL('../../demo/dist/', import.meta.url))
const DEMO_BUILD = fileURLToPath(new URL('../../demo/build.mjs', import.meta.url))

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage'
]

/** What the page exposes as `window.demo` (see demo/main.ts), as far as tests read it. */
interface DemoWindow {
  demo?: {
    session: { status: SessionStatus, connections: ConnectionInfo[], stats: () => unknown }
    store?: { toJSON: () => Record<string, unknown> }
  }
}

/** The built demo page's directory; builds it first if it is missing (`npm test` builds it). */
export const demoDir = (): string => {
  if (existsSync(`${DEMO_DIR}index.html`) && existsSync(`${DEMO_DIR}main.js`)) return DEMO_DIR
  const build = spawnSync(process.execPath, [DEMO_BUILD], { encoding: 'utf8' })
  if (build.status !== 0) {
    throw new Error(`demo/dist is missing and building it failed; run \`npm run build && npm run build:demo\`\n${build.stderr}`)
  }
  return DEMO_DIR
}

/** Launches Chromium for one test. Never skips: a missing browser is a failure that says what to do. */
export const launchBrowser = async (): Promise<Browser> => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(process.env.CI === 'true'
      ? `Chromium is missing at ${CHROMIUM}: the CI image must install Debian's chromium (apt-get install -y chromium) before \`npm test\``
      : "install Debian's chromium: apt-get install -y chromium")
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 })
  onTestFinished(async () => { await browser.close() })
  return browser
}

export interface OpenOptions {
  /** Viewport width and height. Default 1280 x 900. */
  viewport?: { width: number, height: number }
}

/**
 * Opens `url` in a new browser context (a new peer) and resolves once its store is available.
 * Page errors fail the test through `errors`, which the caller can assert empty.
 */
export const openPeer = async (browser: Browser, url: string, { viewport = { width: 1280, height: 900 } }: OpenOptions = {}): Promise<Page & { errors: string[] }> => {
  const context = await browser.newContext({ viewport })
  onTestFinished(async () => { await context.close() })
  const page = Object.assign(await context.newPage(), { errors: [] as string[] })
  page.setDefaultTimeout(20_000)
  page.on('pageerror', (err) => page.errors.push(err.message))
  await page.goto(url)
  await waitForStore(page)
  return page
}

export const waitForStore = async (page: Page): Promise<void> => {
  await page.waitForFunction(() => (window as unknown as DemoWindow).demo?.store !== undefined, undefined, { timeout: 20_000 })
}

export const connections = async (page: Page): Promise<ConnectionInfo[]> =>
  await page.evaluate(() => (window as unknown as DemoWindow).demo?.session.connections ?? [])

/** Waits until the page has `count` RTCPeerConnections that are connected with an open data channel. */
export const waitForWebrtc = async (page: Page, count: number, timeout = 20_000): Promise<ConnectionInfo[]> => {
  let seen: ConnectionInfo[] = []
  return await explain(waitFor(async () => {
    seen = await connections(page)
    const live = seen.filter((c) => c.connectionState === 'connected' && c.dataChannels.includes('open'))
    return live.length >= count && live
  }, { timeout, interval: 100, what: `${count} live WebRTC connections in ${page.url()}` }), () => `saw ${JSON.stringify(seen)}`)
}

/** The store as the page's JavaScript holds it (for cross-checking what the UI shows). */
export const storeJSON = async (page: Page): Promise<Record<string, unknown>> =>
  await page.evaluate(() => (window as unknown as DemoWindow).demo?.store?.toJSON() ?? {})

/**
 * Waits until `locator`'s visible text satisfies `expected` (a substring, a pattern or a
 * predicate); the timeout error quotes the text last seen.
 */
export const waitForText = async (locator: Locator, expected: string | RegExp | ((text: string) => boolean), timeout = 20_000): Promise<string> => {
  const matches = typeof expected === 'string'
    ? (text: string) => text.includes(expected)
    : expected instanceof RegExp ? (text: string) => expected.test(text) : expected
  let last: string | undefined
  const found = await explain(waitFor(async () => {
    last = await locator.innerText({ timeout: 1_000 })
    return matches(last) && { text: last }
  }, { timeout, interval: 50, what: `${String(locator)} to show ${String(expected)}` }), () => `last seen: ${JSON.stringify(last ?? '(no element)')}`)
  return found.text
}

/**
 * Adds to a TimeoutError's message what each page's session knows: its status, what it dropped or
 * refused by reason (`stats()`), its connections, and the notice the page shows (session errors).
 */
export const explainPages = async <T>(waiting: Promise<T>, pages: Record<string, Page>): Promise<T> => {
  try {
    return await waiting
  } catch (err) {
    if (err instanceof TimeoutError) {
      for (const [name, page] of Object.entries(pages)) {
        const seen = await page.evaluate(() => {
          const session = (window as unknown as DemoWindow).demo?.session
          return { status: session?.status, stats: session?.stats(), connections: session?.connections, notice: document.getElementById('notice')?.textContent }
        }).catch((error: unknown) => String(error))
        err.message += ` [${name}: ${JSON.stringify(seen)}]`
      }
    }
    throw err
  }
}

/** Adds what was last observed to a TimeoutError's message. */
const explain = async <T>(waiting: Promise<T>, observed: () => string): Promise<T> => {
  try {
    return await waiting
  } catch (err) {
    if (err instanceof TimeoutError) err.message += ` (${observed()})`
    throw err
  }
}

/** The live inspector's rows as the page shows them: key → value text. */
export const inspectorEntries = async (page: Page): Promise<Record<string, string>> => {
  const rows = await page.getByRole('region', { name: 'Live inspector' }).locator('tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [tr.querySelector('th')?.textContent ?? '', tr.querySelector('td')?.textContent ?? '']))
  return Object.fromEntries(rows)
}

/**
 * `y-session-store/react` in Chromium: a small React app (test/fixtures/react-page.ts, bundled here
 * with esbuild, React's development build under StrictMode) in two browser contexts, one peer
 * each, over real WebRTC.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import type { Page } from 'playwright-core'
import { describe, expect, it, onTestFinished } from 'vitest'
import { launchBrowser } from './helpers/browser.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const PAGE = fileURLToPath(new URL('./fixtures/react-page.ts', import.meta.url))

interface AppWindow {
  app: {
    renders: Record<string, number>
    sessions: Array<{ status: { left: boolean } }>
    errors: string[]
    mounted: boolean
    set: (key: string, value: unknown) => Promise<unknown>
    mount: () => void
    unmount: () => void
  }
}

/** Bundles the page into a fresh directory, removed when the test ends. */
const buildPage = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'y-session-store-react-'))
  onTestFinished(async () => { await rm(dir, { recursive: true, force: true }) })
  await build({
    entryPoints: [PAGE],
    outfile: join(dir, 'main.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    define: { 'process.env.NODE_ENV': '"development"' },
    logLevel: 'warning'
  })
  await writeFile(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>react</title><link rel="icon" href="data:,"><div id="root"></div><script type="module" src="/main.js"></script>\n')
  return dir
}

const text = async (page: Page, selector: string): Promise<string> => await page.locator(selector).innerText({ timeout: 1_000 })

const waitForText = async (page: Page, selector: string, expected: string, timeout = 20_000): Promise<void> => {
  let last = ''
  await waitFor(async () => (last = await text(page, selector)) === expected, { timeout, interval: 50, what: `${selector} to show ${expected} in ${page.url()} (last: ${last})` })
}

const renders = async (page: Page): Promise<Record<string, number>> =>
  await page.evaluate(() => ({ ...(window as unknown as AppWindow).app.renders }))

describe('y-session-store/react in Chromium', () => {
  it('StrictMode joins once; a value set in one page re-renders the other; a component for key a ignores key b; unmount leaves the room', { timeout: 120_000 }, async () => {
    const dir = await buildPage()
    const server = await startSignaling({ staticDir: dir })
    const browser = await launchBrowser()
    const url = `http://127.0.0.1:${server.port}/?room=${encodeURIComponent(uniqueRoom('react'))}&signaling=${encodeURIComponent(server.url)}`
    const pages: Array<Page & { problems: string[] }> = []
    for (let i = 0; i < 2; i++) {
      const context = await browser.newContext()
      onTestFinished(async () => { await context.close() })
      const page = Object.assign(await context.newPage(), { problems: [] as string[] })
      page.on('pageerror', (err) => page.problems.push(err.message))
      page.on('console', (message) => { if (message.type() === 'error') page.problems.push(message.text()) })
      await page.goto(url)
      pages.push(page)
    }
    const [a, b] = pages as [Page & { problems: string[] }, Page & { problems: string[] }]
    for (const page of pages) {
      await waitForText(page, '#status', 'available webrtc=1')
      await waitForText(page, '#peers', '2')
    }
    // StrictMode mounted, unmounted and mounted the provider again: still one session, no ALREADY_JOINED.
    for (const page of pages) {
      expect(await page.evaluate(() => (window as unknown as AppWindow).app.sessions.length)).toBe(1)
      expect(await page.evaluate(() => (window as unknown as AppWindow).app.errors)).toEqual([])
    }
    expect(server.stats().connections).toBe(2)

    await a.evaluate(async () => await (window as unknown as AppWindow).app.set('a', { text: 'hello' }))
    await waitForText(b, 'output[data-key="a"]', '{"text":"hello"}')

    const before = { a: await renders(a), b: await renders(b) }
    await a.evaluate(async () => await (window as unknown as AppWindow).app.set('b', 1))
    await waitForText(b, 'output[data-key="b"]', '1')
    await waitForText(a, 'output[data-key="b"]', '1')
    // A write of a second key behind it on the same channel: once it has arrived, so has every render b caused.
    await a.evaluate(async () => await (window as unknown as AppWindow).app.set('b', 2))
    await waitForText(b, 'output[data-key="b"]', '2')
    const after = { a: await renders(a), b: await renders(b) }
    for (const page of ['a', 'b'] as const) {
      expect(after[page].a, `renders of the key-a component in page ${page}`).toBe(before[page].a)
      expect(after[page].b, `renders of the key-b component in page ${page}`).toBeGreaterThanOrEqual((before[page].b ?? 0) + 2)
    }

    await b.evaluate(() => { (window as unknown as AppWindow).app.unmount() })
    await waitForText(a, '#peers', '1')
    await waitFor(async () => await b.evaluate(() => (window as unknown as AppWindow).app.sessions[0]?.status.left === true), { what: 'the unmounted page to have left' })
    await waitFor(() => server.stats().connections === 1, { what: 'the unmounted page to close its signaling connection' })

    // Mounting again right away joins again (after the leave has released the room) and syncs.
    await b.evaluate(() => { (window as unknown as AppWindow).app.mount() })
    await waitForText(b, 'output[data-key="a"]', '{"text":"hello"}')
    await waitForText(a, '#peers', '2')
    expect(await b.evaluate(() => (window as unknown as AppWindow).app.sessions.length)).toBe(2)
    expect(await b.evaluate(() => (window as unknown as AppWindow).app.errors)).toEqual([])
    for (const page of pages) expect(page.problems).toEqual([])
  })
})

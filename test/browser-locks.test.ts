/**
 * The demo's poll end to end in Chromium: a server with dev tokens and no lock grace (as
 * `npm start` runs it), a host and two guests, each its own browser context, connected over real
 * WebRTC. Every page clicks "+1" on the same option as fast as it can, all at once; each "+1" is
 * `store.update` under the option's lock, so every page ends showing every vote, none lost.
 */
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Locator, Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import type { SignalingServer } from '../signaling/index.js'
import type { Session, SessionStore } from '../src/index.js'
import { demoDir, launchBrowser, openPeer, waitForText, waitForWebrtc } from './helpers/browser.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'

const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url))
/** Clicks per page. */
const CLICKS = 20

/** What the page exposes as `window.demo` (demo/main.ts). */
interface DemoWindow { demo: { session: Session, store: SessionStore } }

const roomUrl = (server: SignalingServer, room: string, name: string): string =>
  `http://127.0.0.1:${server.port}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`

const role = (page: Page): Locator => page.getByLabel('Your role')
const poll = (page: Page): Locator => page.getByRole('region', { name: /^Poll/ })
const option = (page: Page, name: string): Locator => poll(page).getByRole('listitem').filter({ hasText: name })
const plusOne = (page: Page, name: string): Locator => poll(page).getByRole('button', { name: `+1 for ${name}`, exact: true })

/** What the page says went wrong: the poll's error and the page's notice (error events). */
const complaints = async (page: Page): Promise<string> => {
  const [pollError, notice] = await Promise.all([poll(page).getByRole('alert').innerText(), page.locator('#notice').innerText()])
  return `poll error ${JSON.stringify(pollError)}, notice ${JSON.stringify(notice)}`
}

/** Waits until the option's row satisfies `settled`; a timeout names the page and what it complained of. */
const waitForOption = async (page: Page, name: string, settled: (text: string) => boolean, timeout: number): Promise<string> => {
  try {
    return await waitForText(option(page, name), settled, timeout)
  } catch (err) {
    if (err instanceof Error) err.message += ` in ${new URL(page.url()).searchParams.get('name') ?? page.url()}; ${await complaints(page)}`
    throw err
  }
}

const shows = (votes: number) => (text: string): boolean => new RegExp(`\\b${votes} votes?\\b`).test(text)

describe('the demo poll in Chromium', () => {
  it(`three pages click +1 on one option ${CLICKS} times each, all at once: every page shows ${3 * CLICKS}`, { timeout: 180_000 }, async () => {
    const server = await startSignaling({ staticDir: demoDir(), devTokens: true, lockGrace: 0 })
    const browser = await launchBrowser()
    const room = uniqueRoom('poll')
    // The first to ask for a token is the host; its store is available only once it has it.
    const host = await openPeer(browser, roomUrl(server, room, 'Hana'))
    await waitForText(role(host), /Host\s+Hana\s+may write every key/)
    const gus = await openPeer(browser, roomUrl(server, room, 'Gus'))
    const gia = await openPeer(browser, roomUrl(server, room, 'Gia'))
    const pages = [host, gus, gia]
    await waitForText(role(gus), /Guest\s+Gus\s+may write hand\/Gus, poll\/\*/)
    await waitForText(role(gia), /Guest\s+Gia\s+may write hand\/Gia, poll\/\*/)
    for (const page of pages) await waitForWebrtc(page, 2)

    // Only the host may start a poll.
    expect(await gus.getByRole('button', { name: 'Start poll', exact: true }).isDisabled()).toBe(true)
    expect(await poll(gus).innerText()).toContain('Only the host can start a poll.')
    await host.getByLabel('Question').fill('Tea or coffee?')
    await host.getByLabel('Options (comma-separated, 2 to 8)').fill('Tea, Coffee')
    await host.getByRole('button', { name: 'Start poll', exact: true }).click()
    for (const page of pages) {
      await waitForText(poll(page), 'Tea or coffee?')
      await waitForOption(page, 'Tea', shows(0), 20_000)
      expect(await plusOne(page, 'Tea').isDisabled()).toBe(false)
    }

    // Every page clicks as fast as its script can, all pages at once: 3 x CLICKS updates of one
    // key race for its lock.
    const started = performance.now()
    await Promise.all(pages.map(async (page) => {
      await plusOne(page, 'Tea').evaluate((button: HTMLButtonElement, clicks: number) => {
        for (let i = 0; i < clicks; i++) button.click()
      }, CLICKS)
    }))
    // First every page's own votes are done (resolved or failed), then no lock is held and every
    // vote has arrived everywhere: a count below 3 x CLICKS then is a lost update.
    for (const page of pages) await waitForOption(page, 'Tea', (text) => !text.includes('pending'), 90_000)
    for (const page of pages) await waitForOption(page, 'Tea', (text) => shows(3 * CLICKS)(text) && !text.includes('locked by'), 10_000)
    const seconds = ((performance.now() - started) / 1000).toFixed(1)
    console.log(`${3 * CLICKS} contended updates over 3 pages settled in ${seconds} s`)

    // Settled everywhere: no page counts one more or one less, in the page or in its store.
    for (const page of pages) {
      expect(await option(page, 'Tea').innerText()).toMatch(new RegExp(`\\b${3 * CLICKS} votes\\b`))
      await waitForOption(page, 'Coffee', shows(0), 10_000)
      expect(await page.evaluate(() => (window as unknown as DemoWindow).demo.store.get('poll/Tea'))).toBe(3 * CLICKS)
      expect(await poll(page).getByRole('alert').innerText()).toBe('')
    }
    expect(await host.evaluate(() => (window as unknown as DemoWindow).demo.store.entry('poll/Tea')?.updatedBy.user)).toMatch(/^(Hana|Gus|Gia)$/)

    await mkdir(OUTPUT, { recursive: true })
    await gus.screenshot({ path: `${OUTPUT}demo-poll-guest.png`, fullPage: true })
    for (const page of pages) expect(page.errors).toEqual([])
  })
})

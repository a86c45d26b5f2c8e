/**
 * The demo page's roles end to end in Chromium: a server with dev tokens (as `npm start` runs it),
 * a host page and a guest page, each its own browser context, connected over real WebRTC. The
 * host may write every key, the guest only its own raised hand and the poll counts (`poll/*`); the page shows it, disables what
 * the guest cannot use, and a write forced past the page (through `window.demo.store`, or raw
 * into the Yjs document, as a modified client would) changes nothing anyone reads.
 */
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Locator, Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import type { SignalingServer } from '../signaling/index.js'
import type { Session, SessionStore } from '../src/index.js'
import { demoDir, launchBrowser, openPeer, storeJSON, waitForText, waitForWebrtc } from './helpers/browser.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'

const OUTPUT = fileURLToPath(new URL('../test-output/', import.meta.url))

/** What the page exposes as `window.demo` (demo/main.ts). */
interface DemoWindow { demo: { session: Session, store: SessionStore } }

const roomUrl = (server: SignalingServer, room: string, name: string): string =>
  `http://127.0.0.1:${server.port}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`

const region = (page: Page, name: string | RegExp): Locator => page.getByRole('region', { name })
const role = (page: Page): Locator => page.getByLabel('Your role')
const stage = (page: Page): Locator => region(page, 'Center stage')
const people = (page: Page): Locator => region(page, /^People in the room/)
const hands = (page: Page): Locator => region(page, /^Raised hands/)
const pinned = (page: Page): Locator => region(page, 'Pinned message').locator('figure')

const localPeerId = async (page: Page): Promise<string> =>
  await page.evaluate(() => (window as unknown as DemoWindow).demo.session.peers.find((peer) => peer.local)?.id ?? '')

/** Calls `store.set(key, value)` in the page, past its disabled controls: the error code, or 'resolved'. */
const forceSet = async (page: Page, key: string, value: unknown): Promise<string> =>
  await page.evaluate(async ([k, v]) => {
    try {
      await (window as unknown as DemoWindow).demo.store.set(k as string, v as string)
      return 'resolved'
    } catch (err) {
      return (err as { code?: string }).code ?? String(err)
    }
  }, [key, value])

describe('the demo page with dev tokens in Chromium', () => {
  it('the host sets the spotlight, the guest cannot change it, and the guest raises its own hand', { timeout: 120_000 }, async () => {
    const server = await startSignaling({ staticDir: demoDir(), devTokens: true })
    const browser = await launchBrowser()
    const room = uniqueRoom('roles')
    // The first to ask for a token is the host: the host's store is available only once its
    // token is known (signaling waits for it), so the guest asks second.
    const host = await openPeer(browser, roomUrl(server, room, 'Hana'))
    await waitForText(role(host), /Host\s+Hana\s+may write every key/)
    const guest = await openPeer(browser, roomUrl(server, room, 'Gus'))
    await waitForText(role(guest), /Guest\s+Gus\s+may write hand\/Gus/)
    for (const page of [host, guest]) {
      await waitForWebrtc(page, 1)
      await waitForText(people(page), (text) => text.includes('Hana') && text.includes('Gus'))
    }

    await host.getByRole('button', { name: 'Spotlight Gus' }).click()
    for (const page of [host, guest]) await waitForText(stage(page), /Gus[\s\S]*Set by Hana verified/)
    expect(await stage(guest).innerText()).toContain('You are in the spotlight')

    for (const name of ['Spotlight Hana', 'Spotlight Gus', 'Clear spotlight', 'Pin']) {
      expect(await guest.getByRole('button', { name, exact: true }).isDisabled(), `the guest's ${name}`).toBe(true)
      expect(await host.getByRole('button', { name, exact: true }).isDisabled(), `the host's ${name}`).toBe(false)
    }
    expect(await guest.getByLabel('Message to pin').isDisabled()).toBe(true)
    expect(await stage(guest).innerText()).toContain('Only the host can bring someone to the stage.')

    // Past the page: the store refuses, and a raw write into the document (a modified client)
    // is invisible to every honest peer, the guest's own store included.
    const hana = await localPeerId(host)
    expect(await forceSet(guest, 'spotlight', hana)).toBe('PERMISSION_DENIED')
    expect(await forceSet(guest, 'hand/Hana', true)).toBe('PERMISSION_DENIED')
    await guest.evaluate((id) => { (window as unknown as DemoWindow).demo.session.doc.getMap('session-store').set('spotlight', JSON.stringify(id)) }, hana)

    await guest.getByRole('button', { name: 'Raise hand' }).click()
    await waitForText(hands(host), /^Gus$/m)
    await waitForText(hands(guest), /^Gus \(you\)$/m)
    expect(await guest.getByRole('button', { name: 'Lower hand' }).getAttribute('aria-pressed')).toBe('true')
    expect(await host.evaluate(() => (window as unknown as DemoWindow).demo.store.entry('hand/Gus')?.updatedBy.user)).toBe('Gus')
    // A write of the host's after the guest's: once it is everywhere, so would the guest's be.
    await host.getByLabel('Message to pin').fill('Questions after the demo')
    await host.getByRole('button', { name: 'Pin', exact: true }).click()
    await waitForText(pinned(guest), /Questions after the demo[\s\S]*Pinned by Hana verified/)
    for (const page of [host, guest]) {
      await waitForText(stage(page), /Gus[\s\S]*Set by Hana/)
      expect(await page.evaluate(() => (window as unknown as DemoWindow).demo.store.get('spotlight'))).toBe(await localPeerId(guest))
    }
    const stores = await Promise.all([host, guest].map(storeJSON))
    expect(stores[1]).toEqual(stores[0])
    expect(Object.keys(stores[0] ?? {}).sort()).toEqual(['hand/Gus', 'pinned', 'spotlight'])

    await mkdir(OUTPUT, { recursive: true })
    await host.screenshot({ path: `${OUTPUT}demo-roles-host.png`, fullPage: true })
    await guest.screenshot({ path: `${OUTPUT}demo-roles-guest.png`, fullPage: true })

    // The host may lower anyone's hand.
    await host.getByRole('button', { name: 'Lower the hand of Gus' }).click()
    await waitForText(hands(guest), 'No hands raised.')
    expect(await guest.getByRole('button', { name: 'Raise hand' }).isDisabled()).toBe(false)
    for (const page of [host, guest]) expect(page.errors).toEqual([])
  })

  it('a host that reloads is still the host; a newcomer with the host\'s name is another guest', { timeout: 120_000 }, async () => {
    const server = await startSignaling({ staticDir: demoDir(), devTokens: true })
    const browser = await launchBrowser()
    const room = uniqueRoom('roles')
    const host = await openPeer(browser, roomUrl(server, room, 'Hana'))
    await waitForText(role(host), /Host\s+Hana/)
    const guest = await openPeer(browser, roomUrl(server, room, 'Hana'))
    await waitForText(role(guest), /Guest\s+Hana 2\s+may write hand\/Hana 2/)
    await waitForWebrtc(host, 1)
    await host.getByLabel('Message to pin').fill('Back in five')
    await host.getByRole('button', { name: 'Pin', exact: true }).click()
    await waitForText(pinned(guest), /Back in five[\s\S]*Pinned by Hana verified/)

    // A reload is a new session key; the tab's client id (sessionStorage) keeps its seat.
    await host.reload()
    await host.waitForFunction(() => (window as unknown as Partial<DemoWindow>).demo?.store !== undefined)
    await waitForText(role(host), /Host\s+Hana\s+may write every key/)
    await waitForText(pinned(host), 'Back in five')
    await waitForWebrtc(host, 1)
    await host.getByRole('button', { name: 'Unpin', exact: true }).click()
    await waitForText(pinned(guest), 'Nothing pinned yet.')
    expect(await guest.getByRole('button', { name: 'Raise hand' }).isDisabled()).toBe(false)
    for (const page of [host, guest]) expect(page.errors).toEqual([])
  })
})

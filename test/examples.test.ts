/**
 * The README's examples run as written (test/readme.test.ts keeps each README block equal to its
 * file in examples/). They run from an empty project made as a user makes one (`npm init -y`,
 * which writes `"type": "commonjs"`) that installed the packed tarball under the package's name:
 * the Node ones with `node`, against the example signaling server on a free loopback port; the
 * browser ones bundled by esbuild from that project, in Chromium, with the WebSocket to
 * `ws://localhost:4444` they are written with carried to that server. Their types compile under a
 * strict, Node-only tsconfig against the installed declarations.
 */
import { execFile, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { copyFile, readdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import type { BrowserContext, Page, WebSocketRoute } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, expectTypeOf, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { joinRoom } from '../src/node.js'
import type { DataChannelState, PeerConnectionState } from '../src/transport/link.js'
import { launchBrowser } from './helpers/browser.js'
import { freePort } from './helpers/net.js'
import { refusedClose } from './helpers/signaling.js'
import { installProject, ROOT, type Project } from './helpers/tarball.js'
import { spawnCaptured } from './helpers/process.js'
import { waitFor, withTimeout } from './helpers/wait.js'

const run = promisify(execFile)
const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url))
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')

/** Every example, and how this file runs it. */
const RUN_BY = {
  'bot.mjs': 'node',
  'signaling-server.mjs': 'node',
  'token-backend.mjs': 'node',
  'room-token-backend.mjs': 'node',
  'browser.js': 'Chromium',
  'react.js': 'Chromium'
} as const
const NODE_EXAMPLES = Object.keys(RUN_BY).filter((name) => RUN_BY[name as keyof typeof RUN_BY] === 'node')

/** What the README's install lines add, for all the examples at once; @types/node for the types check. */
const PACKAGES = ['yjs', 'ws', '@roamhq/wrtc', 'prom-client', 'pino', 'react', 'react-dom', '@types/node@20']

const SECRET = 'an-examples-test-secret-of-at-least-32-bytes'

let project: Project | undefined
const dir = (): string => {
  if (project === undefined) throw new Error('the examples project was not installed')
  return project.dir
}

beforeAll(async () => {
  project = await installProject('examples', PACKAGES)
  for (const name of Object.keys(RUN_BY)) await copyFile(join(EXAMPLES, name), join(project.dir, name))
}, 90_000)

afterAll(async () => { await project?.remove() })

interface Example {
  child: ChildProcessWithoutNullStreams
  /** Everything it printed to stdout so far. */
  stdout: () => string
  /** Waits for a line of stdout that matches `pattern`. */
  line: (pattern: RegExp, timeout?: number) => Promise<RegExpExecArray>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Runs `node NAME` in the project with only `env` set (and PATH, HOME); killed when the test ends. */
const start = (name: string, env: Record<string, string> = {}): Example => {
  const { child, stdout: printed, stderr: errors, exited } = spawnCaptured(process.execPath, [name], { cwd: dir(), env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env } })
  const line = async (pattern: RegExp, timeout = 20_000): Promise<RegExpExecArray> => {
    const multiline = new RegExp(pattern.source, `${pattern.flags.replace('m', '')}m`)
    return await waitFor(() => multiline.exec(printed()), { timeout, what: `${name} to print ${String(pattern)} (stdout: ${JSON.stringify(printed())}, stderr: ${JSON.stringify(errors())})` })
  }
  return { child, stdout: printed, line, exited }
}

/** The example signaling server on a free port. */
const startServer = async (env: Record<string, string> = {}): Promise<Example & { url: string }> => {
  const server = start('signaling-server.mjs', { PORT: '0', ...env })
  const [, url] = await server.line(/^signaling server listening on (ws:\/\/127\.0\.0\.1:\d+)$/)
  return { ...server, url: url as string }
}

/** The lines a bot printed after it joined. */
const changesSeen = (bot: Example): string[] => bot.stdout().split('\n').slice(1).filter((line) => line !== '')

describe('examples', () => {
  it('are all run here', async () => {
    expect((await readdir(EXAMPLES)).sort()).toEqual(Object.keys(RUN_BY).sort())
  })

  it('compile under a strict, Node-only tsconfig against the installed declarations', { timeout: 60_000 }, async () => {
    expectTypeOf<PeerConnectionState>().toEqualTypeOf<RTCPeerConnectionState>()
    expectTypeOf<DataChannelState>().toEqualTypeOf<RTCDataChannelState>()
    // What `tsc --init` writes (TypeScript 5.9), for a Node program (lib ES2022 and Node's types,
    // no DOM), with the examples checked as JavaScript and skipLibCheck off, so that the
    // package's own declarations are checked too.
    await writeFile(join(dir(), 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        target: 'es2022',
        lib: ['es2022'],
        types: ['node'],
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        strict: true,
        verbatimModuleSyntax: true,
        isolatedModules: true,
        noUncheckedSideEffectImports: true,
        moduleDetection: 'force',
        skipLibCheck: false,
        allowJs: true,
        checkJs: true,
        noEmit: true
      },
      include: NODE_EXAMPLES
    }))
    const output = await run(process.execPath, [TSC, '-p', dir()], { cwd: dir() }).then(({ stdout }) => stdout, (err: { stdout: string }) => err.stdout)
    const errors = output.split('\n').filter((line) => /^\S+\(\d+,\d+\): error /.test(line))
    // yjs's declarations name DOM types (Document, Node, ...): every Node user of yjs needs
    // skipLibCheck for them. framed-wrtc.d.ts is the library's, and internal: it is reached only
    // through the `runtime` parameter of Session's constructor (joinRoom's entries pass it), and
    // keeps the DOM's WebRTC classes until session.ts stops exposing that parameter.
    const excused = (line: string): boolean =>
      (line.startsWith('node_modules/yjs/') || line.startsWith('node_modules/y-session-store/dist/src/transport/framed-wrtc.d.ts')) &&
      /error TS(2304|2552): Cannot find name '(Document|Node|Element|Text|self|RTC[A-Za-z]+)'/.test(line)
    expect(errors.filter((line) => !excused(line))).toEqual([])
  })

  it('the bot logs what the others write, and on SIGTERM leaves: they see it go at once, and it exits 0', { timeout: 60_000 }, async () => {
    const server = await startServer()
    const bot = start('bot.mjs', { SIGNALING_URL: server.url })
    await bot.line(/^joined standup-42 \(alone\) with 0 other peers$/)

    const peer = joinRoom('standup-42', { signaling: [server.url] })
    onTestFinished(async () => { await peer.leave() })
    const store = await withTimeout(peer.sessionStore, 20_000, 'the store')
    await waitFor(() => peer.status.webrtcPeers === 1, { timeout: 20_000, what: 'a WebRTC connection to the bot' })
    await store.set('pinned', { text: 'Retro at 4pm' })
    await bot.line(/^pinned \{ text: 'Retro at 4pm' \}$/)

    // Killed without leave(), it would stay in the peer list until the connection times out (15 s).
    const gone = new Promise<number>((resolve) => peer.on('peers', ({ left }) => { if (left.length > 0) resolve(Date.now()) }))
    const stopped = Date.now()
    bot.child.kill('SIGTERM')
    expect(await withTimeout(bot.exited, 10_000, 'the bot to exit')).toEqual({ code: 0, signal: null })
    expect(await withTimeout(gone, 5_000, 'the bot to leave the peer list') - stopped).toBeLessThan(5_000)
    expect(peer.peers.map((p) => p.local)).toEqual([true])

    server.child.kill('SIGINT')
    expect(await withTimeout(server.exited, 10_000, 'the server to exit')).toEqual({ code: 0, signal: null })
  })

  it('the token backend mints tokens for the rooms it allows, and the server with AUTH_SECRET admits only them', { timeout: 60_000 }, async () => {
    const server = await startServer({ AUTH_SECRET: SECRET })
    expect((await refusedClose(server.url)).code).toBe(4401)
    const backend = start('token-backend.mjs', { AUTH_SECRET: SECRET, PORT: String(await freePort()) })
    const [, url] = await backend.line(/^token backend listening on (http:\/\/127\.0\.0\.1:\d+)$/)
    expect((await fetch(`${url}/token?room=elsewhere`)).status).toBe(403)
    const answer = await fetch(`${url}/token?room=standup-42`)
    expect(answer.status).toBe(200)
    const { token } = await answer.json() as { token: string }

    const bot = start('bot.mjs', { SIGNALING_URL: server.url, TOKEN: token })
    await bot.line(/^joined standup-42 \(alone\) with 0 other peers$/)
    bot.child.kill('SIGINT')
    expect(await withTimeout(bot.exited, 10_000, 'the bot to exit')).toEqual({ code: 0, signal: null })
  })

  it('the room token backend issues tokens that make its organiser the host of a protected room', { timeout: 60_000 }, async () => {
    const server = await startServer()
    const backend = start('room-token-backend.mjs', { PORT: String(await freePort()) })
    const [, url] = await backend.line(/^room token backend listening on (http:\/\/127\.0\.0\.1:\d+)$/)
    const issuer = await (await fetch(`${url}/issuer`)).json() as JsonWebKey
    const room = `standup-${Math.random().toString(36).slice(2)}`
    const join = async (user: string) => {
      const session = joinRoom(room, {
        signaling: [server.url],
        auth: {
          issuer: issuer as Record<string, string>,
          token: async (peerKey) => {
            const answer = await fetch(`${url}/room-token`, { method: 'POST', body: JSON.stringify({ room, peerKey, user }) })
            return (await answer.json() as { token: string }).token
          }
        }
      })
      onTestFinished(async () => { await session.leave() })
      const store = await session.sessionStore
      await waitFor(() => session.permissions !== null, { what: `${user}'s permissions` })
      return { session, store }
    }
    const ada = await join('ada')
    expect(ada.session.permissions).toMatchObject({ user: 'ada', write: ['*'] })
    expect(ada.store.canWrite('spotlight')).toBe(true)
    await ada.store.set('spotlight', 'ada')
    expect(ada.store.entry('spotlight')?.updatedBy.user).toBe('ada')
    expect((await fetch(`${url}/room-token`, { method: 'POST', body: 'not json' })).status).toBe(400)
    backend.child.kill('SIGINT')
  })

  it('the browser examples, bundled from the installed package, run in Chromium with the bot', { timeout: 90_000 }, async () => {
    const server = await startServer()
    const bot = start('bot.mjs', { SIGNALING_URL: server.url })
    await bot.line(/^joined standup-42/)
    const site = await servePages(dir(), ['browser.js', 'react.js'])
    const browser = await launchBrowser()
    const open = async (name: string): Promise<Page & { errors: string[] }> => {
      // One context per page: pages of one context would sync over BroadcastChannel instead.
      const context = await browser.newContext()
      onTestFinished(async () => { await context.close() })
      await carrySignaling(context, server.url)
      const page = Object.assign(await context.newPage(), { errors: [] as string[] })
      page.on('pageerror', (err) => page.errors.push(err.message))
      page.on('console', (message) => { if (message.type() === 'error') page.errors.push(message.text()) })
      await page.goto(`${site}/${name}.html`)
      return page
    }

    const tour = await open('browser')
    await bot.line(/^pinned undefined$/) // the tour's last write
    expect(changesSeen(bot)).toEqual(["pinned { text: 'Retro at 4pm', by: 'Ada' }", 'spotlight peer-id', 'pinned undefined'])
    expect(tour.errors).toEqual([])

    const react = await open('react')
    await react.getByText('3 here, 2 connected').waitFor({ timeout: 20_000 })
    await react.getByRole('button', { name: 'Pin the retro' }).click()
    await bot.line(/^pinned \{ text: 'Retro at 4pm' \}$/)
    await react.getByRole('button', { name: 'Retro at 4pm' }).waitFor({ timeout: 5_000 })

    // The tour leaves on pagehide: the others see it go at once, not when its connections time out.
    await tour.close()
    await react.getByText('2 here, 1 connected').waitFor({ timeout: 5_000 })
    expect(react.errors).toEqual([])
  })
})

/** Serves `NAME.html` pages that load each example as bundled by esbuild from `project`, on a free loopback port. */
const servePages = async (project: string, names: string[]): Promise<string> => {
  const bundles = new Map<string, string>()
  for (const name of names) {
    const result = await build({ entryPoints: [join(project, name)], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' })
    bundles.set(`/${name}`, result.outputFiles[0]?.text ?? '')
  }
  const server = createServer((req, res) => {
    const path = req.url ?? '/'
    const bundle = bundles.get(path)
    if (bundle !== undefined) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle)
    } else if (bundles.has(path.replace(/\.html$/, '.js'))) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html>\n<meta charset="utf-8">\n<link rel="icon" href="data:,">\n<script type="module" src="${path.replace(/\.html$/, '.js')}"></script>\n`)
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => { await new Promise((resolve) => server.close(resolve)) })
  // localhost: a secure context, which WebCrypto needs.
  return `http://localhost:${(server.address() as AddressInfo).port}`
}

/** Carries the context's WebSockets to `ws://localhost:4444` (the examples' URL) to the test's server at `url`. */
const carrySignaling = async (context: BrowserContext, url: string): Promise<void> => {
  await context.routeWebSocket((target) => target.host === 'localhost:4444', (route: WebSocketRoute) => {
    const upstream = new WebSocket(url)
    const early: string[] = []
    upstream.on('open', () => { for (const message of early.splice(0)) upstream.send(message) })
    upstream.on('message', (data) => route.send(String(data)))
    upstream.on('close', () => { void route.close() })
    upstream.on('error', () => {})
    route.onMessage((message) => {
      if (upstream.readyState === WebSocket.OPEN) upstream.send(message)
      else early.push(String(message))
    })
    route.onClose(() => upstream.close())
  })
}

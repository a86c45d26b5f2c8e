/**
 * The room lifecycle in one process: availability, leave and rejoin, errors, metadata. What needs
 * two peers runs in separate processes (test/integration.test.ts).
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import wrtc from '@roamhq/wrtc'
import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { joinRoom, type JoinOptions, type Session } from '../src/node.js'
import { SessionStoreError } from '../src/errors.js'
import { joinRoom as joinSession } from '../src/session.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { createIdentity } from '../src/trust/identity.js'
import { signSignal } from '../src/trust/signed-signal.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { once, waitFor } from './helpers/wait.js'

const join = (room: string, options: Parameters<typeof joinRoom>[1]): Session => {
  const session = joinRoom(room, options)
  onTestFinished(() => session.leave())
  return session
}

/** A raw signaling client that subscribes to `room` and never answers: a peer that never syncs. */
const silentSubscriber = async (url: string, room: string): Promise<WebSocket> => {
  const ws = new WebSocket(url)
  onTestFinished(() => ws.terminate())
  await once(ws, 'open')
  ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
  ws.send(JSON.stringify({ type: 'publish', topic: room, data: { type: 'hello' } }))
  // The echo of our own publish proves the subscription is in place.
  await new Promise<void>((resolve) => ws.on('message', (raw) => {
    if (JSON.parse(String(raw)).topic === room) resolve()
  }))
  return ws
}

describe('joining', () => {
  it('is available at once when alone in the room, via the event and the promise', async () => {
    const server = await startSignaling()
    const session = join(uniqueRoom(), { signaling: [server.url] })
    const [fromEvent, fromPromise] = await Promise.all([
      once<unknown>(session, 'sessionStoreAvailable'),
      session.sessionStore
    ])
    expect(fromEvent).toBe(fromPromise)
    expect(session.status).toMatchObject({ available: true, sync: 'alone', signaling: true, webrtcPeers: 0 })
    await expect(fromPromise.set('pinned', 'hi')).resolves.toBe('hi')
    expect(session.peers).toEqual([{ id: String(session.doc.clientID), metadata: null, local: true }])
  })

  it('calls a sessionStoreAvailable listener added after the store became available', async () => {
    const server = await startSignaling()
    const session = join(uniqueRoom(), { signaling: [server.url] })
    const store = await session.sessionStore
    await expect(once(session, 'sessionStoreAvailable')).resolves.toBe(store)
  })

  it('becomes available with what it has after joinTimeout when the peers it waits for never answer', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    await silentSubscriber(server.url, room)
    const session = join(room, { signaling: [server.url], joinTimeout: 1500 })
    const statuses: string[] = []
    session.on('status', (s) => statuses.push(s.sync))
    const store = await session.sessionStore
    expect(session.status.sync).toBe('timeout')
    expect(statuses).toContain('timeout')
    expect(store.keys()).toEqual([])
  })

  it('becomes available when the peers it waited for leave before syncing', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const silent = await silentSubscriber(server.url, room)
    const session = join(room, { signaling: [server.url], joinTimeout: 20_000 })
    await waitFor(() => server.stats().topics > 0 && session.status.signaling, { what: 'the session to subscribe' })
    silent.close()
    await session.sessionStore
    expect(session.status.sync).toBe('peers-left')
  })

  it('rejects with SIGNALING_UNAVAILABLE when no signaling server answers, and releases the room', async () => {
    const server = await startSignaling()
    const url = server.url
    await server.close() // a port that was just ours and is now closed
    const room = uniqueRoom()
    const session = joinRoom(room, { signaling: [url], joinTimeout: 300 })
    const errors: SessionStoreError[] = []
    session.on('error', (e) => errors.push(e))
    await expect(session.sessionStore).rejects.toMatchObject({ code: 'SIGNALING_UNAVAILABLE' })
    expect(errors.map((e) => e.code)).toEqual(['SIGNALING_UNAVAILABLE'])
    await session.leave()
    const again = joinRoom(room, { signaling: [url], joinTimeout: 300 })
    await expect(again.sessionStore).rejects.toBeInstanceOf(SessionStoreError)
    await again.leave()
  })

  it('refuses bad options with INVALID_OPTION', () => {
    expect(() => joinRoom('', {})).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom(uniqueRoom(), { signaling: 'ws://x' as unknown as string[] })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom(uniqueRoom(), { joinTimeout: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom(uniqueRoom(), { turn: 'always' as 'signaling' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom(uniqueRoom(), { limits: { maxKeys: 0 } })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }))
    expect(() => joinRoom(uniqueRoom(), { metadata: (() => 1) as unknown as null })).toThrow(expect.objectContaining({ code: 'INVALID_VALUE' }))
  })

  it('refuses an unknown option, naming it (plain JavaScript has no type check)', () => {
    expect(() => joinRoom(uniqueRoom(), { signalling: ['ws://x'] } as unknown as JoinOptions)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining("'signalling'") }))
  })

  it('a refused join leaves nothing open: the process exits by itself', async () => {
    const server = await startSignaling()
    const fixture = fileURLToPath(new URL('./fixtures/refused-join-exits.mjs', import.meta.url))
    const { stdout } = await promisify(execFile)(process.execPath, [fixture, server.url], { timeout: 15_000 })
    expect(stdout.trim()).toBe('VALUE_TOO_LARGE INVALID_VALUE INVALID_OPTION INVALID_OPTION INVALID_OPTION INVALID_OPTION INVALID_OPTION INVALID_OPTION INVALID_OPTION')
  })

  it("lists this peer under 'joined' in the first peers event a listener added at once sees", async () => {
    const server = await startSignaling()
    const session = join(uniqueRoom(), { signaling: [server.url], metadata: 'me' })
    const first = await once<{ joined: Array<{ local: boolean, metadata: unknown }>, updated: unknown[] }>(session, 'peers')
    expect(first.joined).toEqual([expect.objectContaining({ local: true, metadata: 'me' })])
    expect(first.updated).toEqual([])
  })
})

describe('leaving and rejoining', () => {
  it('ALREADY_JOINED for a second join of the same room in one realm, instead of y-webrtc\'s raw error', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    join(room, { signaling: [server.url] })
    expect(() => joinRoom(room, { signaling: [server.url] })).toThrow(expect.objectContaining({ code: 'ALREADY_JOINED' }))
  })

  it('leave() resolves once the room is released, so joining the same name right after works', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    for (let i = 0; i < 3; i++) {
      const session = joinRoom(room, { signaling: [server.url] })
      const store = await session.sessionStore
      await store.set('round', i)
      await session.leave()
      expect(session.status).toMatchObject({ left: true, signaling: false, webrtcPeers: 0 })
    }
    await waitFor(() => server.stats().topics === 0, { what: 'the topic to be released on the server' })
  })

  it('after leave(), store calls reject with NOT_AVAILABLE; leave() is idempotent', async () => {
    const server = await startSignaling()
    const session = joinRoom(uniqueRoom(), { signaling: [server.url] })
    const store = await session.sessionStore
    const first = session.leave()
    expect(session.leave()).toBe(first)
    await first
    await expect(store.set('k', 1)).rejects.toMatchObject({ code: 'NOT_AVAILABLE' })
    await expect(store.object('k')).rejects.toMatchObject({ code: 'NOT_AVAILABLE' })
    expect(() => store.get('k')).toThrow(expect.objectContaining({ code: 'NOT_AVAILABLE' }))
    expect(() => session.setMetadata({})).toThrow(expect.objectContaining({ code: 'NOT_AVAILABLE' }))
  })

  it('leaving before the store is available rejects the promise with NOT_AVAILABLE', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    await silentSubscriber(server.url, room)
    const session = joinRoom(room, { signaling: [server.url], joinTimeout: 20_000 })
    await session.leave()
    await expect(session.sessionStore).rejects.toMatchObject({ code: 'NOT_AVAILABLE' })
  })
})

describe('metadata and events', () => {
  it('sets, validates and shows this peer\'s metadata', async () => {
    const server = await startSignaling()
    const session = join(uniqueRoom(), { signaling: [server.url], metadata: { name: 'Ada' } })
    await session.sessionStore
    expect(session.peers[0]?.metadata).toEqual({ name: 'Ada' })
    const change = once<{ updated: Array<{ metadata: unknown }> }>(session, 'peers')
    session.setMetadata({ name: 'Ada L.' })
    expect((await change).updated[0]?.metadata).toEqual({ name: 'Ada L.' })
    expect(() => session.setMetadata('x'.repeat(2000))).toThrow(expect.objectContaining({ code: 'VALUE_TOO_LARGE' }))
    expect(() => session.setMetadata(new Date() as unknown as string)).toThrow(expect.objectContaining({ code: 'INVALID_VALUE' }))
    expect(session.peers[0]?.metadata).toEqual({ name: 'Ada L.' })
  })

  it('a throwing listener is reported as an error event and does not stop the others', async () => {
    const server = await startSignaling()
    const session = join(uniqueRoom(), { signaling: [server.url] })
    const errors: SessionStoreError[] = []
    session.on('error', (e) => errors.push(e))
    session.on('sessionStoreAvailable', () => { throw new Error('app bug') })
    const second = once(session, 'sessionStoreAvailable')
    await second
    expect(errors.map((e) => e.code)).toContain('CALLBACK_FAILED')
  })
})

describe('TURN servers from the signaling server', () => {
  it('a session joining later on a shared signaling connection still uses the credentials sent when it opened', async () => {
    const url = 'turn:127.0.0.1:9'
    const server = await startSignaling({ turn: { secret: 'a-turn-secret-of-16+', urls: [url] } })
    // The first session opens the connection, and receives the turn message, without the option.
    await join(uniqueRoom(), { signaling: [server.url] }).sessionStore
    const configs: RTCConfiguration[] = []
    class Recording extends wrtc.RTCPeerConnection {
      constructor (config?: RTCConfiguration) {
        configs.push(config ?? {})
        super(config)
      }
    }
    const room = uniqueRoom()
    const session = join(room, { signaling: [server.url], turn: 'signaling', peerOpts: { wrtc: { ...wrtc, RTCPeerConnection: Recording } } })
    await session.sessionStore
    expect(server.stats().connections).toBe(1)
    // A peer announces itself in the room, with an id that sorts after this one's, so this one initiates.
    const ownId = await waitFor(() => session.awareness.getLocalState()?.peerId as string | undefined, { what: 'the session\'s signaling id' })
    let announcer = await createIdentity()
    while (announcer.id <= ownId) announcer = await createIdentity()
    const ws = new WebSocket(server.url)
    onTestFinished(() => ws.terminate())
    await once(ws, 'open')
    ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
    ws.send(JSON.stringify({ type: 'publish', topic: room, data: await signSignal(announcer, room, 1, { type: 'announce', from: announcer.id }) }))
    await waitFor(() => configs.length > 0, { what: 'a connection to the announced peer' })
    expect(configs[0]?.iceServers).toEqual([{ urls: [url], username: expect.stringMatching(/^\d{10}:[\w-]+$/), credential: expect.any(String) }])
  })
})

describe('who wrote what', () => {
  it("an entry names its writer and its metadata, read by another peer, still after the writer left", async () => {
    const hub = new MemoryHub()
    const ada = joinSession('who-wrote', { metadata: { name: 'Ada' } }, { link: hub.link })
    const adaStore = await ada.sessionStore
    await adaStore.set('pinned', 'Retro at 4')
    const bob = joinSession('who-wrote', {}, { link: hub.link })
    onTestFinished(() => bob.leave())
    const bobStore = await bob.sessionStore
    const entry = bobStore.entry('pinned')
    expect(entry).toMatchObject({ value: 'Retro at 4', updatedBy: { id: String(ada.doc.clientID), metadata: { name: 'Ada' } } })
    expect(Math.abs((entry?.updatedAt ?? 0) - Date.now())).toBeLessThan(60_000)
    await ada.leave()
    await waitFor(() => bob.peers.length === 1, { what: 'Ada to leave' })
    expect(bobStore.entry('pinned')?.updatedBy.metadata).toEqual({ name: 'Ada' })
  })
})

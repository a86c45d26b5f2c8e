/**
 * The y-webrtc adapter's Link contract, against this project's signaling server in one process,
 * and its check of y-webrtc's shapes (the adapter relies on one exact release's internals).
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import wrtc from '@roamhq/wrtc'
import { WebSocket } from 'ws'
import * as yWebrtc from 'y-webrtc'
import { checkYWebrtc, yWebrtcLink } from '../src/transport/y-webrtc-adapter.js'
import type { WrtcImplementation } from '../src/transport/framed-wrtc.js'
import type { Link } from '../src/transport/link.js'
import { createIdentity } from '../src/trust/identity.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { once } from './helpers/wait.js'

const g = globalThis as { WebSocket?: unknown }
g.WebSocket ??= WebSocket
const link = yWebrtcLink(wrtc as unknown as WrtcImplementation)

const open = (room: string, url: string): Link => {
  const l = link(room, { signaling: [url], peerOpts: {}, identity: createIdentity() })
  onTestFinished(() => l.leave())
  return l
}

describe('checkYWebrtc', () => {
  it('accepts the installed y-webrtc', () => {
    expect(checkYWebrtc(yWebrtc as unknown as Record<string, unknown>)).toBeNull()
  })

  it('names what a different release lacks', () => {
    const { SignalingConn: _, ...rest } = yWebrtc as unknown as Record<string, unknown>
    expect(checkYWebrtc(rest)).toBe('y-webrtc exports no SignalingConn')
    const module = yWebrtc as unknown as Record<string, unknown>
    expect(checkYWebrtc(module, { signalingConns: {}, key: Promise.resolve(null), maxConns: 20 })).toMatch(/signalingConns/)
    expect(checkYWebrtc(module, { signalingConns: [], key: null, maxConns: 20 })).toMatch(/key/)
    expect(checkYWebrtc(module, { signalingConns: [{ send () {}, on () {}, url: 'ws://x' }], key: Promise.resolve(null), maxConns: 20 })).toMatch(/_observers/)
  })

  it('makes joinRoom fail loudly with INCOMPATIBLE_DEPENDENCY', async () => {
    vi.resetModules()
    vi.doMock('y-webrtc', async () => {
      // A release without the class the adapter relies on.
      return { ...await vi.importActual<Record<string, unknown>>('y-webrtc'), WebrtcConn: undefined }
    })
    onTestFinished(() => { vi.doUnmock('y-webrtc'); vi.resetModules() })
    const { joinRoom } = await import('../src/node.js')
    expect(() => joinRoom(uniqueRoom(), { signaling: ['ws://127.0.0.1:9'] })).toThrowError(expect.objectContaining({ code: 'INCOMPATIBLE_DEPENDENCY', message: expect.stringMatching(/y-webrtc 10\.3\.0 exactly/) }) as Error)
  })
})

describe('the Link over y-webrtc', () => {
  it('resolves its id, reports the signaling server and the room count, and answers a probe', async () => {
    const server = await startSignaling()
    const l = open(uniqueRoom(), server.url)
    const counts: number[] = []
    l.on('count', ({ clients }) => counts.push(clients))
    expect(typeof await l.ready).toBe('string')
    expect(l.localId).toBe(await l.ready)
    if (!l.sources.some((s) => s.connected)) await once(l, 'signaling')
    expect(l.sources).toEqual([{ id: server.url, connected: true }])
    await once(l, 'count')
    l.probe()
    await once(l, 'count')
    expect(counts.every((c) => c === 1)).toBe(true)
    expect(l.connections).toEqual([])
    expect(l.diagnostics()).toEqual([])
  })

  it('keeps the token out of its sources', async () => {
    const server = await startSignaling()
    const l = link(uniqueRoom(), { signaling: [server.url], token: 'secret-token', peerOpts: {}, identity: createIdentity() })
    onTestFinished(() => l.leave())
    expect(JSON.stringify(l.sources)).not.toContain('secret-token')
  })

  it('refuses a second link to a room of this realm until the first has left', async () => {
    const server = await startSignaling()
    const room = uniqueRoom()
    const first = link(room, { signaling: [server.url], peerOpts: {}, identity: createIdentity() })
    await first.ready
    expect(() => link(room, { signaling: [server.url], peerOpts: {}, identity: createIdentity() })).toThrowError(expect.objectContaining({ code: 'ALREADY_JOINED' }) as Error)
    await first.leave()
    const second = open(room, server.url)
    await expect(second.ready).resolves.toEqual(expect.any(String))
  })

  it.each([['a plain room', undefined], ['an encrypted room', 'secret']])('posts nothing on a BroadcastChannel, joining, idle or leaving (%s)', async (_what, password) => {
    const posted: unknown[] = []
    const post = vi.spyOn(BroadcastChannel.prototype, 'postMessage').mockImplementation((message: unknown) => { posted.push(message) })
    onTestFinished(() => post.mockRestore())
    const server = await startSignaling()
    const l = link(uniqueRoom(), { signaling: [server.url], peerOpts: {}, identity: createIdentity(), ...(password === undefined ? {} : { password }) })
    await l.ready
    if (!l.sources.some((s) => s.connected)) await once(l, 'signaling')
    await once(l, 'count')
    await l.leave()
    expect(posted).toEqual([])
  })
})

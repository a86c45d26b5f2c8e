/**
 * Helpers for the lock tests: signed lock frames for raw test clients (as a peer would send them),
 * a WebSocket transport for ArbiterClient that subscribes to the room first (the arbiter only
 * serves subscribers) and can be cut or closed, and an in-process transport straight into a
 * LockService, for tests that drive time with fake timers.
 */

import { onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { ArbiterClient, type ArbiterClientOptions } from '../../src/locks/arbiter-client.js'
import { requestPayload, type LockOp } from '../../src/locks/wire.js'
import { createIdentity, type Identity } from '../../src/trust/identity.js'
import type { LockConnection, LockService } from '../../signaling/lock-service.js'
import { toClientMessage } from '../../signaling/protocol.js'
import type { ServerMessage } from '../../signaling/protocol.js'
import type { TestClient } from './signaling.js'
import { waitFor, withTimeout } from './wait.js'

export type LockResult = Extract<ServerMessage, { type: 'lock-result' }>
export type LockEventFrame = Extract<ServerMessage, { type: 'lock-event' }>

let nextId = 1

export interface SignedFields {
  op: LockOp
  room: string
  key: string
  nonce: string
  seq: number
  ttl?: number
  fencing?: number
  token?: string
  id?: number
}

/** A lock frame signed by `identity`, as the client sends it. */
export const signedFrame = async (identity: Identity, fields: SignedFields): Promise<Record<string, unknown> & { id: number }> => {
  const { op, room, key, nonce, seq, ttl, fencing, token } = fields
  const jws = await identity.sign({ ...requestPayload({ op, room, key, nonce, seq, ...(ttl === undefined ? {} : { ttl }), ...(fencing === undefined ? {} : { fencing }) }) })
  const frame: Record<string, unknown> & { id: number } = { type: 'lock', op, id: fields.id ?? nextId++, room, key, peer: identity.id, jws }
  if (ttl !== undefined) frame.ttl = ttl
  if (fencing !== undefined) frame.fencing = fencing
  if (token !== undefined) frame.token = token
  return frame
}

/** Matches the lock-result answering request `id`. */
export const resultOf = (id: number) => (message: ServerMessage): boolean => message.type === 'lock-result' && message.id === id

/** Matches a lock-event of `event` (for `key`, when given). */
export const lockEvent = (event: string, key?: string) => (message: ServerMessage): boolean =>
  message.type === 'lock-event' && message.event === event && (key === undefined || ('key' in message && message.key === key))

/** A raw test client that speaks the lock protocol for one identity in one room. */
export interface LockPeer {
  readonly client: TestClient
  readonly identity: Identity
  readonly room: string
  nonce: string
  serverKey: unknown
  /** Sends a signed request with the next seq and resolves with its answer. */
  request: (op: LockOp, key: string, fields?: { ttl?: number, fencing?: number, token?: string }) => Promise<LockResult>
  /** Sends any frame with an id and resolves with its answer. */
  ask: (frame: Record<string, unknown> & { id: number }) => Promise<LockResult>
}

/** Subscribes `client` to `room`, watches it, and returns a peer to send signed requests with. */
export const lockPeer = async (client: TestClient, room: string, identity?: Identity): Promise<LockPeer> => {
  const id = identity ?? await createIdentity()
  await client.subscribe(room)
  const watchId = nextId++
  client.send({ type: 'lock', op: 'watch', id: watchId, room })
  const watched = await client.next(resultOf(watchId)) as LockResult
  if (!watched.ok || !('nonce' in watched)) throw new Error(`watch refused: ${JSON.stringify(watched)}`)
  let seq = 0
  const peer: LockPeer = {
    client,
    identity: id,
    room,
    nonce: watched.nonce,
    serverKey: watched.serverKey,
    ask: async (frame) => {
      client.send(frame)
      return await client.next(resultOf(frame.id), 10_000) as LockResult
    },
    request: async (op, key, fields = {}) => await peer.ask(await signedFrame(id, { op, room, key, nonce: peer.nonce, seq: ++seq, ...fields }))
  }
  return peer
}

/** A transport over a real WebSocket that subscribes to `room` when it opens; `cut` ends it without a close frame. */
export interface WsTransport extends Pick<ArbiterClientOptions, 'send' | 'onFrame' | 'onStatus' | 'connected'> {
  readonly ws: WebSocket
  readonly opened: Promise<void>
  /** Frames the server sent, in order. */
  readonly frames: unknown[]
  cut: () => void
  close: () => Promise<void>
}

export const wsTransport = (url: string, room: string): WsTransport => {
  const ws = new WebSocket(url)
  onTestFinished(() => ws.terminate())
  ws.on('error', () => {})
  const frameListeners = new Set<(frame: unknown) => void>()
  const statusListeners = new Set<(connected: boolean) => void>()
  const frames: unknown[] = []
  ws.on('message', (data) => {
    const frame: unknown = JSON.parse(String(data))
    frames.push(frame)
    for (const listener of frameListeners) listener(frame)
  })
  const opened = new Promise<void>((resolve) => ws.once('open', () => {
    ws.send(JSON.stringify({ type: 'subscribe', topics: [room] }))
    for (const listener of statusListeners) listener(true)
    resolve()
  }))
  ws.once('close', () => { for (const listener of statusListeners) listener(false) })
  return {
    ws,
    opened,
    frames,
    connected: false,
    send: (frame) => {
      if (ws.readyState !== WebSocket.OPEN) throw new Error('not connected')
      ws.send(JSON.stringify(frame))
    },
    onFrame: (listener) => {
      frameListeners.add(listener)
      return () => frameListeners.delete(listener)
    },
    onStatus: (listener) => {
      statusListeners.add(listener)
      return () => statusListeners.delete(listener)
    },
    cut: () => ws.terminate(),
    close: async () => {
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()))
      ws.close()
      await withTimeout(closed, 5_000, 'the transport to close')
    }
  }
}

/** An ArbiterClient over a fresh WebSocket to `url`, in `room`; destroyed when the test ends. */
export const startLockClient = async (url: string, room: string, options: Partial<ArbiterClientOptions> = {}): Promise<{ client: ArbiterClient, transport: WsTransport, identity: Identity }> => {
  const identity = options.identity ?? await createIdentity()
  const transport = wsTransport(url, room)
  const client = new ArbiterClient({ ...transport, identity, room, ...options })
  onTestFinished(() => client.destroy())
  return { client, transport, identity }
}

/** Resolves once `client` has its session with the arbiter (its watch was answered). */
export const ready = async (client: ArbiterClient, timeout = 10_000): Promise<void> => {
  await waitFor(() => client.ready, { timeout, interval: 5, what: 'the lock client to get a session' })
}

/**
 * A transport straight into a LockService, with no socket: frames go through the same guard as on
 * the wire. `subscribed` is what the connection says it is subscribed to; `connect`/`disconnect`
 * (with `clean`) play the socket's life.
 */
export interface DirectTransport extends Pick<ArbiterClientOptions, 'send' | 'onFrame' | 'onStatus' | 'connected'> {
  /** The connection the service sees now, or null. */
  connection: () => LockConnection | null
  readonly frames: unknown[]
  connect: () => void
  disconnect: (clean: boolean) => void
}

let nextConnection = 1

export const directTransport = (service: LockService, room: string): DirectTransport => {
  const frameListeners = new Set<(frame: unknown) => void>()
  const statusListeners = new Set<(connected: boolean) => void>()
  const frames: unknown[] = []
  let connection: LockConnection | null = null
  let open = false
  const makeConnection = (): LockConnection => {
    const id = nextConnection++
    const self: LockConnection = {
      id,
      deliver: (frame) => {
        if (connection !== self) return false
        const value: unknown = JSON.parse(frame.toString())
        frames.push(value)
        // Asynchronously, as a socket would.
        queueMicrotask(() => { if (connection === self) for (const listener of frameListeners) listener(value) })
        return true
      },
      subscribes: (topic) => connection === self && topic === room
    }
    return self
  }
  const transport: DirectTransport = {
    connection: () => connection,
    frames,
    connected: false,
    send: (frame) => {
      const current = connection
      if (!open || current === null) throw new Error('not connected')
      const message = toClientMessage(JSON.parse(JSON.stringify(frame)))
      queueMicrotask(() => {
        if (message !== null && message.type === 'lock' && connection === current) service.handle(current, message)
      })
    },
    onFrame: (listener) => {
      frameListeners.add(listener)
      return () => frameListeners.delete(listener)
    },
    onStatus: (listener) => {
      statusListeners.add(listener)
      return () => statusListeners.delete(listener)
    },
    connect: () => {
      connection = makeConnection()
      open = true
      for (const listener of statusListeners) listener(true)
    },
    disconnect: (clean) => {
      const current = connection
      connection = null
      open = false
      if (current !== null) service.released(current, clean)
      for (const listener of statusListeners) listener(false)
    }
  }
  return transport
}

/**
 * The client side of TURN credentials from the signaling server (src/transport/turn.ts): the
 * untrusted `turn` message becomes RTCIceServers or null, grants expire by this peer's clock, and
 * the config handed to simple-peer reads the current ones each time a connection is made.
 */
import { describe, expect, it } from 'vitest'
import { activeIceServers, followTurnCredentials, grantOf, parseTurnMessage, withSignalingIceServers, MAX_FIELD_LENGTH } from '../src/transport/turn.js'

const NOW = 1_767_225_600_000
const server = { urls: ['turn:turn.example.com:3478'], username: '1767229200:u', credential: 'c2VjcmV0' }
const message = (fields: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ type: 'turn', iceServers: [server], ttl: 3600, expiresAt: NOW + 3_600_000, ...fields })

/** A y-webrtc SignalingConn as far as the module uses it: 'message' listeners. */
const fakeConn = (): { on: (name: 'message', fn: (m: unknown) => void) => void, emit: (m: unknown) => void, listeners: number } => {
  const fns: Array<(m: unknown) => void> = []
  return {
    on: (_name, fn) => { fns.push(fn) },
    emit: (m) => { for (const fn of fns) fn(m) },
    get listeners () { return fns.length }
  }
}

describe('parseTurnMessage', () => {
  it('turns a well-formed message into ICE servers that expire ttl seconds after receipt', () => {
    expect(parseTurnMessage(message(), NOW)).toEqual({ iceServers: [server], expiresAt: NOW + 3_600_000 })
    // The server's clock is not this peer's: ttl decides, expiresAt is not read.
    expect(parseTurnMessage(message({ expiresAt: 0 }), NOW)?.expiresAt).toBe(NOW + 3_600_000)
    // A single URL string is normalised; STUN servers without credentials are fine.
    expect(parseTurnMessage(message({ iceServers: [{ urls: 'stun:stun.example.com' }] }), NOW)?.iceServers).toEqual([{ urls: ['stun:stun.example.com'] }])
  })

  it('returns null for anything else, never throws', () => {
    const long = 'x'.repeat(MAX_FIELD_LENGTH + 1)
    const bad: unknown[] = [
      null, 7, 'turn', [], {},
      message({ type: 'publish' }),
      message({ iceServers: undefined }),
      message({ iceServers: [] }),
      message({ iceServers: Array(9).fill(server) }),
      message({ iceServers: [null] }),
      message({ iceServers: [{ ...server, urls: [] }] }),
      message({ iceServers: [{ ...server, urls: ['http://turn.example.com'] }] }),
      message({ iceServers: [{ ...server, urls: ['javascript:alert(1)'] }] }),
      message({ iceServers: [{ ...server, urls: ['turn:a b'] }] }),
      message({ iceServers: [{ ...server, urls: Array(9).fill('turn:a') }] }),
      message({ iceServers: [{ ...server, urls: [`turn:${long}`] }] }),
      message({ iceServers: [{ ...server, username: 42 }] }),
      message({ iceServers: [{ ...server, credential: { x: 1 } }] }),
      message({ iceServers: [{ ...server, credential: long }] }),
      message({ ttl: 0 }),
      message({ ttl: -5 }),
      message({ ttl: Number.NaN }),
      message({ ttl: '3600' }),
      message({ ttl: undefined })
    ]
    for (const input of bad) expect(parseTurnMessage(input, NOW), JSON.stringify(input)).toBeNull()
  })
})

describe('grants per signaling connection', () => {
  it('keeps the latest valid grant, ignores malformed messages, listens once per connection', () => {
    const conn = fakeConn()
    followTurnCredentials(conn)
    followTurnCredentials(conn)
    expect(conn.listeners).toBe(1)
    expect(grantOf(conn)).toBeUndefined()
    conn.emit({ type: 'publish', topic: 'room', data: {}, clients: 1 })
    conn.emit(message())
    expect(grantOf(conn)?.iceServers).toEqual([server])
    conn.emit(message({ iceServers: [{ urls: 'http://evil' }] }))
    expect(grantOf(conn)?.iceServers).toEqual([server])
    const renewed = { ...server, username: '1767232800:u' }
    conn.emit(message({ iceServers: [renewed] }))
    expect(grantOf(conn)?.iceServers).toEqual([renewed])
  })

  it('activeIceServers leaves out expired grants', () => {
    const live = { iceServers: [server], expiresAt: NOW + 1 }
    const dead = { iceServers: [{ urls: ['turn:old'] }], expiresAt: NOW }
    expect(activeIceServers([dead, undefined, live], NOW)).toEqual([server])
  })
})

describe('withSignalingIceServers', () => {
  it('reads the servers at each use, the app\'s own first, as simple-peer copies its config', () => {
    const own = { urls: 'stun:own.example.com' }
    const conn = fakeConn()
    followTurnCredentials(conn)
    let now = NOW
    const config = withSignalingIceServers({ iceServers: [own], iceTransportPolicy: 'all' }, () => [conn], () => now)
    // simple-peer: this.config = Object.assign({}, Peer.config, opts.config)
    const copy = (): RTCConfiguration => Object.assign({}, { iceServers: [{ urls: 'stun:default' }] }, config)
    expect(copy()).toEqual({ iceServers: [own], iceTransportPolicy: 'all' })
    conn.emit(message())
    now = Date.now()
    expect(copy().iceServers).toEqual([own, server])
    now += 3_600_001
    expect(copy().iceServers).toEqual([own])
  })

  it('without an app config it replaces simple-peer\'s default servers with the signaled ones only', () => {
    const conn = fakeConn()
    followTurnCredentials(conn)
    conn.emit(message())
    expect(Object.assign({}, { iceServers: [{ urls: 'stun:default' }] }, withSignalingIceServers(undefined, () => [conn])).iceServers).toEqual([server])
  })
})

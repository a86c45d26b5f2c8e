/**
 * TURN credentials from the signaling server (signaling/turn.ts): coturn's REST API scheme, the
 * option's validation, and the `turn` message each connection receives, renewed before expiry.
 */
import { describe, expect, it } from 'vitest'
import { createSignalingServer, createToken } from '../signaling/index.js'
import { DEFAULT_TURN_TTL, resolveTurnOptions, turnCredential, turnMessage, type TurnMessage, type TurnOptions } from '../signaling/turn.js'
import { connect, startServer } from './helpers/signaling.js'

const SECRET = 'correct-horse-battery-staple'
const URLS = ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349?transport=tcp']

const isTurn = (message: { type: string }): boolean => message.type === 'turn'

/** base64(HMAC-SHA1(secret, username)) by WebCrypto, a second implementation to check against. */
const webCryptoCredential = async (secret: string, username: string): Promise<string> => {
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-1' }, false, ['sign'])
  return Buffer.from(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(username))).toString('base64')
}

describe('TURN credentials (coturn use-auth-secret)', () => {
  it('username EXPIRY:USER and password base64(HMAC-SHA1(secret, username))', async () => {
    // Vector from `echo -n 1767225600:ada | openssl dgst -sha1 -hmac correct-horse-battery-staple -binary | base64`.
    expect(turnCredential(SECRET, 'ada', 1767225600)).toEqual({ username: '1767225600:ada', credential: 'zUZR4EzrC7/FnyZovzsXw6C58vI=' })
    const { username, credential } = turnCredential(SECRET, 'bob-42', 1800000000)
    expect(credential).toBe(await webCryptoCredential(SECRET, username))
  })

  it('a message carries the URLs, the lifetime in seconds and the expiry; a cap shortens it', () => {
    const settings = { secret: SECRET, urls: URLS, ttl: 600 }
    const now = Date.UTC(2026, 0, 1, 12, 0, 0, 250)
    const message = turnMessage(settings, 'u', now) as TurnMessage
    const expiry = Math.floor(now / 1000) + 600
    expect(message).toEqual({ type: 'turn', iceServers: [{ urls: URLS, ...turnCredential(SECRET, 'u', expiry) }], ttl: 600, expiresAt: expiry * 1000 })
    // An access token expiring in 90 s caps the credential's lifetime.
    expect(turnMessage(settings, 'u', now, now + 90_000)).toMatchObject({ ttl: 90, expiresAt: (Math.floor(now / 1000) + 90) * 1000 })
    expect(turnMessage(settings, 'u', now, now + 500)).toBeNull()
  })

  it('validates the option, with 3600 s by default', async () => {
    expect(resolveTurnOptions(undefined)).toBeNull()
    expect(resolveTurnOptions({ secret: SECRET, urls: URLS })).toEqual({ secret: SECRET, urls: URLS, ttl: DEFAULT_TURN_TTL })
    expect(DEFAULT_TURN_TTL).toBe(3600)
    const bad: Array<[unknown, string]> = [
      [{ urls: URLS }, 'INVALID_OPTION'],
      [{ secret: 'short', urls: URLS }, 'WEAK_SECRET'],
      [{ secret: SECRET, urls: [] }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: ['https://turn.example.com'] }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: ['turn:has space'] }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: Array(9).fill('turn:a') }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: 'turn:a' }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: URLS, ttl: 0 }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: URLS, ttl: 1.5 }, 'INVALID_OPTION'],
      [{ secret: SECRET, urls: URLS, ttl: 8 * 86400 }, 'INVALID_OPTION'],
      [null, 'INVALID_OPTION']
    ]
    for (const [turn, code] of bad) expect(() => resolveTurnOptions(turn as TurnOptions), JSON.stringify(turn)).toThrow(expect.objectContaining({ code }))
    await expect(createSignalingServer({ port: 0, turn: { secret: 'short', urls: URLS } })).rejects.toMatchObject({ code: 'WEAK_SECRET' })
  })
})

describe('the turn message on the wire', () => {
  it('each connection gets its own credentials first thing, valid for ttl', async () => {
    const server = await startServer({ turn: { secret: SECRET, urls: URLS, ttl: 600 } })
    const [a, b] = [await connect(server.url), await connect(server.url)]
    const [ma, mb] = [await a.next(isTurn) as TurnMessage, await b.next(isTurn) as TurnMessage]
    for (const message of [ma, mb]) {
      expect(message.ttl).toBe(600)
      expect(Math.abs(message.expiresAt - (Date.now() + 600_000))).toBeLessThan(2_000)
      const [server] = message.iceServers
      expect(server?.urls).toEqual(URLS)
      expect(server?.username).toMatch(new RegExp(`^${message.expiresAt / 1000}:[\\w-]+$`))
      expect(server?.credential).toBe(await webCryptoCredential(SECRET, server?.username as string))
    }
    expect(ma.iceServers[0]?.username).not.toBe(mb.iceServers[0]?.username)
    // Nothing else changed: the client still subscribes, publishes and pings as before.
    await a.subscribe('room')
    await a.roundTrip()
  })

  it('sends fresh credentials when half the lifetime has passed', async () => {
    const server = await startServer({ turn: { secret: SECRET, urls: URLS, ttl: 2 } })
    const client = await connect(server.url)
    const first = await client.next(isTurn) as TurnMessage
    const second = await client.next(isTurn, 5_000) as TurnMessage
    expect(second.expiresAt).toBeGreaterThan(first.expiresAt)
    expect(second.iceServers[0]?.username).not.toBe(first.iceServers[0]?.username)
    expect(server.stats().rejections).toMatchObject({ malformed: 0 })
  })

  it('with access tokens, credentials never outlive the token that admitted the client', async () => {
    const authSecret = 'x'.repeat(32)
    const server = await startServer({ authSecret, turn: { secret: SECRET, urls: URLS, ttl: 3600 } })
    const token = await createToken({ secret: authSecret, rooms: ['room'], expiresIn: 120 })
    const client = await connect(`${server.url}/?token=${token}`)
    const message = await client.next(isTurn) as TurnMessage
    expect(message.ttl).toBeLessThanOrEqual(120)
    expect(message.ttl).toBeGreaterThan(110)
    expect(server.stats().connections).toBe(1)
  })

  it('without the option no turn message is sent', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    await client.roundTrip()
    expect(client.inbox.filter(isTurn)).toEqual([])
  })
})

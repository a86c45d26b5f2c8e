import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, UnsecuredJWT, importJWK, type JWK } from 'jose'
import { describe, expect, it, onTestFinished } from 'vitest'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { createAccessCheck, isTopicAllowed, roomTokenGrant, secretKey, tokenFromUrl, verifyToken } from '../signaling/auth.js'
import { CloseCode, createSignalingServer, createToken } from '../signaling/index.js'
import { connect, httpGet, refusedClose, refusedStatus, startServer } from './helpers/signaling.js'
import { withTimeout } from './helpers/wait.js'

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256'
const KEY = secretKey(SECRET)
const now = (): number => Math.floor(Date.now() / 1000)

const sign = async (payload: Record<string, unknown>, secret = SECRET): Promise<string> =>
  await new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret))

describe('tokens', () => {
  it('round-trips rooms and expiry through createToken and verifyToken', async () => {
    const token = await createToken({ secret: SECRET, rooms: ['lobby', 'team-42/*'], expiresIn: 60 })
    const grant = await verifyToken(token, KEY)
    expect(grant).not.toBeNull()
    expect([...grant!.exact]).toEqual(['lobby'])
    expect(grant!.prefixes).toEqual(['team-42/'])
    expect(grant!.expiresAt).toBeGreaterThan(Date.now() + 55_000)
    expect(grant!.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000)
  })

  it('accepts a jose time span and a Uint8Array secret', async () => {
    const secret = new Uint8Array(32).fill(7)
    const grant = await verifyToken(await createToken({ secret, rooms: ['a'], expiresIn: '2h' }), secret)
    expect(grant!.expiresAt).toBeGreaterThan(Date.now() + 7_000_000)
  })

  it('matches exact rooms, trailing-* prefixes and a lone *', async () => {
    const grant = (await verifyToken(await createToken({ secret: SECRET, rooms: ['lobby', 'team-*', 'a*b'] }), KEY))!
    expect(isTopicAllowed(grant, 'lobby')).toBe(true)
    expect(isTopicAllowed(grant, 'lobby2')).toBe(false)
    expect(isTopicAllowed(grant, 'team-')).toBe(true)
    expect(isTopicAllowed(grant, 'team-red')).toBe(true)
    expect(isTopicAllowed(grant, 'team')).toBe(false)
    expect(isTopicAllowed(grant, 'a*b')).toBe(true)
    expect(isTopicAllowed(grant, 'axb')).toBe(false)
    const all = (await verifyToken(await createToken({ secret: SECRET, rooms: ['*'] }), KEY))!
    expect(isTopicAllowed(all, 'anything')).toBe(true)
  })

  it('refuses weak secrets and bad arguments with a stable code', async () => {
    await expect(createToken({ secret: 'short', rooms: ['a'] })).rejects.toMatchObject({ code: 'WEAK_SECRET' })
    await expect(createToken({ secret: SECRET, rooms: 'a' as unknown as string[] })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(createToken({ secret: SECRET, rooms: [''] })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(createToken({ secret: SECRET, rooms: ['a'], expiresIn: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(createSignalingServer({ port: 0, authSecret: 'short' })).rejects.toMatchObject({ code: 'WEAK_SECRET' })
  })

  it.each([
    ['signed with another secret', async () => await createToken({ secret: `${SECRET}-other`, rooms: ['a'] })],
    ['expired', async () => await sign({ rooms: ['a'], exp: now() - 10 })],
    ['without exp', async () => await sign({ rooms: ['a'] })],
    ['without rooms', async () => await sign({ exp: now() + 60 })],
    ['with rooms not an array', async () => await sign({ rooms: 'a', exp: now() + 60 })],
    ['with a non-string room', async () => await sign({ rooms: ['a', 1], exp: now() + 60 })],
    ['unsigned (alg none)', async () => new UnsecuredJWT({ rooms: ['a'] }).setExpirationTime('1h').encode()],
    ['not a JWT', async () => 'not.a.jwt'],
    ['empty', async () => '']
  ])('verifyToken returns null for a token %s', async (_name, make) => {
    expect(await verifyToken(await make(), KEY)).toBeNull()
  })

  it('reads the token from the upgrade URL', () => {
    expect(tokenFromUrl('/?token=abc')).toBe('abc')
    expect(tokenFromUrl('/room?x=1&token=a%2Bb')).toBe('a+b')
    expect(tokenFromUrl('/')).toBeNull()
    expect(tokenFromUrl(undefined)).toBeNull()
  })
})

describe('access control on a server', () => {
  it('accepts a valid token and confines the connection to its rooms', async () => {
    const server = await startServer({ authSecret: SECRET })
    const token = await createToken({ secret: SECRET, rooms: ['lobby', 'team-*'] })
    const client = await connect(`${server.url}/?token=${token}`)
    await client.subscribe('lobby', 'team-red', 'secret-room')
    expect(server.stats()).toMatchObject({ topics: 2, subscriptions: 2 })
    expect(server.stats().rejections.forbidden_topic).toBe(1)

    client.publish('secret-room', 'sneaky')
    client.publish('team-red', 'hello')
    expect(await client.next((m) => m.type === 'publish')).toMatchObject({ topic: 'team-red', data: 'hello', clients: 1 })
    expect(server.stats().rejections.forbidden_topic).toBe(2)
  })

  it.each([
    ['missing', async (): Promise<string> => ''],
    ['expired', async () => `?token=${await sign({ rooms: ['a'], exp: now() - 10 })}`],
    ['signed with another secret', async () => `?token=${await createToken({ secret: `${SECRET}-other`, rooms: ['a'] })}`],
    ['garbage', async () => '?token=garbage']
  ])('accepts the upgrade and closes it at once with 4401 unauthorized when the token is %s', async (_name, query) => {
    const server = await startServer({ authSecret: SECRET })
    const refused = await refusedClose(`${server.url}/${await query()}`)
    expect(refused).toEqual({ code: CloseCode.Unauthorized, reason: 'unauthorized', received: [] })
    expect(server.stats()).toMatchObject({ connections: 0 })
    expect(server.stats().rejections.unauthorized).toBe(1)
  })

  it('tells the client which topic its token does not cover, in an error frame', async () => {
    const server = await startServer({ authSecret: SECRET })
    const client = await connect(`${server.url}/?token=${await createToken({ secret: SECRET, rooms: ['lobby'] })}`)
    await client.subscribe('lobby', 'secret-room')
    expect(await client.next((m) => m.type === 'error')).toEqual({ type: 'error', code: 'forbidden_topic', topic: 'secret-room' })
    client.publish('other-room', 'sneaky')
    expect(await client.next((m) => m.type === 'error')).toEqual({ type: 'error', code: 'forbidden_topic', topic: 'other-room' })
    client.publish('lobby', 'hello')
    expect(await client.next((m) => m.type === 'publish')).toMatchObject({ topic: 'lobby', clients: 1 })
    expect(server.stats().rejections.forbidden_topic).toBe(2)
  })

  it('sends error frames within a small budget, so they cannot amplify what a client sends', async () => {
    const server = await startServer({ authSecret: SECRET })
    const client = await connect(`${server.url}/?token=${await createToken({ secret: SECRET, rooms: ['lobby'] })}`)
    await client.subscribe(...Array.from({ length: 100 }, (_, i) => `forbidden-${i}`))
    for (let i = 0; i < 50; i++) client.publish(`forbidden-${i}`, i)
    await client.roundTrip()
    expect(server.stats().rejections.forbidden_topic).toBe(150)
    const errors = client.inbox.filter((m) => m.type === 'error')
    expect(errors.length).toBeGreaterThanOrEqual(10)
    expect(errors.length).toBeLessThanOrEqual(12)
  })

  it('never writes a token or a query string to the log', async () => {
    const lines: string[] = []
    const record = (level: string) => (obj: object, msg?: string) => {
      lines.push(JSON.stringify([level, msg, obj], (_key, value: unknown) =>
        value instanceof Error ? { ...value, message: value.message, stack: value.stack } : value))
    }
    const logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
    const server = await startServer({ authSecret: SECRET, logger, maxConnectionsPerAddress: 3, connectionsPerSecondPerAddress: 1000 })
    const tokens = [
      'garbage-token-value',
      await sign({ rooms: ['a'], exp: now() - 10 }),
      await createToken({ secret: `${SECRET}-other`, rooms: ['a'] }),
      await sign({ rooms: 'a', exp: now() + 60 })
    ]
    for (const token of tokens) expect((await refusedClose(`${server.url}/room?token=${token}&x=1`)).code).toBe(CloseCode.Unauthorized)
    const valid = await createToken({ secret: SECRET, rooms: ['a'] })
    const client = await connect(`${server.url}/?token=${valid}`)
    await client.subscribe('a', 'b')
    client.sendRaw('not json')
    await client.roundTrip()
    const crowd = await Promise.all([0, 1].map(async () => await connect(`${server.url}/?token=${valid}`)))
    expect(await refusedStatus(`${server.url}/?token=${valid}`)).toBe(429)
    await httpGet(server, `/healthz?token=${valid}`)
    await httpGet(server, `/nowhere?token=${valid}`)
    for (const c of [client, ...crowd]) await c.close()
    await server.close()

    expect(lines.length).toBeGreaterThan(5)
    const log = lines.join('\n')
    for (const token of [...tokens, valid]) expect(log).not.toContain(token)
    expect(log).not.toContain('token=')
    expect(log).not.toContain('x=1')
  })

  it('closes a connection with 4401 when its token expires', async () => {
    const server = await startServer({ authSecret: SECRET })
    const token = await createToken({ secret: SECRET, rooms: ['a'], expiresIn: 2 })
    const client = await connect(`${server.url}/?token=${token}`)
    await client.subscribe('a')
    const closed = await withTimeout(client.closed, 5_000, 'the expiry close')
    expect(closed.code).toBe(CloseCode.TokenExpired)
    expect(server.stats()).toMatchObject({ connections: 0, topics: 0 })
    expect(server.stats().rejections.token_expired).toBe(1)
  })

  it('needs no token when authSecret is not set, and ignores one that is given', async () => {
    const server = await startServer()
    const client = await connect(`${server.url}/?token=whatever`)
    await client.subscribe('any-room')
    expect(server.stats().subscriptions).toBe(1)
  })
})

const issuer = await generateIssuerKeys()
const otherIssuer = await generateIssuerKeys({ alg: 'ES256' })
/** A peer's session key: only its public half goes into a token (cnf.jwk). */
const peerKey = (await generateIssuerKeys()).publicKey

const roomToken = async (room: string, { keys = issuer, expiresIn = 60 }: { keys?: typeof issuer, expiresIn?: number } = {}): Promise<string> =>
  await createRoomToken({ privateKey: keys.privateKey, room, user: 'ada', write: ['*'], peerKey, expiresIn })

/** A room token with claims as given, signed by the issuer (for times createRoomToken will not make). */
const signRoomToken = async (claims: Record<string, unknown>): Promise<string> =>
  await new SignJWT({ room: 'lobby', write: [], cnf: { jwk: peerKey }, sub: 'ada', ...claims })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .sign(await importJWK(issuer.privateKey, 'EdDSA'))

describe('room tokens for access', () => {
  it('turns a room claim into a grant of that room, or of that prefix, until exp', async () => {
    const check = createAccessCheck({ secret: null, issuers: [issuer.publicKey] })!
    const exact = (await check(await roomToken('lobby')))!
    expect([...exact.exact]).toEqual(['lobby'])
    expect(exact.prefixes).toEqual([])
    expect(exact.expiresAt).toBeGreaterThan(Date.now() + 55_000)
    const prefix = (await check(await roomToken('team-42/*')))!
    expect(isTopicAllowed(prefix, 'team-42/board')).toBe(true)
    expect(isTopicAllowed(prefix, 'team-43/board')).toBe(false)
    expect(isTopicAllowed((await check(await roomToken('*')))!, 'anything')).toBe(true)
  })

  it('judges a room token by the clock it is given: unusable from exp, and before iat (beyond the skew)', () => {
    const claims = { user: 'ada', room: 'lobby', write: [], peerId: 'x', issuedAt: 100_000, expiresAt: 200_000 }
    expect(roomTokenGrant(claims, 150_000)).not.toBeNull()
    expect(roomTokenGrant(claims, 100_000 - 60_000)).not.toBeNull()
    expect(roomTokenGrant(claims, 100_000 - 60_001)).toBeNull()
    expect(roomTokenGrant(claims, 199_999)).not.toBeNull()
    expect(roomTokenGrant(claims, 200_000)).toBeNull()
  })

  it.each([
    ['expired', async () => await signRoomToken({ iat: now() - 120, exp: now() - 10 })],
    ['issued in the future', async () => await signRoomToken({ iat: now() + 600, exp: now() + 1200 })],
    ['without cnf', async () => await signRoomToken({ cnf: undefined, iat: now(), exp: now() + 60 })],
    ['of another issuer', async () => await roomToken('lobby', { keys: otherIssuer })],
    ['HS256 with no authSecret configured', async () => await createToken({ secret: SECRET, rooms: ['lobby'] })],
    ['unsigned (alg none)', async () => new UnsecuredJWT({ room: 'lobby' }).setExpirationTime('1h').encode()],
    ['garbage', async () => 'garbage']
  ])('the check refuses a token %s', async (_name, make) => {
    const check = createAccessCheck({ secret: null, issuers: [issuer.publicKey] })!
    expect(await check(await make())).toBeNull()
    // The same claims with usable times pass: what was refused is the claim that differs.
    expect(await check(await signRoomToken({ iat: now(), exp: now() + 60 }))).not.toBeNull()
  })

  it('needs no token when neither a secret nor an issuer is configured', () => {
    expect(createAccessCheck({ secret: null, issuers: [] })).toBeNull()
  })

  it('with issuerKey, a valid room token opens its room and only its room', async () => {
    const server = await startServer({ issuerKey: issuer.publicKey })
    const client = await connect(`${server.url}/?token=${await roomToken('lobby')}`)
    await client.subscribe('lobby', 'secret-room')
    expect(await client.next((m) => m.type === 'error')).toEqual({ type: 'error', code: 'forbidden_topic', topic: 'secret-room' })
    client.publish('lobby', 'hello')
    expect(await client.next((m) => m.type === 'publish')).toMatchObject({ topic: 'lobby', data: 'hello', clients: 1 })
    expect(server.stats()).toMatchObject({ topics: 1, subscriptions: 1 })
    expect(server.stats().rejections.forbidden_topic).toBe(1)
  })

  it.each([
    ['missing', async (): Promise<string> => ''],
    ['expired', async () => `?token=${await signRoomToken({ iat: now() - 120, exp: now() - 10 })}`],
    ['of another issuer', async () => `?token=${await roomToken('lobby', { keys: otherIssuer })}`],
    ['an HS256 token while no authSecret is set', async () => `?token=${await createToken({ secret: SECRET, rooms: ['lobby'] })}`]
  ])('with issuerKey, closes the connection at once with 4401 when the token is %s', async (_name, query) => {
    const server = await startServer({ issuerKey: issuer.publicKey })
    expect(await refusedClose(`${server.url}/${await query()}`)).toEqual({ code: CloseCode.Unauthorized, reason: 'unauthorized', received: [] })
    expect(server.stats().rejections.unauthorized).toBe(1)
  })

  it('a room token of another room is refused topic by topic, as an HS256 token\'s other rooms are', async () => {
    const server = await startServer({ issuerKey: issuer.publicKey })
    const client = await connect(`${server.url}/?token=${await roomToken('team-red')}`)
    await client.subscribe('team-blue')
    expect(await client.next((m) => m.type === 'error')).toEqual({ type: 'error', code: 'forbidden_topic', topic: 'team-blue' })
    expect(server.stats()).toMatchObject({ topics: 0, subscriptions: 0 })
  })

  it('with authSecret and issuerKey, either kind of token opens its rooms', async () => {
    const server = await startServer({ authSecret: SECRET, issuerKey: issuer.publicKey })
    const byRoomToken = await connect(`${server.url}/?token=${await roomToken('lobby')}`)
    const byHs256 = await connect(`${server.url}/?token=${await createToken({ secret: SECRET, rooms: ['lobby', 'ops'] })}`)
    await byRoomToken.subscribe('lobby')
    await byHs256.subscribe('lobby', 'ops')
    byHs256.publish('lobby', 'hi')
    expect(await byRoomToken.next((m) => m.type === 'publish')).toMatchObject({ topic: 'lobby', data: 'hi', clients: 2 })
    expect(server.stats()).toMatchObject({ connections: 2, subscriptions: 3 })
    for (const token of [await roomToken('lobby', { keys: otherIssuer }), await createToken({ secret: `${SECRET}-other`, rooms: ['lobby'] })]) {
      expect((await refusedClose(`${server.url}/?token=${token}`)).code).toBe(CloseCode.Unauthorized)
    }
  })

  it('without issuerKey, a room token is refused as any other unknown token', async () => {
    const server = await startServer({ authSecret: SECRET })
    expect((await refusedClose(`${server.url}/?token=${await roomToken('lobby')}`)).code).toBe(CloseCode.Unauthorized)
  })

  it('closes a room token\'s connection with 4401 when it expires', async () => {
    const server = await startServer({ issuerKey: issuer.publicKey })
    const client = await connect(`${server.url}/?token=${await roomToken('lobby', { expiresIn: 2 })}`)
    await client.subscribe('lobby')
    const closed = await withTimeout(client.closed, 5_000, 'the expiry close')
    expect(closed).toEqual({ code: CloseCode.TokenExpired, reason: 'token expired' })
    expect(server.stats().rejections.token_expired).toBe(1)
  })

  it('fetches the issuer key from a JWKS URL', async () => {
    const jwks = JSON.stringify({ keys: [{ ...issuer.publicKey, alg: 'EdDSA', use: 'sig' }] })
    const http = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(jwks))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    onTestFinished(async () => { await new Promise((resolve) => http.close(resolve)) })
    const server = await startServer({ issuerKey: { jwksUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}/jwks.json` } })
    const client = await connect(`${server.url}/?token=${await roomToken('lobby')}`)
    await client.subscribe('lobby')
    expect(server.stats().subscriptions).toBe(1)
    expect((await refusedClose(`${server.url}/?token=${await roomToken('lobby', { keys: otherIssuer })}`)).code).toBe(CloseCode.Unauthorized)
  })

  it.each([
    ['a private key', issuer.privateKey],
    ['an RSA key', { kty: 'RSA', n: 'x', e: 'AQAB' }],
    ['a JWK without x', { kty: 'OKP', crv: 'Ed25519' }],
    ['a JWKS URL that is not http(s)', { jwksUrl: 'file:///etc/jwks.json' }],
    ['a string', 'not a key']
  ])('refuses issuerKey %s with INVALID_OPTION', async (_name, issuerKey) => {
    await expect(createSignalingServer({ port: 0, issuerKey: issuerKey as JWK })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
  })
})

import type { JWK } from 'jose'
import { describe, expect, it } from 'vitest'
import { generateIssuerKeys } from '../src/auth.js'
import { peerIdOfJwk } from '../src/trust/identity.js'
import { RoomTokenVerifier, checkUse } from '../src/trust/room-token.js'
import { DEV_TOKEN_LIMITS, DevRooms, cleanName, readDevTokenRequest } from '../signaling/dev-tokens.js'
import { CloseCode } from '../signaling/index.js'
import { connect, httpGet, refusedClose, startServer } from './helpers/signaling.js'

const LIMITS = { maxRooms: 2, maxUsersPerRoom: 3, tokenLifetime: 60 }
const peerKey = async (): Promise<JWK> => (await generateIssuerKeys()).publicKey

describe('dev rooms', () => {
  it('makes the first to ask the host and everyone after a guest, each keeping its user and role', () => {
    const rooms = new DevRooms(LIMITS)
    expect(rooms.admit('r', 'client-a', 'Ada', 0)).toEqual({ user: 'Ada', role: 'host' })
    expect(rooms.admit('r', 'client-b', 'Bob', 1_000)).toEqual({ user: 'Bob', role: 'guest' })
    expect(rooms.admit('r', 'client-c', 'Ada', 2_000)).toEqual({ user: 'Ada 2', role: 'guest' })
    // A renewal, or a reload with another name: the same user and role.
    expect(rooms.admit('r', 'client-a', 'Ada L.', 50_000)).toEqual({ user: 'Ada', role: 'host' })
    expect(rooms.admit('r', 'client-b', 'Robert', 50_000)).toEqual({ user: 'Bob', role: 'guest' })
    expect(rooms.admit('other', 'client-b', 'Bob', 50_000)).toEqual({ user: 'Bob', role: 'host' })
  })

  it('hands the host role on once the host\'s last token has expired', () => {
    const rooms = new DevRooms(LIMITS)
    rooms.admit('r', 'host', 'Hana', 0)
    rooms.admit('r', 'guest', 'Gus', 30_000)
    expect(rooms.admit('r', 'late', 'Lia', 59_999)).toMatchObject({ role: 'guest' })
    expect(rooms.admit('r', 'guest', 'Gus', 60_000)).toEqual({ user: 'Gus', role: 'host' })
    expect(rooms.admit('r', 'host', 'Hana', 61_000)).toEqual({ user: 'Hana', role: 'guest' })
  })

  it('forgets a room once every token issued for it has expired', () => {
    const rooms = new DevRooms(LIMITS)
    rooms.admit('r', 'host', 'Hana', 0)
    rooms.admit('r', 'guest', 'Gus', 10_000)
    expect(rooms.admit('r', 'newcomer', 'Gus', 70_000)).toEqual({ user: 'Gus', role: 'host' })
  })

  it('refuses new rooms and new users beyond the limits, and makes room as tokens expire', () => {
    const rooms = new DevRooms(LIMITS)
    rooms.admit('a', 'c1', 'A', 0)
    rooms.admit('b', 'c1', 'A', 30_000)
    expect(rooms.admit('c', 'c1', 'A', 30_000)).toBe('too_many_rooms')
    expect(rooms.admit('c', 'c1', 'A', 60_000)).toMatchObject({ role: 'host' })
    expect(rooms.size).toBe(2)
    rooms.admit('c', 'c2', 'B', 60_000)
    rooms.admit('c', 'c3', 'C', 60_000)
    expect(rooms.admit('c', 'c4', 'D', 60_000)).toBe('too_many_users')
    expect(rooms.admit('c', 'c3', 'C', 60_000)).toMatchObject({ role: 'guest' })
  })

  it('turns names into user ids: whitespace collapsed, at most 40 characters, Guest when empty', () => {
    expect(cleanName('  Ada \n Lovelace ')).toBe('Ada Lovelace')
    expect(cleanName('x'.repeat(50))).toBe('x'.repeat(40))
    expect(cleanName('   ')).toBe('Guest')
    expect(cleanName(undefined)).toBe('Guest')
  })

  it.each([
    ['not an object', (): unknown => []],
    ['without a room', (key: JWK) => ({ peerKey: key })],
    ['with a room ending in *, which would be a prefix', (key: JWK) => ({ room: 'team-*', peerKey: key })],
    ['with the room *', (key: JWK) => ({ room: '*', peerKey: key })],
    ['with a room too long', (key: JWK) => ({ room: 'r'.repeat(257), peerKey: key })],
    ['without a peer key', () => ({ room: 'r' })],
    ['with an RSA peer key', () => ({ room: 'r', peerKey: { kty: 'RSA', n: 'x', e: 'AQAB' } })],
    ['with a name that is not a string', (key: JWK) => ({ room: 'r', peerKey: key, name: 7 })],
    ['with a short client', (key: JWK) => ({ room: 'r', peerKey: key, client: 'abc' })],
    ['with a client of other characters', (key: JWK) => ({ room: 'r', peerKey: key, client: `${'a'.repeat(15)}!` })]
  ])('refuses a request %s', async (_name, body) => {
    expect(typeof readDevTokenRequest(body(await peerKey()), 256)).toBe('string')
  })

  it('reads a request, the client defaulting to the key\'s peer id', async () => {
    const key = await peerKey()
    expect(readDevTokenRequest({ room: 'r', peerKey: key, name: ' Ada ' }, 256)).toEqual({ room: 'r', peerKey: key, name: 'Ada', client: peerIdOfJwk(key) })
    expect(readDevTokenRequest({ room: 'r', peerKey: key, client: 'c'.repeat(16) }, 256)).toMatchObject({ name: 'Guest', client: 'c'.repeat(16) })
  })
})

interface TokenAnswer { token: string, user: string, role: string, write: string[], expiresAt: number }

const post = async (url: string, body: unknown, headers: Record<string, string> = { 'Content-Type': 'application/json' }): Promise<Response> =>
  await fetch(`${url.replace(/^ws/, 'http')}/dev/token`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) })

describe('the dev token endpoint', () => {
  it('serves the issuer key and mints host and guest tokens that verify, bound to the peer\'s key', async () => {
    const server = await startServer({ devTokens: true })
    const issuer = await httpGet(server, '/dev/issuer')
    expect(issuer.status).toBe(200)
    const { keys } = JSON.parse(issuer.body) as { keys: JWK[] }
    expect(keys).toHaveLength(1)
    expect(keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' })
    expect(keys[0]).not.toHaveProperty('d')

    const hostKey = await peerKey()
    const guestKey = await peerKey()
    const host = await (await post(server.url, { room: 'standup', peerKey: hostKey, name: 'Hana' })).json() as TokenAnswer
    const guest = await (await post(server.url, { room: 'standup', peerKey: guestKey, name: 'Gus' })).json() as TokenAnswer
    expect(host).toMatchObject({ user: 'Hana', role: 'host', write: ['*'] })
    expect(guest).toMatchObject({ user: 'Gus', role: 'guest', write: ['hand/Gus', 'poll/*'] })
    expect(guest.expiresAt).toBeGreaterThan(Date.now() + DEV_TOKEN_LIMITS.tokenLifetime * 1000 - 10_000)

    const verifier = new RoomTokenVerifier(keys[0] as JWK)
    const claims = await verifier.verify(guest.token)
    expect(claims).toMatchObject({ user: 'Gus', room: 'standup', write: ['hand/Gus', 'poll/*'] })
    if (typeof claims === 'string') throw new Error(claims)
    expect(checkUse(claims, { room: 'standup', peerId: peerIdOfJwk(guestKey)!, at: Date.now() })).toBeNull()
    expect(checkUse(claims, { room: 'standup', peerId: peerIdOfJwk(hostKey)!, at: Date.now() })).toMatch(/another peer/)
  })

  it('makes the server accept its tokens for access, for their room only, and nothing else', async () => {
    const server = await startServer({ devTokens: true })
    const { token } = await (await post(server.url, { room: 'standup', peerKey: await peerKey(), name: 'Hana' })).json() as TokenAnswer
    const client = await connect(`${server.url}/?token=${token}`)
    await client.subscribe('standup', 'elsewhere')
    expect(await client.next((m) => m.type === 'error')).toEqual({ type: 'error', code: 'forbidden_topic', topic: 'elsewhere' })
    expect(server.stats().subscriptions).toBe(1)
    expect((await refusedClose(`${server.url}/`)).code).toBe(CloseCode.Unauthorized)
    const other = await startServer({ devTokens: true })
    expect((await refusedClose(`${other.url}/?token=${token}`)).code).toBe(CloseCode.Unauthorized)
  })

  it('answers only JSON POSTs of a bounded size on /dev/token, and GET on /dev/issuer', async () => {
    const server = await startServer({ devTokens: true })
    const body = { room: 'r', peerKey: await peerKey(), name: 'Ada' }
    expect((await post(server.url, body, { 'Content-Type': 'text/plain' })).status).toBe(415)
    expect((await post(server.url, body, {})).status).toBe(415)
    expect((await post(server.url, { ...body, name: 'x'.repeat(5000) })).status).toBe(413)
    expect((await post(server.url, '{"room":')).status).toBe(400)
    const refused = await post(server.url, { ...body, room: '*' })
    expect(refused.status).toBe(400)
    expect(await refused.json()).toEqual({ error: 'room must not end with *' })
    const get = await httpGet(server, '/dev/token')
    expect([get.status, get.headers.allow]).toEqual([405, 'POST'])
    const put = await httpGet(server, '/dev/issuer', 'PUT')
    expect([put.status, put.headers.allow]).toEqual([405, 'GET, HEAD'])
    expect((await httpGet(server, '/dev/elsewhere')).status).toBe(404)
    expect((await post(server.url, body, { 'Content-Type': 'application/json; charset=utf-8' })).status).toBe(200)
  })

  it('limits the requests of one address', async () => {
    const server = await startServer({ devTokens: true })
    const statuses: number[] = []
    for (let i = 0; i < DEV_TOKEN_LIMITS.requests.burst + 2; i++) statuses.push((await httpGet(server, '/dev/issuer', 'HEAD')).status)
    expect(statuses.slice(0, DEV_TOKEN_LIMITS.requests.burst).every((status) => status === 200)).toBe(true)
    expect(statuses.at(-1)).toBe(429)
  })

  it('says at start that it is for development only', async () => {
    const warnings: string[] = []
    const ignore = (): void => {}
    await startServer({ devTokens: true, logger: { debug: ignore, info: ignore, error: ignore, warn: (_obj: object, msg?: string) => { warnings.push(msg ?? '') } } })
    expect(warnings.join('\n')).toMatch(/dev tokens are on.*never in production/)
  })

  it('is not there without devTokens', async () => {
    const server = await startServer()
    expect((await httpGet(server, '/dev/issuer')).status).toBe(404)
    expect((await post(server.url, { room: 'r' })).status).toBe(405)
  })
})

/**
 * A signaling server with access control refuses a peer: the session says so within a second,
 * with a code (UNAUTHORIZED, FORBIDDEN), and never with the token in the message. An expiring
 * token is announced, and a fresh one given with setToken is used from the next connection on.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { joinRoom, type Session } from '../src/node.js'
import type { SessionStoreError } from '../src/errors.js'
import { createToken } from '../signaling/index.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { once, waitFor, withTimeout } from './helpers/wait.js'

const SECRET = 'an-auth-secret-of-at-least-32-bytes!'

const join = (room: string, options: Parameters<typeof joinRoom>[1]): Session => {
  const session = joinRoom(room, options)
  onTestFinished(() => session.leave())
  return session
}

const refusal = async (session: Session): Promise<SessionStoreError> => {
  // joinTimeout is 10 s: a refusal within 2 s comes from the server's answer, not from a timeout.
  const err = await withTimeout(session.sessionStore.then(() => null, (e: SessionStoreError) => e), 2000, 'the join to fail')
  if (err === null) throw new Error('the join succeeded')
  return err
}

describe('auth failures', () => {
  it.each([
    ['a malformed token', 'not-a-jwt'],
    ['a token signed with another secret', null]
  ])('%s: UNAUTHORIZED at once, without the token in the message', async (_what, given) => {
    const server = await startSignaling({ authSecret: SECRET })
    const room = uniqueRoom()
    const token = given ?? await createToken({ secret: 'another-secret-of-at-least-32-bytes!', rooms: [room] })
    const session = join(room, { signaling: [server.url], token })
    const err = await refusal(session)
    expect(err.code).toBe('UNAUTHORIZED')
    expect(err.message).not.toContain(token)
    expect(err.message).not.toContain('token=')
  })

  it('a room the token does not cover: FORBIDDEN at once', async () => {
    const server = await startSignaling({ authSecret: SECRET })
    const token = await createToken({ secret: SECRET, rooms: ['some-other-room'] })
    const session = join(uniqueRoom(), { signaling: [server.url], token })
    const err = await refusal(session)
    expect(err.code).toBe('FORBIDDEN')
    expect(err.message).not.toContain(token)
  })

  it('announces an expiring token, reports its expiry, and carries on with a fresh one from setToken', async () => {
    const server = await startSignaling({ authSecret: SECRET })
    const room = uniqueRoom()
    const short = await createToken({ secret: SECRET, rooms: [room], expiresIn: 2 })
    const session = join(room, { signaling: [server.url], token: short })
    const expiring = once<{ expiresAt: number }>(session, 'tokenExpiring', 5000)
    await session.sessionStore
    expect((await expiring).expiresAt).toBeGreaterThan(Date.now() - 5000)
    const errors: SessionStoreError[] = []
    session.on('error', (e) => errors.push(e))
    await waitFor(() => errors.some((e) => e.code === 'UNAUTHORIZED'), { timeout: 10_000, what: 'the expiry to be reported' })
    expect(session.status.available).toBe(true) // the room goes on; only signaling is refused
    session.setToken(await createToken({ secret: SECRET, rooms: [room], expiresIn: 600 }))
    await waitFor(() => session.status.signaling, { timeout: 10_000, what: 'the session to reconnect with the fresh token' })
  })

  it('a token renewed before it expires: the server closes the old socket at the old expiry, the session reconnects with the new one and reports nothing', async () => {
    const server = await startSignaling({ authSecret: SECRET })
    const room = uniqueRoom()
    const session = join(room, { signaling: [server.url], token: await createToken({ secret: SECRET, rooms: [room], expiresIn: 2 }) })
    await session.sessionStore
    const errors: SessionStoreError[] = []
    session.on('error', (e) => errors.push(e))
    session.setToken(await createToken({ secret: SECRET, rooms: [room], expiresIn: 600 }))
    const statuses: boolean[] = []
    session.on('status', ({ signaling }) => statuses.push(signaling))
    await waitFor(() => statuses.includes(false), { timeout: 10_000, what: 'the old socket to be closed at its expiry' })
    await waitFor(() => session.status.signaling, { timeout: 10_000, what: 'the reconnect with the fresh token' })
    expect(errors.filter((e) => e.code === 'UNAUTHORIZED')).toEqual([])
  })
})

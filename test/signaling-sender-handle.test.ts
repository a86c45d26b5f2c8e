/**
 * Sender handles (signaling/sender-handle.ts): derived from the client address's group (an IPv6
 * /64), keyed per instance or by `senderSecret`, set by the server on every relayed publish (a
 * client cannot write its own), and carried across instances over Redis.
 */
import { describe, expect, it } from 'vitest'
import { SignalingError, createSignalingServer } from '../signaling/index.js'
import { addressGroup, parseAddress } from '../signaling/client-address.js'
import { SENDER_HANDLE_LENGTH, createSenderHandles, isSenderHandle } from '../signaling/sender-handle.js'
import { startInstances, startRedis } from './helpers/redis.js'
import { connect, join, marked, startServer, uniqueTopic, type ConnectOptions, type TestClient } from './helpers/signaling.js'

const SECRET = 'a sender secret of at least 32 bytes!'

const handleOf = (handles: (group: string) => string, address: string): string => handles(addressGroup(parseAddress(address) ?? address))

/** The handle the server put on `publisher`'s next publish, as `receiver` gets it. */
const senderSeen = async (publisher: TestClient, receiver: TestClient, topic: string): Promise<unknown> => {
  const mark = Math.random().toString(36).slice(2)
  publisher.publish(topic, { mark })
  return (await receiver.next(marked(topic, mark), 10_000) as { sender?: unknown }).sender
}

describe('sender handles', () => {
  it('are one per IPv4 address and per IPv6 /64, opaque, and depend on the key', () => {
    const handles = createSenderHandles(new TextEncoder().encode(SECRET))
    const same = createSenderHandles(new TextEncoder().encode(SECRET))
    const other = createSenderHandles()
    const a = handleOf(handles, '2001:db8:1:2::1')
    expect(a).toMatch(new RegExp(`^[A-Za-z0-9_-]{${SENDER_HANDLE_LENGTH}}$`))
    expect(isSenderHandle(a)).toBe(true)
    expect(handleOf(handles, '2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe(a)
    expect(handleOf(handles, '[2001:0db8:0001:0002::abcd]:443')).toBe(a)
    expect(handleOf(handles, '2001:db8:1:3::1')).not.toBe(a)
    expect(handleOf(handles, '198.51.100.7')).toBe(handleOf(handles, '::ffff:198.51.100.7'))
    expect(handleOf(handles, '198.51.100.7')).not.toBe(handleOf(handles, '198.51.100.8'))
    expect(handleOf(same, '2001:db8:1:2::1')).toBe(a)
    expect(handleOf(other, '2001:db8:1:2::1')).not.toBe(a)
    expect(a).not.toContain('2001')
  })

  it('accepts only bounded base64url strings from elsewhere', () => {
    for (const bad of ['', 'x'.repeat(65), 'a b', 'a/b', 12, null, undefined, {}]) expect(isSenderHandle(bad)).toBe(false)
    expect(isSenderHandle('x'.repeat(64))).toBe(true)
  })

  it('refuses a short senderSecret', async () => {
    await expect(createSignalingServer({ port: 0, senderSecret: 'short' })).rejects.toMatchObject({ code: 'WEAK_SECRET' })
    await expect(createSignalingServer({ port: 0, senderSecret: 42 as unknown as string })).rejects.toBeInstanceOf(SignalingError)
  })

  it('tag every relayed publish with the sender address\'s handle, which no client can write', async () => {
    const server = await startServer()
    const topic = uniqueTopic()
    const connectFrom = async (options: ConnectOptions): Promise<TestClient> => {
      const client = await connect(server.url, options)
      await join(client, topic)
      return client
    }
    const [a1, a2, b] = [await connectFrom({ localAddress: '127.0.0.1' }), await connectFrom({ localAddress: '127.0.0.1' }), await connectFrom({ localAddress: '127.0.0.2' })]
    const handleA = await senderSeen(a1, b, topic)
    expect(isSenderHandle(handleA)).toBe(true)
    expect(await senderSeen(a2, b, topic)).toBe(handleA)
    expect(await senderSeen(a1, a1, topic)).toBe(handleA)
    const handleB = await senderSeen(b, a1, topic)
    expect(isSenderHandle(handleB)).toBe(true)
    expect(handleB).not.toBe(handleA)

    b.send({ type: 'publish', topic, data: { mark: 'forged' }, sender: handleA })
    expect(await a1.next(marked(topic, 'forged'))).toMatchObject({ sender: handleB })
  })

  it('follow the forwarded address behind a trusted proxy, grouped by /64', async () => {
    const server = await startServer({ trustProxy: 1 })
    const topic = uniqueTopic()
    const from = async (forwarded: string): Promise<TestClient> => {
      const client = await connect(server.url, { headers: { 'X-Forwarded-For': forwarded } })
      await join(client, topic)
      return client
    }
    const [a1, a2, b] = [await from('2001:db8:1:2::1'), await from('2001:db8:1:2::99'), await from('2001:db8:1:3::1')]
    const handleA = await senderSeen(a1, b, topic)
    expect(await senderSeen(a2, b, topic)).toBe(handleA)
    expect(await senderSeen(b, a1, topic)).not.toBe(handleA)
  })

  it('are kept across instances over Redis, and agree between instances sharing a senderSecret', async () => {
    const redis = await startRedis()
    const topic = uniqueTopic()
    const [a, b] = await startInstances(2, redis.url, { senderSecret: SECRET })
    const [onA, onB] = [await connect(a!.url), await connect(b!.url)]
    for (const client of [onA, onB]) await join(client, topic)
    const here = await senderSeen(onA, onA, topic)
    expect(isSenderHandle(here)).toBe(true)
    expect(await senderSeen(onA, onB, topic)).toBe(here)
    // The same address on the other instance: the same handle, since the secret is shared.
    expect(await senderSeen(onB, onA, topic)).toBe(here)

    const [c] = await startInstances(1, redis.url)
    const onC = await connect(c!.url)
    await join(onC, topic)
    expect(await senderSeen(onA, onC, topic)).toBe(here)
    const own = await senderSeen(onC, onA, topic)
    expect(isSenderHandle(own)).toBe(true)
    expect(own).not.toBe(here)
  })
})

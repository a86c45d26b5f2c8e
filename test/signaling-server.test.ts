import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { CloseCode, SignalingError, createSignalingServer } from '../signaling/index.js'
import { connect, connectMany, refusedStatus, startServer, uniqueTopic } from './helpers/signaling.js'
import { waitFor, withTimeout } from './helpers/wait.js'

const isPublish = (data?: unknown) => (m: { type: string, data?: unknown }): boolean =>
  m.type === 'publish' && (data === undefined || JSON.stringify(m.data) === JSON.stringify(data))

describe('relay', () => {
  it('relays a publish to every subscriber, the sender included, with the subscriber count', async () => {
    const server = await startServer()
    const [a, b, c] = await connectMany(server.url, 3)
    const topic = uniqueTopic()
    await a!.subscribe(topic)
    await b!.subscribe(topic)
    await c!.subscribe(uniqueTopic())

    a!.publish(topic, { type: 'announce', from: 'a' })
    const expected = { type: 'publish', topic, data: { type: 'announce', from: 'a' }, clients: 2, sender: expect.stringMatching(/^[\w-]{16}$/) }
    expect(await a!.next(isPublish())).toEqual(expected)
    expect(await b!.next(isPublish())).toEqual(expected)
    await c!.roundTrip()
    expect(c!.inbox).toEqual([])
  })

  it('says clients: 1 on the echo of a lone subscriber, and counts each connection once', async () => {
    const server = await startServer()
    const [a, b] = await connectMany(server.url, 2)
    const topic = uniqueTopic()
    await a!.subscribe(topic, topic)
    await a!.subscribe(topic)
    a!.publish(topic, 'alone')
    expect(await a!.next(isPublish('alone'))).toMatchObject({ clients: 1 })

    await b!.subscribe(topic)
    b!.publish(topic, 'two')
    expect(await a!.next(isPublish('two'))).toMatchObject({ clients: 2 })

    b!.send({ type: 'unsubscribe', topics: [topic] })
    await b!.roundTrip()
    a!.publish(topic, 'alone again')
    expect(await a!.next(isPublish('alone again'))).toMatchObject({ clients: 1 })
  })

  it('answers ping with pong', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    client.send({ type: 'ping' })
    expect(await client.next()).toEqual({ type: 'pong' })
  })

  it('refuses a publish to a topic the connection has not subscribed to', async () => {
    const server = await startServer()
    const [insider, outsider] = await connectMany(server.url, 2)
    const topic = uniqueTopic()
    await insider!.subscribe(topic)
    outsider!.publish(topic, 'intrusion')
    await outsider!.roundTrip()
    insider!.publish(topic, 'legit')
    expect(await insider!.next(isPublish())).toMatchObject({ data: 'legit', clients: 1 })
    expect(server.stats().rejections.not_subscribed).toBe(1)
  })

  it('releases subscriptions on unsubscribe and on close, deleting empty topics at once', async () => {
    const server = await startServer()
    const [a, b] = await connectMany(server.url, 2)
    await a!.subscribe('one', 'two', 'three')
    await b!.subscribe('two')
    expect(server.stats()).toMatchObject({ connections: 2, topics: 3, subscriptions: 4 })

    a!.send({ type: 'unsubscribe', topics: ['one', 'never-subscribed'] })
    await a!.roundTrip()
    expect(server.stats()).toMatchObject({ topics: 2, subscriptions: 3 })

    await a!.close()
    await waitFor(() => server.stats().connections === 1, { what: 'the closed connection to be released' })
    expect(server.stats()).toMatchObject({ topics: 1, subscriptions: 1 })

    b!.ws.terminate()
    await waitFor(() => server.stats().connections === 0, { what: 'the terminated connection to be released' })
    expect(server.stats()).toMatchObject({ topics: 0, subscriptions: 0 })
  })

  it('counts messages in and out', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    await client.subscribe('t')
    client.publish('t', 1)
    await client.next(isPublish())
    // subscribe, ping, publish in; pong, publish out
    expect(server.stats()).toMatchObject({ messagesIn: 3, messagesOut: 2 })
  })
})

describe('limits', () => {
  it('ignores topics beyond maxTopicsPerConnection and counts them', async () => {
    const server = await startServer({ maxTopicsPerConnection: 2 })
    const client = await connect(server.url)
    await client.subscribe('a', 'b')
    await client.subscribe('c')
    await client.subscribe('d')
    expect(server.stats()).toMatchObject({ topics: 2, subscriptions: 2 })
    expect(server.stats().rejections.topic_limit).toBe(2)
    // One message with more topics than a connection may hold is malformed as a whole.
    await client.subscribe('x', 'y', 'z')
    expect(server.stats().rejections.malformed).toBe(1)
    client.send({ type: 'unsubscribe', topics: ['a'] })
    await client.subscribe('d')
    expect(server.stats().subscriptions).toBe(2)
    client.publish('d', 'ok')
    expect(await client.next(isPublish())).toMatchObject({ topic: 'd', clients: 1 })
  })

  it('keeps one topic, then several, then one again, and publishes only to those held', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    const unsubscribe = async (...topics: string[]): Promise<void> => {
      client.send({ type: 'unsubscribe', topics })
      await client.roundTrip()
    }
    await client.subscribe('room-12')
    await client.subscribe('room-12')
    // One topic is held as the topic itself: a prefix of it is another topic.
    client.publish('room-1', 'dropped')
    await client.roundTrip()
    expect(server.stats().rejections.not_subscribed).toBe(1)
    await client.subscribe('b', 'c')
    expect(server.stats().subscriptions).toBe(3)
    await unsubscribe('b')
    client.publish('b', 'dropped')
    client.publish('c', 'c held')
    expect(await client.next(isPublish())).toMatchObject({ topic: 'c', data: 'c held' })
    expect(server.stats().rejections.not_subscribed).toBe(2)
    await unsubscribe('room-12', 'c', 'never held')
    expect(server.stats()).toMatchObject({ topics: 0, subscriptions: 0 })
    await client.subscribe('b')
    client.publish('b', 'b again')
    expect(await client.next(isPublish())).toMatchObject({ topic: 'b', clients: 1 })
    await client.close()
    await waitFor(() => server.stats().subscriptions === 0, { what: 'the closed connection to let go of its topic' })
  })

  it('refuses a topic name longer than maxTopicLength as malformed', async () => {
    const server = await startServer({ maxTopicLength: 8 })
    const client = await connect(server.url)
    await client.subscribe('123456789')
    await client.subscribe('12345678')
    expect(server.stats()).toMatchObject({ topics: 1 })
    expect(server.stats().rejections.malformed).toBe(1)
  })

  it('refuses upgrades beyond maxConnections with HTTP 503', async () => {
    const server = await startServer({ maxConnections: 2 })
    const [a] = await connectMany(server.url, 2)
    expect(await refusedStatus(server.url)).toBe(503)
    expect(server.stats().rejections.connection_limit).toBe(1)
    await a!.close()
    await waitFor(() => server.stats().connections === 1)
    const again = await connect(server.url)
    await again.roundTrip()
  })

  it('closes a connection that sends a frame over maxPayload with 1009, and no one else', async () => {
    const server = await startServer({ maxPayload: 1024 })
    const [big, other] = await connectMany(server.url, 2)
    await other!.subscribe('t')
    big!.publish('t', 'x'.repeat(2000))
    expect((await withTimeout(big!.closed, 5_000)).code).toBe(CloseCode.MessageTooBig)
    expect(server.stats().rejections.too_large).toBe(1)
    other!.publish('t', 'still here')
    expect(await other!.next(isPublish())).toMatchObject({ data: 'still here' })
  })

  it('drops a receiver that does not read once its unsent bytes pass maxBufferedBytes', async () => {
    const server = await startServer({ maxBufferedBytes: 64 * 1024, maxPayload: 256 * 1024, messagesPerSecond: 1e6, messageBurst: 1e6 })
    const [reader, sleeper] = await connectMany(server.url, 2)
    await reader!.subscribe('flood')
    await sleeper!.subscribe('flood')
    sleeper!.ws.pause()

    const chunk = 'x'.repeat(128 * 1024)
    let sent = 0
    await waitFor(async () => {
      // Keep the reader's own echo read before sending more, so only the sleeper falls behind.
      reader!.publish('flood', chunk)
      await reader!.next(isPublish())
      sent++
      return server.stats().rejections.slow_consumer === 1
    }, { timeout: 20_000, interval: 0, what: 'the sleeper to be dropped' })

    expect(sent).toBeLessThan(1000)
    expect(server.stats()).toMatchObject({ connections: 1, subscriptions: 1 })
    reader!.publish('flood', 'after')
    expect(await reader!.next(isPublish('after'))).toMatchObject({ clients: 1 })
  })
})

describe('heartbeat', () => {
  it('drops a connection that does not answer pings, keeps one that does', async () => {
    const server = await startServer({ heartbeatInterval: 50 })
    const [alive, dead] = await connectMany(server.url, 2)
    await dead!.subscribe('t')
    dead!.ws.pause()
    await waitFor(() => server.stats().rejections.heartbeat_timeout === 1, { what: 'the silent connection to be dropped' })
    expect(server.stats()).toMatchObject({ connections: 1, topics: 0 })
    await alive!.roundTrip()
  })
})

describe('lifecycle', () => {
  it('closes every client with 1001 on close(), resolves, and is idempotent', async () => {
    const server = await createSignalingServer({ port: 0 })
    const clients = await connectMany(server.url, 3)
    await clients[0]!.subscribe('t')
    const closing = server.close()
    const codes = await Promise.all(clients.map(async (c) => (await withTimeout(c.closed, 5_000)).code))
    expect(codes).toEqual([CloseCode.GoingAway, CloseCode.GoingAway, CloseCode.GoingAway])
    await withTimeout(closing, 5_000, 'close()')
    await withTimeout(server.close(), 1_000, 'a second close()')
    expect(server.stats()).toMatchObject({ connections: 0, topics: 0, subscriptions: 0 })
    await expect(connect(server.url, { timeout: 1_000 })).rejects.toThrow()
  })

  it('cuts clients that ignore the close handshake after closeTimeout', async () => {
    const server = await createSignalingServer({ port: 0, closeTimeout: 100 })
    const client = await connect(server.url)
    client.ws.pause()
    await withTimeout(server.close(), 5_000, 'close() with a client that does not answer')
    client.ws.resume()
    expect((await withTimeout(client.closed, 5_000)).code).not.toBe(1000)
  })

  it('uses the port it was given and reports it in url', async () => {
    const server = await startServer({ port: 0 })
    expect(server.port).toBeGreaterThan(0)
    expect(server.url).toBe(`ws://127.0.0.1:${server.port}`)
  })

  it('rejects when the port is taken', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = blocker.address() as { port: number }
      await expect(createSignalingServer({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' })
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }
  })

  it.each([
    [{ port: -1 }],
    [{ port: 70000 }],
    [{ maxPayload: 0 }],
    [{ messagesPerSecond: 0 }],
    [{ messageBurst: 1.5 }],
    [{ maxConnections: Number.NaN }],
    [{ host: '' }],
    [{ maxConnectionsPerAddress: 0 }],
    [{ connectionsPerSecondPerAddress: 0 }],
    [{ messagesPerSecondPerAddress: -1 }],
    [{ messageBurstPerAddress: 0.5 }],
    [{ trustProxy: true as unknown as number }],
    [{ trustProxy: -1 }],
    [{ trustProxy: ['proxy.example.com'] }],
    [{ trustProxy: '10.0.0.1' as unknown as string[] }],
    [{ proxyHeader: 'x-real-ip' as 'forwarded' }],
    [{ metricsToken: 42 as unknown as string }]
  ])('refuses the option %o with INVALID_OPTION', async (options) => {
    const error = await createSignalingServer(options).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SignalingError)
    expect(error).toMatchObject({ code: 'INVALID_OPTION' })
  })
})

/**
 * Several signaling instances on one Redis, in this process, with raw WebSocket clients: relay
 * across instances, the `clients` count across instances, Redis subscriptions per local topic,
 * a Redis restart, and hostile input arriving from Redis.
 */

import { Redis } from 'ioredis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { SignalingError, createSignalingServer, type SignalingServer } from '../signaling/index.js'
import { healthOf, startInstances, startRedis, waitForLink } from './helpers/redis.js'
import { connect, echoCount, everyoneHears, httpGet, join, marked, uniqueTopic } from './helpers/signaling.js'
import { waitFor } from './helpers/wait.js'

const PREFIX = 'p2p-signaling:'

const redisClient = (url: string): Redis => {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  onTestFinished(() => client.disconnect())
  return client
}

const metric = async (server: SignalingServer, name: string): Promise<number> => {
  const line = (await httpGet(server, '/metrics')).body.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? Number.NaN : Number(line.split(' ')[1])
}

describe('signaling over Redis', () => {
  it('relays every publish to every subscriber on every instance exactly once, counting the whole room', async () => {
    const redis = await startRedis()
    const [a, b, c] = await startInstances(3, redis.url)
    const topic = uniqueTopic()
    const clients = [await connect(a!.url), await connect(a!.url), await connect(b!.url), await connect(c!.url)]
    const bystander = await connect(b!.url)
    await bystander.subscribe(uniqueTopic())
    for (const client of clients) await join(client, topic)
    await everyoneHears(clients, topic, 'hello')
    // The joins' echoes reached the earlier joiners before the hellos of the same publishers.
    for (const client of clients) client.inbox.splice(0)

    const round = await everyoneHears(clients, topic, 'round')
    for (const received of round) {
      expect(received.map((m) => m.clients)).toEqual([4, 4, 4, 4])
      expect(Object.keys(received[0]!).sort()).toEqual(['clients', 'data', 'sender', 'topic', 'type'])
    }
    // Each publisher's messages arrive in order, so a duplicate would come before its 'end' mark.
    await everyoneHears(clients, topic, 'end')
    for (const client of clients) expect(client.inbox).toEqual([])
    await bystander.roundTrip()
    expect(bystander.inbox).toEqual([])
    expect(a!.stats().redis).toMatchObject({ state: 'up', instances: 2, published: 8, received: 8, rejected: 0, dropped: 0 })
  })

  it('never tells the first subscriber on an instance it is alone when others hold the room', async () => {
    const redis = await startRedis()
    const [a, b, c] = await startInstances(3, redis.url, { redisTtl: 60_000 })
    for (let i = 0; i < 10; i++) {
      const topic = uniqueTopic(`race-${i}`)
      const first = await connect(a!.url)
      await first.subscribe(topic)
      expect(await echoCount(first, topic)).toBe(1)
      // Subscribe and publish back to back, as y-webrtc does, on an instance new to the topic.
      for (const [server, expected] of [[b!, 2], [c!, 3]] as const) {
        const joiner = await connect(server.url)
        joiner.send({ type: 'subscribe', topics: [topic] })
        expect(await echoCount(joiner, topic)).toBe(expected)
      }
    }
  })

  it('follows joins and leaves on other instances within one Redis hop, not the TTL', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { redisTtl: 60_000 })
    const topic = uniqueTopic()
    const watcher = await connect(a!.url)
    await watcher.subscribe(topic)
    const others = [await connect(b!.url), await connect(b!.url), await connect(a!.url)]
    for (const [i, other] of others.entries()) {
      await other.subscribe(topic)
      await waitFor(async () => await echoCount(watcher, topic) === i + 2, { what: `a count of ${i + 2}` })
    }
    others[0]!.send({ type: 'unsubscribe', topics: [topic] })
    await waitFor(async () => await echoCount(watcher, topic) === 3, { timeout: 5_000, what: 'an unsubscribe on B to count' })
    await others[1]!.close()
    await waitFor(async () => await echoCount(watcher, topic) === 2, { timeout: 5_000, what: 'a closed connection on B to count' })
    await b!.close()
    expect(await echoCount(watcher, topic)).toBe(2)
    expect(a!.stats().redis?.instances).toBe(0)
  })

  it('subscribes to a topic channel only while the instance has subscribers of the topic', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url)
    const inspector = redisClient(redis.url)
    const topic = uniqueTopic()
    const channel = `${PREFIX}topic:${topic}`
    const numsub = async (): Promise<number> => Number((await inspector.pubsub('NUMSUB', channel) as [string, number])[1])

    expect(await numsub()).toBe(0)
    const first = await connect(a!.url)
    await first.subscribe(topic)
    await waitFor(async () => await numsub() === 1, { what: 'A to subscribe' })
    const second = await connect(a!.url)
    await second.subscribe(topic)
    const onB = await connect(b!.url)
    await onB.subscribe(topic)
    await waitFor(async () => await numsub() === 2, { what: 'B to subscribe' })
    await onB.close()
    await first.close()
    await waitFor(async () => await numsub() === 1, { what: 'B to unsubscribe' })
    second.send({ type: 'unsubscribe', topics: [topic] })
    await waitFor(async () => await numsub() === 0, { what: 'A to unsubscribe' })
    await waitFor(async () => await inspector.exists(`${PREFIX}members:${topic}`) === 1 && await inspector.hlen(`${PREFIX}members:${topic}`) === 1, {
      what: 'the members hash to hold only its sequence number'
    })
  })

  it('keeps serving local rooms while Redis is down and relays across instances again once it is back', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { redisTtl: 1_500 })
    const topic = uniqueTopic()
    const [a1, a2, b1] = [await connect(a!.url), await connect(a!.url), await connect(b!.url)]
    for (const client of [a1!, a2!, b1!]) await join(client, topic)
    await everyoneHears([a1!, a2!, b1!], topic, 'hello')

    await redis.stop()
    await waitFor(() => a!.stats().redis?.state === 'down' && b!.stats().redis?.state === 'down', { what: 'both links to go down' })
    expect(await healthOf(a!.port)).toEqual({ status: 'ok' })
    expect(await metric(a!, 'signaling_redis_up')).toBe(0)

    a1!.publish(topic, { mark: 'during' })
    expect(await a2!.next(marked(topic, 'during'))).toMatchObject({ clients: expect.any(Number) })
    // B's subscriber stops counting on A once B's heartbeats are older than the TTL.
    await waitFor(async () => await echoCount(a1!, topic) === 2, { what: 'B\'s subscriber to expire on A' })
    const alone = await connect(a!.url)
    const fresh = uniqueTopic()
    alone.send({ type: 'subscribe', topics: [fresh] })
    expect(await echoCount(alone, fresh)).toBe(1)
    expect(a!.stats().redis?.dropped).toBeGreaterThan(0)

    await redis.start()
    await waitForLink(a!, 20_000)
    await waitForLink(b!, 20_000)
    a1!.publish(topic, { mark: 'after' })
    expect(await b1!.next(marked(topic, 'after'), 10_000)).toMatchObject({ clients: 3 })
    // Nothing sent during the outage is replayed.
    expect(b1!.inbox.filter(marked(topic, 'during'))).toEqual([])
    await waitFor(async () => await echoCount(a1!, topic) === 3, { what: 'A to count B\'s subscriber again' })
    expect(a!.stats().redis?.syncs).toBe(2)
    expect(await healthOf(a!.port)).toEqual({ status: 'ok' })
  })

  it('starts and serves its own rooms when Redis cannot be reached', async () => {
    const redis = await startRedis()
    await redis.stop()
    const server = await createSignalingServer({ port: 0, redisUrl: redis.url })
    onTestFinished(async () => await server.close())
    const [x, y] = [await connect(server.url), await connect(server.url)]
    const topic = uniqueTopic()
    await x!.subscribe(topic)
    await y!.subscribe(topic)
    expect(await echoCount(x!, topic)).toBe(2)
    expect(server.stats().redis?.state).toBe('down')
    await redis.start()
    await waitForLink(server, 20_000)
  })

  it('lets go of its Redis connections when it cannot listen, and when it closes', async () => {
    const redis = await startRedis()
    const inspector = redisClient(redis.url)
    const signalingClients = async (): Promise<number> =>
      String(await inspector.client('LIST')).split('\n').filter((line) => line.includes('name=signaling-')).length
    const [a] = await startInstances(1, redis.url)
    // The relay's two (commands, pub/sub) and the lock arbiter's two (commands, lock events).
    await waitFor(async () => await signalingClients() === 4, { what: 'the four signaling connections to Redis' })
    await expect(createSignalingServer({ port: a!.port, redisUrl: redis.url })).rejects.toMatchObject({ code: 'EADDRINUSE' })
    await a!.close()
    await waitFor(async () => await signalingClients() === 0, { what: 'every signaling connection to Redis to close' })
    expect(await inspector.keys(`${PREFIX}instance:*`)).toEqual([])
  })

  it('stops counting a closed instance\'s subscribers at once and publishes nothing after close', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { redisTtl: 60_000 })
    const topic = uniqueTopic()
    const [onA, onB] = [await connect(a!.url), await connect(b!.url)]
    await join(onA!, topic)
    await join(onB!, topic)
    await everyoneHears([onA!, onB!], topic, 'hello')
    await a!.close()
    expect(a!.stats().redis?.state).toBe('closed')
    await waitFor(async () => await echoCount(onB!, topic) === 1, { timeout: 5_000, what: 'the closed instance to stop counting' })
    expect(b!.stats().redis?.instances).toBe(0)
  })

  it('refuses malformed messages from Redis without disturbing anyone', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url, { maxPayload: 1024 })
    const topic = uniqueTopic()
    const [onA, onB] = [await connect(a!.url), await connect(b!.url)]
    await join(onA!, topic)
    await join(onB!, topic)
    await everyoneHears([onA!, onB!], topic, 'hello')
    onA!.inbox.splice(0)

    const attacker = redisClient(redis.url)
    const channel = `${PREFIX}topic:${topic}`
    const garbage: Array<string | Buffer> = [
      'not json',
      Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
      '[]',
      '{"k":"p","i":"x"}',
      '{"k":"m","i":"x","n":-5,"s":1}',
      '{"k":"m","i":"x","n":1e12,"s":99}',
      JSON.stringify({ k: 'p', i: 'x', d: 'y'.repeat(20_000) }),
      `{"k":"p","i":"x","d":${'['.repeat(40)}${']'.repeat(40)}}`,
      `{"k":"p","i":"x","d":${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}}`,
      `{"k":"p","i":"x","d":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      JSON.stringify({ k: 'p', i: 'x'.repeat(100), d: 1 })
    ]
    for (const message of garbage) await attacker.publish(channel, message)
    for (const message of ['{"k":"alive"}', 'bye', '{"k":"alive","i":""}']) await attacker.publish(`${PREFIX}instances`, message)
    // A live member of the topic whose count is not a number: left out of the next snapshot.
    await attacker.set(`${PREFIX}instance:liar`, '1')
    await attacker.hset(`${PREFIX}members:${topic}`, 'liar', 'many')

    const joiner = await connect(b!.url)
    joiner.send({ type: 'subscribe', topics: [topic] })
    await everyoneHears([onA!, onB!, joiner], topic, 'after')
    expect(await echoCount(onA!, topic)).toBe(3)
    expect(onA!.inbox).toEqual([])
    expect(onB!.inbox).toEqual([])
    const rejected = (a!.stats().redis?.rejected ?? 0) + (b!.stats().redis?.rejected ?? 0)
    expect(rejected).toBeGreaterThanOrEqual(2 * garbage.length + 2 * 3)
    expect(a!.stats().redis?.state).toBe('up')
    expect(b!.stats().redis?.state).toBe('up')
  })

  it('reports the link on /metrics, not on /healthz, and validates its options', async () => {
    const redis = await startRedis()
    const [a] = await startInstances(1, redis.url)
    expect(await healthOf(a!.port)).toEqual({ status: 'ok' })
    const metrics = (await httpGet(a!, '/metrics')).body
    for (const name of ['signaling_redis_up 1', 'signaling_redis_instances 0', 'signaling_redis_published_total 0', 'signaling_redis_syncs_total 1']) {
      expect(metrics.split('\n')).toContain(name)
    }
    for (const options of [{ redisUrl: 'http://127.0.0.1:6379' }, { redisUrl: 'not a url' }, { redisUrl: redis.url, redisTtl: 0 }, { redisUrl: redis.url, redisPrefix: '' }]) {
      await expect(createSignalingServer({ port: 0, ...options })).rejects.toSatisfy((err) => err instanceof SignalingError && err.code === 'INVALID_OPTION')
    }
  })
})

/**
 * Real peers (this project's library in separate processes, over WebRTC) split across signaling
 * instances that share a Redis, and an instance crash: instances run as CLI child processes behind
 * a TCP balancer, one is SIGKILLed, and nobody is left waiting on what it held.
 *
 * Peers join one after another: two y-webrtc peers announcing at the same moment may both initiate
 * under @roamhq/wrtc, and one of them can hang.
 */

import { Redis } from 'ioredis'
import { describe, expect, it, onTestFinished } from 'vitest'
import { joinPeer, spawnPeer } from './helpers/peers.js'
import { startBalancer, startCliInstance, startInstances, startRedis } from './helpers/redis.js'
import { uniqueRoom } from './helpers/server.js'
import { connect, echoCount, everyoneHears, join, uniqueTopic } from './helpers/signaling.js'
import { waitFor } from './helpers/wait.js'

describe('peers on several signaling instances', () => {
  it('syncs a room between peers on two instances', async () => {
    const redis = await startRedis()
    const [a, b] = await startInstances(2, redis.url)
    const room = uniqueRoom('redis-two')
    const first = await joinPeer('first', room, { signaling: [a!.url] })
    expect(first.joined.sync).toBe('alone')
    await first.call('set', { key: 'from-a', value: 1 })

    const second = await joinPeer('second', room, { signaling: [b!.url] })
    expect(second.joined).toMatchObject({ sync: 'synced', json: { 'from-a': 1 } })
    await second.call('set', { key: 'from-b', value: 2 })
    await first.call('waitForValue', { key: 'from-b', value: 2 })
  })

  it('syncs a room between peers on three instances', async () => {
    const redis = await startRedis()
    const servers = await startInstances(3, redis.url)
    const room = uniqueRoom('redis-three')
    const peers = []
    for (const [i, server] of servers.entries()) {
      const peer = await joinPeer(`peer-${i}`, room, { signaling: [server.url] })
      expect(peer.joined.sync).toBe(i === 0 ? 'alone' : 'synced')
      await peer.call('set', { key: `from-${i}`, value: i })
      peers.push(peer)
    }
    const json = { 'from-0': 0, 'from-1': 1, 'from-2': 2 }
    for (const peer of peers) {
      await peer.call('waitForJSON', { json })
      await peer.call('waitForPeers', { count: 3 })
    }
    for (const server of servers) expect(server.stats().redis).toMatchObject({ instances: 2, rejected: 0 })
  })

  it('heals the count within the TTL after an instance is killed, and its peers carry on elsewhere', async () => {
    const ttl = 3_000
    const redis = await startRedis()
    const x = await startCliInstance(redis.url, ['--redis-ttl', String(ttl)])
    const y = await startCliInstance(redis.url, ['--redis-ttl', String(ttl)])
    const balancer = await startBalancer([x.port, y.port])

    // Raw clients, one per instance: the count spans both processes.
    const topic = uniqueTopic()
    const [onX, onY] = [await connect(x.url), await connect(y.url)]
    await join(onX, topic)
    await join(onY, topic)
    await everyoneHears([onX, onY], topic, 'hello')
    expect(await echoCount(onY, topic)).toBe(2)

    // Peers through the balancer: `writer` lands on X, `reader` on Y.
    const room = uniqueRoom('redis-kill')
    balancer.target = x.port
    const writer = await joinPeer('writer', room, { signaling: [balancer.url] })
    await writer.call('set', { key: 'before', value: 'the crash' })
    balancer.target = y.port
    const reader = await joinPeer('reader', room, { signaling: [balancer.url] })
    expect(reader.joined).toMatchObject({ sync: 'synced', json: { before: 'the crash' } })

    // Rooms whose only member is on X and will not come back: their joiners must not wait for it.
    const deserted = uniqueRoom('redis-deserted')
    const ghost = await connect(x.url)
    await join(ghost, deserted)
    const lateJoiner = await spawnPeer('late-joiner')
    const lastMinute = uniqueTopic('last-minute')
    await join(ghost, lastMinute)
    const inspector = new Redis(redis.url)
    onTestFinished(() => inspector.disconnect())
    const [xId] = (await inspector.hkeys(`p2p-signaling:members:${lastMinute}`)).filter((field) => field !== '#')
    const xKey = `p2p-signaling:instance:${xId!}`

    const killedAt = performance.now()
    await x.kill('SIGKILL')
    const joining = lateJoiner.call('join', { room: deserted, options: { signaling: [balancer.url] } })
    // Joined when X's key is about to expire, a topic must not keep X alive for another TTL.
    await waitFor(async () => await inspector.pttl(xKey) < 300 && await inspector.pttl(xKey) !== -2, { timeout: ttl + 5_000, interval: 20, what: 'X\'s key to be about to expire' })
    const lastMinuteJoiner = await connect(y.url)
    // X still counts (unless its key expired meanwhile, which a loaded machine may allow).
    expect([2, 1]).toContain(await join(lastMinuteJoiner, lastMinute))
    await waitFor(async () => await echoCount(onY, topic) === 1, { timeout: ttl + 10_000, interval: 100, what: 'Y to stop counting X\'s subscriber' })
    const healedAfter = performance.now() - killedAt
    // At most the TTL after the crash (X's last heartbeat came before it), plus polling and delivery.
    expect(healedAfter).toBeLessThan(ttl + 1_500)
    expect(await echoCount(lastMinuteJoiner, lastMinute)).toBe(1)

    // Counted X's ghost at first, then saw it leave ('peers-left'), or found that it never answered
    // (ANSWER_TIMEOUT, 'alone'), whichever came first: available long before its 10 s join timeout.
    expect(['peers-left', 'alone']).toContain((await joining).sync)

    // The writer reconnects through the balancer to Y; a newcomer syncs with both.
    await writer.call('set', { key: 'after', value: 'the crash' })
    await reader.call('waitForValue', { key: 'after', value: 'the crash' })
    const newcomer = await joinPeer('newcomer', room, { signaling: [balancer.url] })
    expect(newcomer.joined.sync).toBe('synced')
    await newcomer.call('waitForJSON', { json: { before: 'the crash', after: 'the crash' } })
    await waitFor(() => balancer.routed.filter((port) => port === y.port).length >= 4, { what: 'the writer to reconnect to Y' })
  })
})

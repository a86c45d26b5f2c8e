import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { CloseCode } from '../signaling/index.js'
import { FULL, charge, isFull, verdictOf, type RateLimit } from '../signaling/rate-limit.js'
import { connectMany, startServer } from './helpers/signaling.js'
import { once, waitFor, withTimeout } from './helpers/wait.js'

/** A bucket as a connection holds one: a number, charged for every message. */
const bucket = (limit: RateLimit): { take: (now: number) => string, fullAt: () => number } => {
  let fullAt = FULL
  return {
    take: (now) => {
      fullAt = charge(fullAt, limit, now)
      return verdictOf(fullAt, limit, now)
    },
    fullAt: () => fullAt
  }
}

describe('token bucket', () => {
  const limit = { rate: 10, burst: 5 }

  it('allows a full burst back to back, then drops', () => {
    const { take } = bucket(limit)
    const verdicts = Array.from({ length: 7 }, () => take(0))
    expect(verdicts).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop', 'drop'])
  })

  it('refills at the rate, never above the burst', () => {
    const { take } = bucket(limit)
    for (let i = 0; i < 5; i++) take(0)
    expect(take(0)).toBe('drop')
    // 1 s later: 10 tokens earned, which repay the debt of the dropped message and fill the bucket.
    expect(Array.from({ length: 6 }, () => take(1000))).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop'])
    // 0.2 s later: 2 tokens.
    expect(Array.from({ length: 3 }, () => take(1200))).toEqual(['allow', 'drop', 'drop'])
  })

  it('closes a sender that keeps going while throttled', () => {
    const { take } = bucket(limit)
    const verdicts = Array.from({ length: 10 }, () => take(0))
    expect(verdicts.slice(5)).toEqual(['drop', 'drop', 'drop', 'drop', 'close'])
  })

  it('forgives a sender that pauses after being throttled', () => {
    const { take } = bucket(limit)
    for (let i = 0; i < 8; i++) take(0)
    expect(take(1000)).toBe('allow')
  })

  it('never adds tokens for a clock that goes backwards', () => {
    const { take } = bucket(limit)
    // A full bucket is full whatever the clock reads.
    expect(take(1000)).toBe('allow')
    for (let i = 0; i < 4; i++) take(1000)
    expect(take(0)).not.toBe('allow')
  })

  it('counts exactly at rates and clock readings that are not whole milliseconds', () => {
    const { take } = bucket({ rate: 3, burst: 3 })
    const start = 12_345.678_9
    expect(Array.from({ length: 4 }, () => take(start))).toEqual(['allow', 'allow', 'allow', 'drop'])
    // Two tokens repay the debt and earn one more: 2 / 3 s later.
    expect(take(start + 2000 / 3)).toBe('allow')
    expect(take(start + 2000 / 3)).toBe('drop')
  })

  it('is full again once its time to be full has passed', () => {
    const b = bucket(limit)
    for (let i = 0; i < 3; i++) b.take(0)
    expect(isFull(b.fullAt(), 299)).toBe(false)
    expect(isFull(b.fullAt(), 300)).toBe(true)
  })
})

describe('rate limit on a server', () => {
  it('drops messages over the limit and closes a persistent abuser with 4429, sparing everyone else', async () => {
    const server = await startServer({ messagesPerSecond: 0.1, messageBurst: 10 })
    const [abuser, bystander] = await connectMany(server.url, 2)
    await bystander!.subscribe('room')
    for (let i = 0; i < 30; i++) abuser!.send({ type: 'ping' })
    const closed = await withTimeout(abuser!.closed, 5_000, 'the abuser to be closed')
    expect(closed.code).toBe(CloseCode.RateLimited)
    // 10 allowed; then dropped until the debt reaches the burst (10 more, 11 if a fraction of a
    // token trickled in meanwhile), and closed; the rest never reach the handler.
    expect(abuser!.inbox.filter((m) => m.type === 'pong')).toHaveLength(10)
    const { rejections } = server.stats()
    expect(rejections.rate_limit_closed).toBe(1)
    expect(rejections.rate_limited).toBeGreaterThanOrEqual(10)
    expect(rejections.rate_limited).toBeLessThanOrEqual(11)
    bystander!.publish('room', 'fine')
    expect(await bystander!.next((m) => m.type === 'publish')).toMatchObject({ data: 'fine', clients: 1 })
  })

  it('answers WebSocket pings within the same limit', async () => {
    const server = await startServer({ messagesPerSecond: 0.1, messageBurst: 5 })
    const [pinger] = await connectMany(server.url, 1)
    let pongs = 0
    pinger!.ws.on('pong', () => { pongs++ })
    for (let i = 0; i < 5; i++) pinger!.ws.ping()
    await waitFor(() => pongs === 5, { what: 'five pongs' })
    for (let i = 0; i < 20; i++) pinger!.ws.ping()
    expect((await withTimeout(pinger!.closed, 5_000, 'the pinger to be closed')).code).toBe(CloseCode.RateLimited)
    expect(pongs).toBe(5)
    expect(server.stats().rejections.rate_limit_closed).toBe(1)
  })

  it('with the defaults, never trips on 20 peers all joining a room at once', async () => {
    // Per remote peer, a y-webrtc peer sends an offer or answer (both in a glare) and its ICE
    // candidates: 19 remotes * 2 * (1 SDP + 15 candidates) + 1 announce = 609 messages each.
    // Each peer is a client address of its own, as 20 people would be.
    const server = await startServer()
    const peers = 20
    const perPeer = 1 + (peers - 1) * 2 * 16
    const received = new Array<number>(peers).fill(0)
    const sockets = await Promise.all(Array.from({ length: peers }, async (_, i) => {
      const ws = new WebSocket(server.url, { localAddress: `127.0.0.${10 + i}` })
      onTestFinished(() => ws.terminate())
      ws.on('message', () => { received[i]!++ })
      await once(ws, 'open')
      ws.send(JSON.stringify({ type: 'subscribe', topics: ['mesh'] }))
      return ws
    }))
    await waitFor(() => server.stats().subscriptions === peers, { what: 'all peers to subscribe' })

    const sdp = `v=0\r\n${'a=candidate-ish line for realism\r\n'.repeat(30)}`
    const candidate = { candidate: 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.7 rport 46154 generation 0 ufrag sXyz network-cost 999', sdpMLineIndex: 0, sdpMid: '0' }
    sockets.forEach((ws, i) => {
      const send = (data: unknown): void => ws.send(JSON.stringify({ type: 'publish', topic: 'mesh', data }))
      send({ type: 'announce', from: `peer-${i}` })
      for (let to = 0; to < peers; to++) {
        if (to === i) continue
        for (const kind of ['offer', 'answer']) {
          send({ to: `peer-${to}`, from: `peer-${i}`, type: 'signal', token: Math.random(), signal: { type: kind, sdp } })
          for (let c = 0; c < 15; c++) send({ to: `peer-${to}`, from: `peer-${i}`, type: 'signal', token: 1, signal: { candidate } })
        }
      }
    })

    await waitFor(() => received.every((n) => n === peers * perPeer), { timeout: 25_000, what: `every peer to receive ${peers * perPeer} messages` })
    const { rejections, connections } = server.stats()
    expect(connections).toBe(peers)
    expect(Object.values(rejections).reduce((a, b) => a + b, 0)).toBe(0)
  })
})

import { describe, expect, it, onTestFinished } from 'vitest'
import { WebSocket } from 'ws'
import { CloseCode } from '../signaling/index.js'
import { createBucket, take } from '../signaling/rate-limit.js'
import { connectMany, startServer } from './helpers/signaling.js'
import { once, waitFor, withTimeout } from './helpers/wait.js'

describe('token bucket', () => {
  const limit = { rate: 10, burst: 5 }

  it('allows a full burst back to back, then drops', () => {
    const bucket = createBucket(limit, 0)
    const verdicts = Array.from({ length: 7 }, () => take(bucket, limit, 0))
    expect(verdicts).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop', 'drop'])
  })

  it('refills at the rate, never above the burst', () => {
    const bucket = createBucket(limit, 0)
    for (let i = 0; i < 5; i++) take(bucket, limit, 0)
    expect(take(bucket, limit, 0)).toBe('drop')
    // 1 s later: 10 tokens earned, which repay the debt of the dropped message and fill the bucket.
    expect(Array.from({ length: 6 }, () => take(bucket, limit, 1000))).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop'])
    // 0.2 s later: 2 tokens.
    expect(Array.from({ length: 3 }, () => take(bucket, limit, 1200))).toEqual(['allow', 'drop', 'drop'])
  })

  it('closes a sender that keeps going while throttled', () => {
    const bucket = createBucket(limit, 0)
    const verdicts = Array.from({ length: 10 }, () => take(bucket, limit, 0))
    expect(verdicts.slice(5)).toEqual(['drop', 'drop', 'drop', 'drop', 'close'])
  })

  it('forgives a sender that pauses after being throttled', () => {
    const bucket = createBucket(limit, 0)
    for (let i = 0; i < 8; i++) take(bucket, limit, 0)
    expect(take(bucket, limit, 1000)).toBe('allow')
  })

  it('ignores a clock that goes backwards', () => {
    const bucket = createBucket(limit, 1000)
    expect(take(bucket, limit, 0)).toBe('allow')
    expect(bucket.tokens).toBe(4)
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

/**
 * The bridge: its rule (pure), and rooms whose maxConns would otherwise split them, in memory.
 * The same over real WebRTC is in test/integration.test.ts (12 peers, maxConns 4).
 */
import { ObservableV2 } from 'lib0/observable'
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import { joinRoom, type Session } from '../src/session.js'
import type { SessionStore } from '../src/store/store.js'
import { answerOutsider, Bridge, BRIDGE_CONNECT_TIMEOUT, DEFAULT_BRIDGE_GRACE, isBridge, isPartitioned } from '../src/transport/bridge.js'
import type { Link, LinkConnection, LinkEvents } from '../src/transport/link.js'
import type { Component } from '../src/transport/relay.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { waitFor } from './helpers/wait.js'

const component = (...ids: string[]): Component => ({ ids: new Set(ids), size: ids.length })

describe('the bridge rule', () => {
  it('makes the smallest id of a component its bridge', () => {
    expect(isBridge('b', component('b', 'c', 'd'))).toBe(true)
    expect(isBridge('c', component('b', 'c', 'd'))).toBe(false)
    expect(isPartitioned(5, component('b', 'c', 'd'))).toBe(true)
    expect(isPartitioned(3, component('b', 'c', 'd'))).toBe(false)
  })

  it('connects a partitioned component\'s bridge to an outsider (the link keeps the initiator rule)', () => {
    const mine = component('b', 'c', 'd')
    expect(answerOutsider({ me: 'b', from: 'x', component: mine, roomSize: 4, connected: false })).toBe(true)
    expect(answerOutsider({ me: 'b', from: 'a', component: mine, roomSize: 4, connected: false })).toBe(true)
  })

  it('does nothing when the room is whole, the peer is not the bridge, the announcer is inside, or connected', () => {
    const mine = component('b', 'c', 'd')
    expect(answerOutsider({ me: 'b', from: 'x', component: mine, roomSize: 3, connected: false })).toBe(false)
    expect(answerOutsider({ me: 'c', from: 'x', component: mine, roomSize: 4, connected: false })).toBe(false)
    expect(answerOutsider({ me: 'b', from: 'd', component: mine, roomSize: 4, connected: false })).toBe(false)
    expect(answerOutsider({ me: 'b', from: 'x', component: mine, roomSize: 4, connected: true })).toBe(false)
  })
})

/**
 * The part of a Link the bridge uses: `connect` is recorded, and the test opens connections
 * (`open`) and says what the component has become, as the neighbour lists would.
 */
class BridgeLink extends ObservableV2<LinkEvents> {
  readonly localId = 'a'
  readonly connects: string[] = []
  readonly connections: LinkConnection[] = []
  announce (): void {}
  connect (remoteId: string): void { this.connects.push(remoteId) }
  open (remoteId: string): void {
    const connection = { remoteId } as unknown as LinkConnection
    this.connections.push(connection)
    this.emit('open', [{ connection }])
  }
}

describe('the Bridge, one merge at a time', () => {
  afterEach(() => { vi.useRealTimers() })

  /** A lone peer (the smallest id: its own bridge) hears five others of the room at once, as a joiner of a split room does. */
  const lone = (): { link: BridgeLink, bridge: Bridge, reach: Set<string> } => {
    vi.useFakeTimers()
    const link = new BridgeLink()
    const reach = new Set(['a'])
    const bridge = new Bridge(link as unknown as Link, () => ({ ids: reach, size: reach.size }))
    link.emit('count', [{ source: 's', clients: 6 }])
    for (const id of ['k', 'l', 'n', 'x', 'y']) link.emit('heard', [{ peerId: id }])
    return { link, bridge, reach }
  }

  it('connects to one outsider, and to none of the others once the lists say they are inside', () => {
    const { link, bridge, reach } = lone()
    vi.advanceTimersByTime(2 * DEFAULT_BRIDGE_GRACE)
    expect(link.connects).toHaveLength(1)
    // The handshake takes a while; the outsiders' grace periods end meanwhile.
    vi.advanceTimersByTime(3 * DEFAULT_BRIDGE_GRACE)
    expect(link.connects).toHaveLength(1)
    link.open(link.connects[0] as string)
    for (const id of ['k', 'l', 'n', 'x', 'y']) reach.add(id)
    vi.advanceTimersByTime(BRIDGE_CONNECT_TIMEOUT * 2)
    expect(link.connects).toHaveLength(1)
    bridge.destroy()
  })

  it('connects to the next outsider once the first connection never opened', () => {
    const { link, bridge } = lone()
    vi.advanceTimersByTime(2 * DEFAULT_BRIDGE_GRACE)
    expect(link.connects).toHaveLength(1)
    vi.advanceTimersByTime(BRIDGE_CONNECT_TIMEOUT + DEFAULT_BRIDGE_GRACE)
    expect(link.connects).toHaveLength(2)
    expect(new Set(link.connects).size).toBe(2)
    bridge.destroy()
  })

  it('merges the next component after the first merge settled', () => {
    const { link, bridge, reach } = lone()
    vi.advanceTimersByTime(2 * DEFAULT_BRIDGE_GRACE)
    expect(['k', 'l', 'n']).toContain(link.connects[0])
    link.open(link.connects[0] as string)
    // The lists bring in k, l and n only: x and y are another component.
    for (const id of ['k', 'l', 'n']) reach.add(id)
    vi.advanceTimersByTime(2 * DEFAULT_BRIDGE_GRACE)
    expect(link.connects).toHaveLength(2)
    expect(['x', 'y']).toContain(link.connects[1])
    bridge.destroy()
  })
})

const joinAll = async (hub: MemoryHub, room: string, count: number, maxConns: number): Promise<Array<{ session: Session, store: SessionStore }>> => {
  const peers: Array<{ session: Session, store: SessionStore }> = []
  for (let i = 0; i < count; i++) {
    // One at a time, each once available: the order that splits a room into cliques of maxConns + 1.
    const session = joinRoom(room, { maxConns, joinTimeout: 3000 }, { link: hub.link })
    onTestFinished(() => session.leave())
    peers.push({ session, store: await session.sessionStore })
  }
  return peers
}

describe('a room with more peers than maxConns, in memory', () => {
  it('stays in one piece: 12 peers joining one at a time with maxConns 4 all see every write', { timeout: 60_000 }, async () => {
    const hub = new MemoryHub()
    const peers = await joinAll(hub, 'bridged', 12, 4)
    for (const [i, { store }] of peers.entries()) await store.set(`from-${i}`, i)
    await waitFor(() => peers.every(({ store }) => store.keys().length === 12), { timeout: 30_000, interval: 20, what: 'every write everywhere' })
    const connections = peers.map(({ session }) => session.status.webrtcPeers)
    // The mesh is partial, and bridging went beyond maxConns by little.
    expect(Math.max(...connections)).toBeLessThanOrEqual(6)
    expect(connections.reduce((a, b) => a + b, 0) / 2).toBeLessThan(12 * 11 / 2)
  })

})

/**
 * The connection handshake (transport/authenticated-link.ts) over a pair of links whose wire the
 * test controls: a first message lost in the channel (Chromium, under load, loses the answering
 * side's first send now and then) is asked for again instead of ending the connection, and what
 * arrived meanwhile is delivered after it, in order; a stock y-webrtc peer's sync step 1 is still
 * refused at once; a remote asking for HELLOs without end gets MAX_HELLO_RESENDS of them.
 */
import { describe, expect, it } from 'vitest'
import { AuthenticatedLink, HELLO_TIMEOUT, MAX_HELLO_RESENDS, MESSAGE_HELLO, MESSAGE_HELLO_AGAIN } from '../src/transport/authenticated-link.js'
import type { Link, LinkConnection, LinkEvents } from '../src/transport/link.js'
import { LeanObservable } from '../src/events.js'
import { createIdentity, type Identity } from '../src/trust/identity.js'
import { waitFor } from './helpers/wait.js'

const ROOM = 'handshake-room'

/** One end of a connection: what it sends reaches `deliver` of the other end, unless `lose` says no. */
class End implements LinkConnection {
  other!: End
  readonly sent: Uint8Array[] = []
  closed = false
  /** Decides, per message this end sends, whether the wire loses it. */
  lose: (message: Uint8Array, index: number) => boolean = () => false

  constructor (readonly link: FakeLink, readonly remoteId: string, readonly binding: { local: string, remote: string }) {}

  get writable (): boolean { return !this.closed }

  send (message: Uint8Array): boolean {
    if (this.closed) return false
    const index = this.sent.push(message) - 1
    if (!this.lose(message, index)) setTimeout(() => { if (!this.other.closed) this.other.link.emit('message', [{ connection: this.other, message }]) }, 0)
    return true
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.link.emit('close', [{ connection: this }])
    this.other.close()
  }
}

class FakeLink extends LeanObservable<LinkEvents> {
  readonly penalized: string[] = []
  constructor (readonly localId: string) { super() }
  get connections (): LinkConnection[] { return [] }
  get dropped (): Record<string, number> { return {} }
  get pending (): number { return 0 }
  get ready (): Promise<string> { return Promise.resolve(this.localId) }
  get sources (): [] { return [] }
  probe (): void {}
  announce (): void {}
  connect (): void {}
  setToken (): void {}
  diagnostics (): [] { return [] }
  penalize (remoteId: string): void { this.penalized.push(remoteId) }
  async leave (): Promise<void> {}
}

interface Side { identity: Identity, inner: FakeLink, link: AuthenticatedLink, end: End, received: Uint8Array[] }

/** Two authenticated links and one connection between them, opened on both ends at once. */
const pair = async (lose: { a?: End['lose'], b?: End['lose'] } = {}): Promise<{ a: Side, b: Side }> => {
  const [ia, ib] = await Promise.all([createIdentity(), createIdentity()])
  const side = (identity: Identity, remote: Identity, local: string, remoteFp: string, client: number): Side => {
    const inner = new FakeLink(identity.id)
    const link = new AuthenticatedLink(inner as unknown as Link, { room: ROOM, identity: Promise.resolve(identity), clientId: () => client })
    const received: Uint8Array[] = []
    link.on('message', ({ message }) => { received.push(message) })
    return { identity, inner, link, end: new End(inner, remote.id, { local, remote: remoteFp }), received }
  }
  const a = side(ia, ib, 'fp-a', 'fp-b', 2 ** 31 + 1)
  const b = side(ib, ia, 'fp-b', 'fp-a', 2 ** 31 + 2)
  a.end.other = b.end
  b.end.other = a.end
  if (lose.a !== undefined) a.end.lose = lose.a
  if (lose.b !== undefined) b.end.lose = lose.b
  a.inner.emit('open', [{ connection: a.end }])
  b.inner.emit('open', [{ connection: b.end }])
  return { a, b }
}

/** Loses the first HELLO an end sends (the wire then carries on as before). */
const firstHelloLost = (): End['lose'] => {
  let lost = false
  return (message) => {
    if (lost || message[0] !== MESSAGE_HELLO) return false
    lost = true
    return true
  }
}

const openOn = (side: Side): number => side.link.connections.length
/** Sends `message` on `side`'s verified connection once it is open. */
const sendWhenOpen = async (side: Side, messages: Uint8Array[]): Promise<void> => {
  await waitFor(() => openOn(side) === 1, { what: 'the connection to open', timeout: 5000 })
  for (const message of messages) side.link.connections[0]?.send(message)
}

describe('the handshake', () => {
  it('opens both ways when nothing is lost, and asks for nothing', async () => {
    const { a, b } = await pair()
    await waitFor(() => openOn(a) === 1 && openOn(b) === 1, { what: 'both ends open', timeout: 5000 })
    expect(a.end.sent.filter((m) => m[0] === MESSAGE_HELLO_AGAIN)).toEqual([])
    expect(b.end.sent.filter((m) => m[0] === MESSAGE_HELLO_AGAIN)).toEqual([])
    expect(a.link.dropped).toEqual({})
  })

  it('a lost first HELLO is asked for again; what came behind it is delivered after it, in order', async () => {
    // b's first send (its HELLO) never arrives; b opens (a's HELLO reached it) and sends on.
    const { a, b } = await pair({ b: firstHelloLost() })
    await sendWhenOpen(b, [new Uint8Array([35, 1]), new Uint8Array([35, 2]), new Uint8Array([1, 3])])
    await waitFor(() => openOn(a) === 1, { what: 'a to open after asking for the HELLO again', timeout: 5000 })
    await waitFor(() => a.received.length === 3, { what: 'what b sent to reach a' })
    expect(a.received.map((m) => Array.from(m))).toEqual([[35, 1], [35, 2], [1, 3]])
    expect(a.end.sent.filter((m) => m[0] === MESSAGE_HELLO_AGAIN)).toHaveLength(1)
    expect(b.end.sent.filter((m) => m[0] === MESSAGE_HELLO)).toHaveLength(2)
    expect(Object.values(a.link.dropped)).toEqual([1])
    expect(a.inner.penalized).toEqual([])
    expect(a.end.closed).toBe(false)
    // Nothing of the handshake reaches the layers above on either side.
    expect(b.received).toEqual([])
  })

  it('both first HELLOs lost: each asks, each resends, both open', async () => {
    const { a, b } = await pair({ a: firstHelloLost(), b: firstHelloLost() })
    await waitFor(() => a.end.sent.length === 1 && b.end.sent.length === 1, { what: 'both HELLOs out (and lost)' })
    // Neither side opens until the other speaks again: a message of the other makes each ask.
    a.end.send(new Uint8Array([37]))
    b.end.send(new Uint8Array([37]))
    await waitFor(() => openOn(a) === 1 && openOn(b) === 1, { what: 'both ends open', timeout: 5000 })
    expect(a.received.map((m) => Array.from(m))).toEqual([[37]])
    expect(b.received.map((m) => Array.from(m))).toEqual([[37]])
  })

  it('a stock y-webrtc peer (sync step 1 first) is still refused at once', async () => {
    const { a } = await pair({ b: () => true })
    a.inner.emit('message', [{ connection: a.end, message: new Uint8Array([0, 0, 1, 0]) }])
    await waitFor(() => a.end.closed, { what: 'the connection to close' })
    expect(a.link.dropped).toEqual({ 'a message before its handshake (a stock y-webrtc peer, or an older y-session-store)': 1 })
    expect(a.inner.penalized).toHaveLength(1)
  })

  it(`a remote asking again and again gets ${MAX_HELLO_RESENDS} more HELLOs, no more`, async () => {
    const { a, b } = await pair()
    await waitFor(() => openOn(a) === 1 && openOn(b) === 1, { what: 'both ends open', timeout: 5000 })
    for (let i = 0; i < 10; i++) b.inner.emit('message', [{ connection: b.end, message: new Uint8Array([MESSAGE_HELLO_AGAIN]) }])
    expect(b.end.sent.filter((m) => m[0] === MESSAGE_HELLO)).toHaveLength(1 + MAX_HELLO_RESENDS)
    expect(b.received).toEqual([])
  })

  it('a HELLO asked for and never sent closes the connection at the timeout', async () => {
    const { a } = await pair({ b: () => true })
    a.inner.emit('message', [{ connection: a.end, message: new Uint8Array([35, 1]) }])
    await waitFor(() => a.end.closed, { what: 'the connection to close at the timeout', timeout: HELLO_TIMEOUT + 3000 })
    expect(a.link.dropped[`no handshake within ${HELLO_TIMEOUT} ms`]).toBe(1)
    expect(a.received).toEqual([])
  })
})

/**
 * An in-memory Link: the links of one hub that share a room name are connected to each other,
 * and the hub plays the signaling server's part (it relays counts). Messages are delivered in
 * order and asynchronously, as on a data channel. Everything above the wire (the store,
 * replication, availability, peers) runs over it unchanged, many peers in one process, without
 * WebRTC: the in-memory half of the behaviour suite that also runs over real WebRTC.
 *
 * `maxConns` is honoured, and a hub's `topology` can choose whom a newcomer connects to, so a
 * hub can also make a partial mesh (a chain, say). Closing a connection is graceful, as a data
 * channel's close is: what one end sent before closing still reaches the other, which then
 * closes too.
 */

import { FrameDecoder, encodeFrames } from './framing.js'
import type { ConnectionInfo, Link, LinkConnection, LinkEvents, LinkFactory, LinkOptions, SignalingSource } from './link.js'
import { LeanObservable } from '../events.js'

const SOURCE = 'memory://hub'

const randomToken = (): string => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')

class MemoryConnection implements LinkConnection {
  peer: MemoryConnection | null = null
  #open = true
  /** The remote end closed: what it sent before still arrives, then this end closes too. */
  #closing = false
  #queue: Uint8Array[] = []
  #scheduled = false
  readonly #decoder = new FrameDecoder()

  constructor (readonly owner: MemoryLink, readonly remoteId: string, readonly binding: { local: string, remote: string }, readonly hub: MemoryHub) {}

  get writable (): boolean {
    return this.#open && !this.#closing
  }

  send (message: Uint8Array): boolean {
    if (!this.writable || this.peer === null) return false
    const frames = this.hub.frameBytes === undefined ? [message.slice()] : encodeFrames(message, this.hub.frameBytes).map((f) => f.slice())
    for (const frame of frames) {
      this.hub.wire.messages++
      this.hub.wire.bytes += frame.length
      this.peer.#deliver(frame)
    }
    return true
  }

  close (): void {
    if (!this.#open) return
    this.#open = false
    this.#queue = []
    this.hub.delivered(this)
    this.owner.closed(this)
    if (this.peer !== null) this.peer.#remoteClosed()
  }

  #remoteClosed (): void {
    if (!this.#open) return
    this.#closing = true
    if (!this.#scheduled && this.#queue.length === 0) this.close()
  }

  /** Manual delivery (the hub's `deliver`): hands on the next message that arrived; false if none. */
  deliverNext (): boolean {
    const frame = this.#queue.shift()
    if (frame === undefined || !this.#open) return false
    if (this.#queue.length === 0) this.hub.delivered(this)
    const m = this.hub.frameBytes === undefined ? frame : this.#decoder.push(frame)
    if (m !== null) this.owner.emit('message', [{ connection: this, message: m }])
    if (this.#closing && this.#queue.length === 0) this.close()
    return true
  }

  #deliver (message: Uint8Array): void {
    if (!this.#open) return
    this.#queue.push(message)
    if (this.hub.manual) {
      this.hub.waiting.add(this)
      return
    }
    if (this.#scheduled) return
    this.#scheduled = true
    setTimeout(() => {
      this.#scheduled = false
      const queue = this.#queue
      this.#queue = []
      for (const frame of queue) {
        if (!this.#open) return
        const m = this.hub.frameBytes === undefined ? frame : this.#decoder.push(frame)
        if (m !== null) this.owner.emit('message', [{ connection: this, message: m }])
      }
      if (this.#closing) this.close()
    }, 0)
  }
}

class MemoryLink extends LeanObservable<LinkEvents> implements Link {
  localId: string | undefined
  readonly ready: Promise<string>
  readonly dropped: Readonly<Record<string, number>> = {}
  readonly pending = 0
  readonly #hub: MemoryHub
  readonly #room: string
  readonly #maxConns: number
  readonly #connections = new Map<string, MemoryConnection>()
  #connected = false
  #left: Promise<void> | null = null

  constructor (hub: MemoryHub, room: string, options: LinkOptions) {
    super()
    this.#hub = hub
    this.#room = room
    this.#maxConns = options.maxConns ?? Infinity
    this.ready = options.identity.then(({ id }) => {
      this.localId = id
      return id
    })
    // As a signaling server would: connect, subscribe, announce; then the others connect to it.
    void this.ready.then(() => {
      if (this.#left !== null) return
      this.#connected = true
      this.emit('signaling', [{ sources: this.sources }])
      const members = hub.join(room, this)
      for (const other of members) other.emit('count', [{ source: SOURCE, clients: members.length }])
      for (const other of members) {
        if (other === this || other.localId === undefined) continue
        this.emit('heard', [{ peerId: other.localId }])
        other.emit('heard', [{ peerId: this.localId as string }])
      }
      for (const other of hub.topology(members.filter((m) => m !== this))) this.#connect(other)
    })
  }

  get sources (): SignalingSource[] {
    return [{ id: SOURCE, connected: this.#connected }]
  }

  get connections (): LinkConnection[] {
    return Array.from(this.#connections.values())
  }

  get hasRoom (): boolean {
    return this.#connections.size < this.#maxConns
  }

  setToken (): void {}

  penalize (remoteId: string): void {
    this.#connections.get(remoteId)?.close()
  }

  probe (): void {
    if (this.#connected) this.emit('count', [{ source: SOURCE, clients: this.#hub.members(this.#room).length }])
  }

  diagnostics (): ConnectionInfo[] {
    return []
  }

  announce (): void {
    if (!this.#connected || this.localId === undefined) return
    const me = this.localId
    setTimeout(() => {
      const members = this.#hub.members(this.#room)
      for (const other of members) {
        other.emit('count', [{ source: SOURCE, clients: members.length }])
        if (other !== this) other.emit('heard', [{ peerId: me }])
      }
    }, 0)
  }

  connect (remoteId: string): void {
    const other = this.#hub.members(this.#room).find((member) => member.localId === remoteId)
    if (other !== undefined && this.#left === null) this.#connect(other, true)
  }

  leave (): Promise<void> {
    this.#left ??= (async () => {
      this.#hub.leave(this.#room, this)
      for (const connection of Array.from(this.#connections.values())) connection.close()
      this.#connected = false
    })()
    return this.#left
  }

  /** Called by a connection of this link when it closes. */
  closed (connection: MemoryConnection): void {
    if (this.#connections.get(connection.remoteId) !== connection) return
    this.#connections.delete(connection.remoteId)
    this.emit('close', [{ connection }])
  }

  #connect (other: MemoryLink, beyondMaxConns = false): void {
    if (other === this || this.localId === undefined || other.localId === undefined || this.#connections.has(other.localId)) return
    if (!beyondMaxConns && (!this.hasRoom || !other.hasRoom)) return
    // Stand-ins for the two ends' DTLS fingerprints: fresh per connection, known to both ends.
    const ends = [randomToken(), randomToken()] as const
    const mine = new MemoryConnection(this, other.localId, { local: ends[0], remote: ends[1] }, this.#hub)
    const theirs = new MemoryConnection(other, this.localId, { local: ends[1], remote: ends[0] }, this.#hub)
    mine.peer = theirs
    theirs.peer = mine
    this.#connections.set(other.localId, mine)
    other.#connections.set(this.localId, theirs)
    this.emit('open', [{ connection: mine }])
    other.emit('open', [{ connection: theirs }])
  }
}

export interface MemoryHubOptions {
  /** Which of a room's members (in joining order) a newcomer connects to. Default all of them. */
  topology?: <T>(members: readonly T[]) => readonly T[]
  /**
   * Frame messages as a data channel does (framing.ts), with this many payload bytes per frame.
   * Default: messages cross whole.
   */
  frameBytes?: number
  /**
   * Messages wait until the test hands them on (`deliver`), in order per connection: seeded
   * random delivery across connections. Default false: each arrives on a 0 ms timer.
   */
  manual?: boolean
}

/** A signaling server and network in memory. */
export class MemoryHub {
  readonly #rooms = new Map<string, MemoryLink[]>()
  readonly topology: <T>(members: readonly T[]) => readonly T[]
  readonly frameBytes: number | undefined
  readonly manual: boolean
  /** What crossed the hub's connections: data-channel messages (frames, when framing) and bytes. */
  readonly wire = { messages: 0, bytes: 0 }
  /** With manual delivery: the connections that have messages waiting. */
  readonly waiting = new Set<LinkConnection & { deliverNext: () => boolean }>()

  constructor ({ topology = (members) => members, frameBytes, manual = false }: MemoryHubOptions = {}) {
    this.topology = topology
    this.frameBytes = frameBytes
    this.manual = manual
  }

  /** With manual delivery: hands on the next message waiting on `connection`. */
  deliver (connection: LinkConnection): boolean {
    return this.waiting.has(connection as LinkConnection & { deliverNext: () => boolean }) && (connection as MemoryConnection).deliverNext()
  }

  /** Called by a connection with nothing left waiting. */
  delivered (connection: LinkConnection): void {
    this.waiting.delete(connection as LinkConnection & { deliverNext: () => boolean })
  }

  /** The LinkFactory to pass as `runtime.link`. */
  readonly link: LinkFactory = (room, options) => new MemoryLink(this, room, options)

  members (room: string): MemoryLink[] {
    return this.#rooms.get(room) ?? []
  }

  join (room: string, link: MemoryLink): MemoryLink[] {
    const members = [...this.members(room), link]
    this.#rooms.set(room, members)
    return members
  }

  leave (room: string, link: MemoryLink): void {
    const members = this.members(room).filter((member) => member !== link)
    if (members.length === 0) this.#rooms.delete(room)
    else this.#rooms.set(room, members)
  }
}

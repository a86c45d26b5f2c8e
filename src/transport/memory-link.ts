/**
 * An in-memory Link: the links of one hub that share a room name are connected to each other,
 * and the hub plays the signaling server's part (it relays counts). Messages are delivered in
 * order and asynchronously, as on a data channel. Everything above the wire (the store,
 * replication, availability, peers) runs over it unchanged, many peers in one process, without
 * WebRTC: the in-memory half of the behaviour suite that also runs over real WebRTC.
 *
 * `maxConns` is honoured, and a hub's `topology` can choose whom a newcomer connects to, so a
 * hub can also make a partial mesh (a chain, say).
 */

import { ObservableV2 } from 'lib0/observable'
import type { ConnectionInfo, Link, LinkConnection, LinkEvents, LinkFactory, LinkOptions, SignalingSource } from './link.js'

const SOURCE = 'memory://hub'

const randomToken = (): string => Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('')

class MemoryConnection implements LinkConnection {
  peer: MemoryConnection | null = null
  #open = true
  #queue: Uint8Array[] = []
  #scheduled = false

  constructor (readonly owner: MemoryLink, readonly remoteId: string, readonly binding: { local: string, remote: string }) {}

  get writable (): boolean {
    return this.#open
  }

  send (message: Uint8Array): boolean {
    if (!this.#open || this.peer === null) return false
    this.peer.#deliver(message.slice())
    return true
  }

  close (): void {
    if (!this.#open) return
    this.#open = false
    this.#queue = []
    const peer = this.peer
    this.owner.closed(this)
    peer?.close()
  }

  #deliver (message: Uint8Array): void {
    if (!this.#open) return
    this.#queue.push(message)
    if (this.#scheduled) return
    this.#scheduled = true
    setTimeout(() => {
      this.#scheduled = false
      const queue = this.#queue
      this.#queue = []
      for (const m of queue) {
        if (!this.#open) return
        this.owner.emit('message', [{ connection: this, message: m }])
      }
    }, 0)
  }
}

class MemoryLink extends ObservableV2<LinkEvents> implements Link {
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

  #connect (other: MemoryLink): void {
    if (this.localId === undefined || other.localId === undefined || !this.hasRoom || !other.hasRoom || this.#connections.has(other.localId)) return
    // Stand-ins for the two ends' DTLS fingerprints: fresh per connection, known to both ends.
    const ends = [randomToken(), randomToken()] as const
    const mine = new MemoryConnection(this, other.localId, { local: ends[0], remote: ends[1] })
    const theirs = new MemoryConnection(other, this.localId, { local: ends[1], remote: ends[0] })
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
}

/** A signaling server and network in memory. */
export class MemoryHub {
  readonly #rooms = new Map<string, MemoryLink[]>()
  readonly topology: <T>(members: readonly T[]) => readonly T[]

  constructor ({ topology = (members) => members }: MemoryHubOptions = {}) {
    this.topology = topology
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

/**
 * The room's peers, from y-protocols awareness: each peer's awareness state carries its metadata
 * (JSON, at most `maxValueBytes`) and its id in signaling. The directory turns awareness changes
 * into `Peer` joins, leaves and updates, validates this peer's own metadata and sanitises the
 * others' (a peer cannot be trusted to obey the limit).
 *
 * A peer whose connection closed is forgotten at once, locally: awareness alone would take 30 s to
 * time it out. A peer that is still alive (reachable over another path) is seen again with its
 * next awareness update.
 */

import type { Awareness } from 'y-protocols/awareness'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { encodeValue, type Json } from './store/json.js'
import { utf8Length } from './store/limits.js'

export interface Peer {
  /** Stable for the peer's session: its Yjs client id, as a string. */
  id: string
  metadata: Json
  /** True for this peer itself. */
  local: boolean
}

export interface PeersChange {
  joined: Peer[]
  left: Peer[]
  updated: Peer[]
}

/** The fields of this library in a peer's awareness state. */
export const METADATA_FIELD = 'metadata'
export const SIGNALING_ID_FIELD = 'peerId'

/** Validates metadata (JSON, at most `maxBytes`) and returns its JSON copy; throws SessionStoreError. */
export const metadataOf = (metadata: unknown, maxBytes: number): Json => {
  const text = encodeValue(metadata)
  const bytes = utf8Length(text)
  if (bytes > maxBytes) throw new SessionStoreError(ErrorCodes.VALUE_TOO_LARGE, `metadata is ${bytes} bytes, over the limit of ${maxBytes}`)
  return JSON.parse(text) as Json
}

/** Metadata from another peer is untrusted: anything not within the rules reads as null. */
export const sanitizeMetadata = (metadata: unknown, maxBytes: number): Json => {
  try {
    return metadataOf(metadata ?? null, maxBytes)
  } catch {
    return null
  }
}

const sameJson = (a: Json, b: Json): boolean => JSON.stringify(a) === JSON.stringify(b)

export interface PeerDirectoryOptions {
  maxMetadataBytes: number
  onChange: (change: PeersChange) => void
}

export class PeerDirectory {
  readonly #awareness: Awareness
  readonly #maxMetadataBytes: number
  readonly #onChange: (change: PeersChange) => void
  readonly #peers = new Map<number, Peer>()

  constructor (awareness: Awareness, { maxMetadataBytes, onChange }: PeerDirectoryOptions) {
    this.#awareness = awareness
    this.#maxMetadataBytes = maxMetadataBytes
    this.#onChange = onChange
    awareness.on('change', this.#onAwarenessChange)
  }

  get list (): Peer[] {
    return Array.from(this.#peers.values())
  }

  /** Sets this peer's metadata (validated first: throws VALUE_TOO_LARGE or INVALID_VALUE). */
  setLocalMetadata (metadata: unknown): void {
    this.#awareness.setLocalStateField(METADATA_FIELD, metadataOf(metadata, this.#maxMetadataBytes))
  }

  /** The connection to the peer with this signaling id closed: forget its awareness state here. */
  forgetSignalingPeer (signalingId: string): void {
    const clients: number[] = []
    this.#awareness.getStates().forEach((state, client) => {
      if (client !== this.#awareness.clientID && state[SIGNALING_ID_FIELD] === signalingId) clients.push(client)
    })
    if (clients.length === 0) return
    // Only here, not for everyone: y-protocols' removeAwarenessStates would broadcast the removal,
    // and a peer that is still alive elsewhere would be dropped by all.
    for (const client of clients) {
      this.#awareness.states.delete(client)
      this.#awareness.meta.delete(client)
    }
    this.#awareness.emit('change', [{ added: [], updated: [], removed: clients }, 'peer-left'])
  }

  destroy (): void {
    this.#awareness.off('change', this.#onAwarenessChange)
  }

  #onAwarenessChange = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }): void => {
    const change: PeersChange = { joined: [], left: [], updated: [] }
    for (const client of removed) {
      const peer = this.#peers.get(client)
      if (peer === undefined) continue
      this.#peers.delete(client)
      change.left.push(peer)
    }
    for (const client of added.concat(updated)) {
      const state = this.#awareness.getStates().get(client)
      if (state === undefined) continue
      const local = client === this.#awareness.clientID
      const metadata = local ? (state[METADATA_FIELD] as Json ?? null) : sanitizeMetadata(state[METADATA_FIELD], this.#maxMetadataBytes)
      const known = this.#peers.get(client)
      if (known !== undefined && sameJson(known.metadata, metadata)) continue // a renewal, or a field peers do not show
      const peer: Peer = { id: String(client), metadata, local }
      this.#peers.set(client, peer)
      if (known === undefined) change.joined.push(peer)
      else change.updated.push(peer)
    }
    if (change.joined.length + change.left.length + change.updated.length > 0) this.#onChange(change)
  }
}

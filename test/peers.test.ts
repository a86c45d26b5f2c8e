/**
 * The peer directory over y-protocols awareness, without a network: joins, leaves and updates as
 * `Peer`s, this peer's metadata validated, the others' sanitised, a closed connection forgotten.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness'
import { PeerDirectory, SIGNALING_ID_FIELD, metadataOf, sanitizeMetadata, type PeersChange } from '../src/peers.js'
import { SessionStoreError } from '../src/errors.js'

const setup = () => {
  const mine = new Awareness(new Y.Doc())
  const changes: PeersChange[] = []
  const directory = new PeerDirectory(mine, { maxMetadataBytes: 64, onChange: (c) => changes.push(c) })
  /** Another peer's awareness, delivered to ours as an update would be. */
  const remote = (state: Record<string, unknown> | null) => {
    const theirs = new Awareness(new Y.Doc())
    theirs.setLocalState(state)
    applyAwarenessUpdate(mine, encodeAwarenessUpdate(theirs, [theirs.clientID]), 'remote')
    return theirs
  }
  return { mine, changes, directory, remote }
}

describe('peer directory', () => {
  it('lists this peer as joined, with its validated metadata', () => {
    const { changes, directory, mine } = setup()
    directory.setLocalMetadata({ name: 'Ada' })
    expect(changes).toEqual([{ joined: [{ id: String(mine.clientID), metadata: { name: 'Ada' }, local: true }], left: [], updated: [] }])
    expect(() => directory.setLocalMetadata('x'.repeat(100))).toThrowError(expect.objectContaining({ code: 'VALUE_TOO_LARGE' }) as Error)
    expect(() => directory.setLocalMetadata(() => 1)).toThrowError(SessionStoreError)
  })

  it('reports another peer joining, updating and leaving', () => {
    const { changes, directory, remote, mine } = setup()
    const bob = remote({ metadata: { name: 'Bob' } })
    expect(changes.at(-1)?.joined).toEqual([{ id: String(bob.clientID), metadata: { name: 'Bob' }, local: false }])
    bob.setLocalState({ metadata: { name: 'Bob B.' } })
    applyAwarenessUpdate(mine, encodeAwarenessUpdate(bob, [bob.clientID]), 'remote')
    expect(changes.at(-1)?.updated).toEqual([{ id: String(bob.clientID), metadata: { name: 'Bob B.' }, local: false }])
    bob.setLocalState(null)
    applyAwarenessUpdate(mine, encodeAwarenessUpdate(bob, [bob.clientID]), 'remote')
    expect(changes.at(-1)?.left.map((p) => p.id)).toEqual([String(bob.clientID)])
    expect(directory.list).toEqual([])
  })

  it('does not report a renewal or a change of fields peers do not show as an update', () => {
    const { changes, remote } = setup()
    const bob = remote({ metadata: { name: 'Bob' } })
    const before = changes.length
    bob.setLocalStateField(SIGNALING_ID_FIELD, 'abc')
    expect(changes.length).toBe(before)
  })

  it("reads another peer's metadata over the limit, or missing, as null", () => {
    const { directory, remote } = setup()
    remote({ metadata: 'x'.repeat(100) })
    remote({ name: 'no metadata field' })
    expect(directory.list.map((p) => p.metadata)).toEqual([null, null])
    expect(sanitizeMetadata(undefined, 10)).toBeNull()
    expect(metadataOf({ a: undefined, b: 1 }, 10)).toEqual({ b: 1 })
  })

  it('forgets, locally, the peers behind a closed connection', () => {
    const { directory, remote, changes, mine } = setup()
    remote({ metadata: 'carol', [SIGNALING_ID_FIELD]: 'sig-carol' })
    remote({ metadata: 'dan', [SIGNALING_ID_FIELD]: 'sig-dan' })
    directory.forgetSignalingPeer('sig-carol')
    expect(directory.list.map((p) => p.metadata)).toEqual(['dan'])
    expect(changes.at(-1)?.left.map((p) => p.metadata)).toEqual(['carol'])
    expect(mine.getStates().size).toBe(2) // dan and this peer
  })
})

// The whole API in a browser module (bundled with the app: Vite, esbuild, webpack, ...).
import { joinRoom } from 'y-session-store'

const session = joinRoom('standup-42', {
  signaling: ['ws://localhost:4444'], // the default; in production your own wss:// server
  metadata: { name: 'Ada' },          // this peer's metadata, visible to the others
})
session.on('error', (err) => console.error(err.code, err.message)) // observer exceptions, invalid remote entries, ...
addEventListener('pagehide', () => session.leave()) // so that the others see this peer go at once

// The store is available once this peer holds the room's current state.
session.on('sessionStoreAvailable', (store) => { /* ... */ }) // like the SDK's callback
const store = await session.sessionStore                    // the same store, as a promise

await store.set('pinned', { text: 'Retro at 4pm', by: 'Ada' }) // resolves the final value
store.set('spotlight', 'peer-id', (finalValue, error) => {})   // the SDK's completion form

const observer = store.observeChanges(['pinned', 'spotlight'], (key, value) => {
  // called once per key with its current value (undefined if absent), then on every change
})
store.removeObserver(observer)
store.observeAllChanges((key, value) => console.log(key, value)) // every key: the current ones, then each change

await store.object('pinned') // one-shot read
store.get('pinned')          // synchronous read of the local replica
store.has('pinned')          // whether the key holds a visible value
store.entry('pinned')        // { value, updatedBy: { id, metadata }, updatedAt }: who wrote it (below)
store.keys(); store.toJSON() // the visible keys; every visible entry in one object
store.usage(); store.limits  // { keys, bytes, limits } in use; the limits in force

session.peers                                    // [{ id, metadata, local }]
const onPeers = ({ joined, left, updated }) => {} // the first call lists this peer under joined
session.on('peers', onPeers)
session.off('peers', onPeers)                    // every event: on/off, as lib0's Observable
session.on('status', ({ signaling, webrtcPeers, available, sync, left }) => {})
session.connections                              // [{ connectionState, dataChannels }]: the WebRTC links
session.stats()                                  // { dropped: { reason: count }, pending, handshakes }: what others sent that was refused
session.room; session.doc; session.awareness     // the room's name, its Y.Doc, y-protocols' awareness (cursors, ...)
session.on('tokenExpiring', async ({ expiresAt }) => { // with a `token`: 60 s before it expires
  const answer = await fetch('/token?room=standup-42')   // your backend (examples/token-backend.mjs)
  session.setToken((await answer.json()).token)
})
session.setMetadata({ name: 'Ada L.' })

await store.delete('pinned') // or store.set('pinned', undefined)
// session.leave() resolves once the room is released; then store.closed is true, and every
// store call fails with NOT_AVAILABLE (leave() calls store.close()).

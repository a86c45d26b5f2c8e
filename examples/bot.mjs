// A Node peer: it logs every change in the room, and leaves the room when it is stopped.
// npm i y-session-store yjs ws @roamhq/wrtc, then: SIGNALING_URL=ws://localhost:4444 node bot.mjs
import { joinRoom } from 'y-session-store/node'

const session = joinRoom(process.env.ROOM ?? 'standup-42', {
  signaling: [process.env.SIGNALING_URL ?? 'ws://localhost:4444'],
  token: process.env.TOKEN, // for a signaling server with access tokens (token-backend.mjs)
  metadata: { name: 'logger bot' },
})
session.on('error', (err) => console.error(err.code, err.message))

// Leave on Ctrl-C and on a process manager's SIGTERM: a peer that dies without leave() stays in
// the others' peer lists for about 15 s, until its connections time out.
const stop = async () => {
  await session.leave()
  process.exit(0) // at once: the native WebRTC binding can hold the process for seconds more
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

const store = await session.sessionStore
console.log(`joined ${session.room} (${session.status.sync}) with ${session.peers.length - 1} other peers`)
store.observeAllChanges((key, value) => console.log(key, value))

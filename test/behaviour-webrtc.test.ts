/**
 * The shared behaviour suite over real WebRTC: each peer its own Node process (@roamhq/wrtc),
 * introduced by this project's signaling server. Runs the built package.
 */
import { runStoreBehaviourTests, type SuitePeer } from './helpers/behaviour.js'
import { joinPeer } from './helpers/peers.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'

runStoreBehaviourTests('WebRTC between processes', () => {
  let url: Promise<string> | undefined
  return {
    room: async () => {
      url ??= startSignaling().then((server) => server.url)
      await url
      return uniqueRoom('behaviour')
    },
    join: async (name, room, options = {}): Promise<SuitePeer> => {
      const peer = await joinPeer(name, room, { signaling: [await (url as Promise<string>)], ...options })
      return {
        joined: { sync: peer.joined.sync, json: peer.joined.json },
        set: async (key, value) => await peer.call('set', { key, value }),
        delete: async (key) => { await peer.call('delete', { key }) },
        toJSON: async () => await peer.call('toJSON'),
        usage: async () => await peer.call('usage'),
        observe: async (keys) => { await peer.call('observe', { keys }) },
        changes: async () => peer.events.filter((e) => e.event === 'change').map((e) => ({ key: e.key as string, value: e.value })),
        refusedSet: async (key, value) => {
          try {
            await peer.call('set', { key, value })
          } catch (err) {
            return (err as { code: string }).code
          }
          throw new Error(`set('${key}') was expected to be refused`)
        },
        writeAndLeave: async (writes) => { await peer.call('writeAndLeave', { writes }) },
        leave: async () => { await peer.call('leave') }
      }
    }
  }
})

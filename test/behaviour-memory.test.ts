/**
 * The shared behaviour suite over the in-memory link: sessions in this process, no WebRTC.
 */
import { onTestFinished } from 'vitest'
import { joinRoom } from '../src/session.js'
import { SessionStoreError } from '../src/errors.js'
import { MemoryHub } from '../src/transport/memory-link.js'
import { runStoreBehaviourTests, type SuitePeer } from './helpers/behaviour.js'

runStoreBehaviourTests('in-memory link', () => {
  const hub = new MemoryHub()
  let rooms = 0
  return {
    room: async () => `memory-room-${++rooms}`,
    join: async (_name, room, options = {}): Promise<SuitePeer> => {
      const session = joinRoom(room, options, { link: hub.link })
      onTestFinished(() => session.leave())
      const store = await session.sessionStore
      const changes: Array<{ key: string, value: unknown }> = []
      return {
        joined: { sync: session.status.sync, json: store.toJSON() },
        set: async (key, value) => await store.set(key, value),
        delete: async (key) => await store.delete(key),
        toJSON: async () => store.toJSON(),
        usage: async () => store.usage(),
        observe: async (keys) => { store.observeChanges(keys, (key, value) => changes.push({ key, value })) },
        changes: async () => changes,
        refusedSet: async (key, value) => {
          try {
            await store.set(key, value)
          } catch (err) {
            return (err as SessionStoreError).code
          }
          throw new Error(`set('${key}') was expected to be refused`)
        },
        writeAndLeave: async (writes) => {
          for (const { key, value } of writes) void store.set(key, value)
          await session.leave()
        },
        leave: async () => await session.leave()
      }
    }
  }
})

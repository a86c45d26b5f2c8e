import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { Connection } from '../signaling/connection.js'
import { connect, startServer } from './helpers/signaling.js'
import { once } from './helpers/wait.js'

describe('connection', () => {
  it('starts without a listener table and still takes listeners later', () => {
    // As ws constructs it for an upgraded socket (a null address, which @types/ws does not allow).
    const connection = Reflect.construct(Connection, [null, undefined, {}]) as Connection
    const heard: unknown[] = []
    connection.once('close', (code: number) => heard.push(code))
    connection.emit('close', 1000)
    connection.emit('close', 1001)
    expect(heard).toEqual([1000])
  })

  it('negotiates no extension with a client that offers permessage-deflate', async () => {
    const server = await startServer()
    const client = new WebSocket(server.url, { perMessageDeflate: true })
    await once(client, 'open')
    expect(client.extensions).toBe('')
    client.terminate()
    const other = await connect(server.url)
    await other.subscribe('room')
    other.publish('room', 'still relayed')
    expect(await other.next((m) => m.type === 'publish')).toMatchObject({ data: 'still relayed' })
  })
})

/**
 * Preloaded (`--import`) into y-webrtc's own `bin/server.js`, which is run unchanged. That server
 * calls `listen(PORT)` on every interface; this binds it to 127.0.0.1 instead (the benchmark
 * never listens beyond loopback), on the port it was given (0: a free one), and reports the port
 * with the 'listening' event. It also answers the same memory commands as our server's process.
 */

import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { emit, serve } from '../lib/child.js'
import { memoryCommands } from './memory.js'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (this: http.Server, ...args: unknown[]) {
  this.once('listening', () => {
    const { port } = this.address() as AddressInfo
    emit('listening', { port, url: `ws://127.0.0.1:${port}` })
  })
  return (listen as (port: number, host: string) => http.Server).call(this, Number(args[0]), '127.0.0.1')
} as typeof listen

export type YWebrtcServerCommands = typeof memoryCommands

serve(memoryCommands, { announce: false })

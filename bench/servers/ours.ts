/**
 * This library's signaling server in a process of its own: `tsx bench/servers/ours.ts '<options JSON>'`.
 * It always listens on 127.0.0.1 and a free port, which it reports with the 'listening' event.
 */

import { createSignalingServer, type SignalingServerOptions } from 'y-session-store/signaling'
import { emit, serve } from '../lib/child.js'
import { memoryCommands } from './memory.js'

const options = JSON.parse(process.argv[2] ?? '{}') as SignalingServerOptions
const server = await createSignalingServer({ ...options, port: 0, host: '127.0.0.1' })

const commands = {
  ...memoryCommands,
  stats: () => server.stats()
}

export type OurServerCommands = typeof commands

serve(commands, { announce: false })
emit('listening', { port: server.port, url: server.url })

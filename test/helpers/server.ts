/**
 * A signaling server on a free loopback port for one test, closed when the test ends.
 */
import { onTestFinished } from 'vitest'
import { createSignalingServer, type SignalingServerOptions, type SignalingServer } from '../../signaling/index.js'

export const startSignaling = async (options: SignalingServerOptions = {}): Promise<SignalingServer> => {
  const server = await createSignalingServer({ port: 0, host: '127.0.0.1', ...options })
  onTestFinished(() => server.close())
  return server
}

/** A room name no other test uses. */
export const uniqueRoom = (prefix = 'room'): string => `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`

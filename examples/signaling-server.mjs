// The signaling server from code (the y-session-store-signaling command is the same, with flags).
// npm i y-session-store yjs ws prom-client pino, then: node signaling-server.mjs
import { createSignalingServer } from 'y-session-store/signaling'

const server = await createSignalingServer({
  port: Number(process.env.PORT ?? 4444),                 // 0 picks a free one
  allowedOrigins: process.env.ALLOWED_ORIGINS?.split(','), // your app's page origins; default any
  authSecret: process.env.AUTH_SECRET,                     // set: clients need a token (token-backend.mjs)
})
console.log(`signaling server listening on ${server.url}`)

// Close every connection with 1001 (going away) on Ctrl-C or SIGTERM; the process then exits.
const stop = () => server.close()
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

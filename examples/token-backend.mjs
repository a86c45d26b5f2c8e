// Your backend mints short-lived access tokens for the rooms a signed-in user may join.
// npm i y-session-store yjs, then: AUTH_SECRET=... node token-backend.mjs (the server's secret)
import { createServer } from 'node:http'
import { createToken } from 'y-session-store/signaling'

const secret = process.env.AUTH_SECRET // the signaling server's, at least 32 bytes: never send it to a browser
if (secret === undefined) throw new Error('AUTH_SECRET is not set')

const backend = createServer(async (req, res) => {
  const room = new URL(req.url ?? '/', 'http://localhost').searchParams.get('room')
  // Check here who asks (your login's session cookie) and whether they may join `room`.
  if (room === null || !room.startsWith('standup-')) {
    res.writeHead(403).end()
    return
  }
  const token = await createToken({ secret, rooms: [room], expiresIn: '15m' })
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }))
})
const port = Number(process.env.PORT ?? 3000)
backend.listen(port, '127.0.0.1', () => console.log(`token backend listening on http://127.0.0.1:${port}`))

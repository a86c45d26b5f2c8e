// Your backend issues room tokens: who a peer is and which keys it may write (README "Permissions").
// npm i y-session-store yjs, then: node room-token-backend.mjs
import { createServer } from 'node:http'
import { createRoomToken, generateIssuerKeys } from 'y-session-store/auth'

// Make the key pair once and keep the private JWK in your secrets (here: a new pair per start).
const { publicKey, privateKey } = await generateIssuerKeys()

/** @param {import('node:http').IncomingMessage} req */
const readJson = async (req) => {
  let body = ''
  for await (const chunk of req) if ((body += chunk).length > 4096) throw new Error('too large')
  return JSON.parse(body)
}

const backend = createServer(async (req, res) => {
  // Peers (and the signaling server's --issuer-key) need the public key: serve it, or ship it.
  if (req.method === 'GET' && req.url === '/issuer') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(publicKey))
  if (req.method !== 'POST' || req.url !== '/room-token') return res.writeHead(404).end()
  try {
    // Check here who asks (your login's session cookie) and what they may do in the room.
    const { room, peerKey, user } = await readJson(req)
    const host = user === 'ada' // say: the meeting's organiser
    const write = host ? ['*'] : [`hand/${user}`] // guests raise their own hand only
    const token = await createRoomToken({ privateKey, room, user, write, peerKey, expiresIn: '15m' })
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }))
  } catch (err) {
    res.writeHead(400).end(err instanceof Error ? err.message : String(err))
  }
})
const port = Number(process.env.PORT ?? 3000)
backend.listen(port, '127.0.0.1', () => console.log(`room token backend listening on http://127.0.0.1:${port}`))

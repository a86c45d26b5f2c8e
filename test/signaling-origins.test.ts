import { describe, expect, it } from 'vitest'
import { SignalingError, createSignalingServer } from '../signaling/index.js'
import { isOriginAllowed, normalizeOrigin } from '../signaling/origins.js'
import { connect, refusedStatus, startServer } from './helpers/signaling.js'

describe('origins', () => {
  it.each([
    ['https://app.example.com', 'https://app.example.com'],
    ['https://App.Example.COM/', 'https://app.example.com'],
    ['https://app.example.com:443', 'https://app.example.com'],
    ['http://localhost:5173', 'http://localhost:5173']
  ])('reads %j as %j', (text, origin) => {
    expect(normalizeOrigin(text)).toBe(origin)
  })

  it.each(['app.example.com', 'https://app.example.com/path', 'https://app.example.com/?q', 'https://user:pw@app.example.com', 'file:///tmp/x', 'null', '*', ''])('refuses %j', (text) => {
    expect(normalizeOrigin(text)).toBeNull()
  })

  it('lets every origin in without a list, and without an Origin header', () => {
    const allowed = new Set(['https://app.example.com'])
    expect(isOriginAllowed(null, 'https://evil.example')).toBe(true)
    expect(isOriginAllowed(allowed, 'https://app.example.com')).toBe(true)
    expect(isOriginAllowed(allowed, 'https://APP.example.com')).toBe(true)
    expect(isOriginAllowed(allowed, 'https://evil.example')).toBe(false)
    expect(isOriginAllowed(allowed, 'null')).toBe(false)
    expect(isOriginAllowed(allowed, undefined)).toBe(true)
  })
})

describe('allowedOrigins on a server', () => {
  it('accepts pages of an allowed origin and refuses others with HTTP 403', async () => {
    const server = await startServer({ allowedOrigins: ['https://app.example.com', 'http://localhost:5173/'] })
    await (await connect(server.url, { headers: { Origin: 'https://app.example.com' } })).roundTrip()
    await (await connect(server.url, { headers: { Origin: 'http://localhost:5173' } })).roundTrip()
    expect(await refusedStatus(server.url, { headers: { Origin: 'https://evil.example' } })).toBe(403)
    expect(await refusedStatus(server.url, { headers: { Origin: 'https://app.example.com.evil.example' } })).toBe(403)
    expect(await refusedStatus(server.url, { headers: { Origin: 'null' } })).toBe(403)
    // Not a browser (a Node peer): no Origin, let in.
    await (await connect(server.url)).roundTrip()
    expect(server.stats()).toMatchObject({ connections: 3 })
    expect(server.stats().rejections.forbidden_origin).toBe(3)
  })

  it('refuses an entry that is not an origin with INVALID_OPTION', async () => {
    for (const allowedOrigins of [['https://app.example.com/path'], ['*'], 'https://app.example.com' as unknown as string[], [7 as unknown as string]]) {
      const error = await createSignalingServer({ port: 0, allowedOrigins }).catch((err: unknown) => err)
      expect(error).toBeInstanceOf(SignalingError)
      expect(error).toMatchObject({ code: 'INVALID_OPTION' })
    }
  })
})

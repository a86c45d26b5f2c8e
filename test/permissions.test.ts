import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import * as Y from 'yjs'
import { SignJWT, importJWK, type JWK } from 'jose'
import { createRoomToken, generateIssuerKeys } from '../src/auth.js'
import { ErrorCodes, SessionStoreError } from '../src/errors.js'
import { decodeEnvelope, encodeEnvelope, insertSignature, encodeUnsignedEnvelope, type Entry } from '../src/store/envelope.js'
import { DEFAULT_LIMITS } from '../src/store/limits.js'
import { outranks, SessionStore } from '../src/store/store.js'
import { createIdentity, type Identity } from '../src/trust/identity.js'
import { checkUse, grantsKey, patternCovers, RoomTokenVerifier, type RoomClaims } from '../src/trust/room-token.js'
import { RoomAuthority, signingInput } from '../src/trust/signed-entry.js'
import { waitFor } from './helpers/wait.js'

const ROOM = 'standup-42'
const MAP = 'session-store'
const issuer = await generateIssuerKeys()
const verifier = new RoomTokenVerifier(issuer.publicKey)

interface TestPeer {
  name: string
  identity: Identity
  authority: RoomAuthority
  token: string
  doc: Y.Doc
  store: SessionStore
  errors: SessionStoreError[]
}

const tokenFor = async (identity: Identity, user: string, write: string[], extra: { room?: string, expiresIn?: number | string } = {}): Promise<string> =>
  await createRoomToken({ privateKey: issuer.privateKey, room: extra.room ?? ROOM, user, write, peerKey: identity.publicJwk, expiresIn: extra.expiresIn })

/**
 * A key set served over HTTP on loopback, down (503) until `up` is set: a verifier of its URL, and
 * how many times it was fetched. Closed when the test ends.
 */
const jwksServer = async (): Promise<{ verifier: RoomTokenVerifier, up: boolean, fetches: number }> => {
  const state = { up: false, fetches: 0 }
  const http = createServer((_req, res) => {
    state.fetches++
    if (state.up) res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [issuer.publicKey] }))
    else res.writeHead(503).end()
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => { await new Promise((resolve) => http.close(resolve)) })
  return Object.assign(state, { verifier: new RoomTokenVerifier({ jwksUrl: `http://127.0.0.1:${(http.address() as AddressInfo).port}/jwks.json` }) })
}

/** A peer with a store over its own document; `write` null: no token at all. */
const peer = async (name: string, write: string[] | null, { restoreDelay = 20 } = {}): Promise<TestPeer> => {
  const identity = await createIdentity()
  const authority = new RoomAuthority({ room: ROOM, identity, verifier })
  const token = write === null ? '' : await tokenFor(identity, name, write)
  if (write !== null) await authority.adopt(token)
  const doc = new Y.Doc()
  const errors: SessionStoreError[] = []
  const store = new SessionStore(doc.getMap(MAP), { authority, restoreDelay, onError: (err) => errors.push(err) })
  return { name, identity, authority, token, doc, store, errors }
}

/** Connects documents: every update of one is applied to the others at once (a full mesh). */
const connect = (...docs: Y.Doc[]): void => {
  for (const doc of docs) {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === 'net') return
      for (const other of docs) if (other !== doc) Y.applyUpdate(other, update, 'net')
    })
  }
  // Bring them level first.
  for (const a of docs) for (const b of docs) if (a !== b) Y.applyUpdate(b, Y.encodeStateAsUpdate(a), 'net')
}

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(SessionStoreError)
    return (err as SessionStoreError).code
  }
  return undefined
}

/** A sealed envelope signed by `signer` for `key`, whatever its token grants: what a modified client can make. */
const forge = async (signer: TestPeer, key: string, value: unknown, { ver = 1, at = Date.now(), deleted = false, token = signer.token } = {}): Promise<string> => {
  const unsigned = encodeUnsignedEnvelope('1', at, at, { ver, deleted, signer: signer.identity.id, token }, 'null', JSON.stringify(value))
  return insertSignature(unsigned, await signer.authority.sign(key, unsigned))
}

const entryOf = (key: string, text: string): Entry => {
  const entry = decodeEnvelope(key, text, DEFAULT_LIMITS)
  if (typeof entry === 'string') throw new Error(entry)
  return entry
}

const stranger = await generateIssuerKeys()

/** A token claimed as given, signed by the room's issuer: for times createRoomToken will not make. */
const signClaims = async (claims: Record<string, unknown>): Promise<string> =>
  await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(await importJWK(issuer.privateKey, 'EdDSA'))

/**
 * Room tokens that grant every key but cannot be used for this room at the entry's signing time
 * (`at`): what a peer whose token is expired, for another room, or from another issuer holds.
 */
const unusableTokens: Array<[string, RegExp, (identity: Identity) => Promise<{ token: string, at: number }>]> = [
  ['that expired before the entry was signed', /expired/, async (identity) => {
    const now = Math.floor(Date.now() / 1000)
    return { token: await signClaims({ sub: 'mallory', room: ROOM, write: ['*'], cnf: { jwk: identity.publicJwk }, iat: now - 7200, exp: now - 3600 }), at: Date.now() }
  }],
  ['valid now, but the entry dated after its expiry', /expired/, async (identity) =>
    ({ token: await tokenFor(identity, 'mallory', ['*'], { expiresIn: 600 }), at: Date.now() + 3600_000 })],
  ['for another room', /for room 'elsewhere'/, async (identity) =>
    ({ token: await tokenFor(identity, 'mallory', ['*'], { room: 'elsewhere' }), at: Date.now() })],
  ['from another issuer', /does not verify with the room's issuer key/, async (identity) =>
    ({ token: await createRoomToken({ privateKey: stranger.privateKey, room: ROOM, user: 'mallory', write: ['*'], peerKey: identity.publicJwk }), at: Date.now() })]
]

describe('key patterns', () => {
  it.each([
    ['pinned', 'pinned', true], ['pinned', 'pinned2', false], ['hand/*', 'hand/ada', true], ['hand/*', 'hand/', true],
    ['hand/*', 'hands', false], ['*', 'anything', true], ['*', '', true], ['a*b', 'a*b', true], ['a*b', 'axb', false], ['a*b*', 'a*bc', true]
  ])('%s covers %s: %s', (pattern, key, covers) => {
    expect(patternCovers(pattern, key)).toBe(covers)
  })

  it('write [] grants nothing; several patterns grant their union', () => {
    expect(grantsKey([], 'pinned')).toBe(false)
    expect(grantsKey(['pinned', 'hand/ada'], 'hand/ada')).toBe(true)
    expect(grantsKey(['pinned', 'hand/ada'], 'hand/bob')).toBe(false)
  })
})

describe('room token verification', () => {
  const sign = async (claims: Record<string, unknown>, { key = issuer.privateKey, alg = 'EdDSA', typ = 'JWT' }: { key?: JWK, alg?: string, typ?: string } = {}): Promise<string> =>
    await new SignJWT(claims).setProtectedHeader({ alg, typ }).sign(await importJWK(key, alg))

  it('reads the claims of a minted token, bound to the peer key', async () => {
    const identity = await createIdentity()
    const claims = await verifier.verify(await tokenFor(identity, 'ada', ['pinned', 'hand/*']))
    expect(claims).toMatchObject({ user: 'ada', room: ROOM, write: ['pinned', 'hand/*'], peerId: identity.id })
    expect(checkUse(claims as RoomClaims, { room: ROOM, peerId: identity.id, at: Date.now() })).toBeNull()
  })

  it('refuses each claim wrong in turn', async () => {
    const identity = await createIdentity()
    const other = await createIdentity()
    const now = Math.floor(Date.now() / 1000)
    const good = { sub: 'ada', room: ROOM, write: ['*'], cnf: { jwk: identity.publicJwk }, iat: now, exp: now + 600 }
    const cases: Array<[string, Record<string, unknown>]> = [
      ['no sub', { ...good, sub: undefined }],
      ['an empty sub', { ...good, sub: '' }],
      ['no room', { ...good, room: undefined }],
      ['write not an array', { ...good, write: 'pinned' }],
      ['a write pattern not a string', { ...good, write: [1] }],
      ['no cnf', { ...good, cnf: undefined }],
      ['cnf.jwk not a key', { ...good, cnf: { jwk: { kty: 'RSA', n: 'x', e: 'AQAB' } } }],
      ['no exp', { ...good, exp: undefined }],
      ['no iat', { ...good, iat: undefined }]
    ]
    for (const [what, claims] of cases) {
      expect(typeof await verifier.verify(await sign(claims)), what).toBe('string')
    }
    // Claims that verify but cannot be used here, now, by this peer:
    const use = async (claims: Record<string, unknown>, peerId = identity.id): Promise<string | null> => {
      const verified = await verifier.verify(await sign(claims))
      if (typeof verified === 'string') return verified
      return checkUse(verified, { room: ROOM, peerId, at: Date.now() })
    }
    expect(await use(good)).toBeNull()
    expect(await use({ ...good, room: 'other-room' })).toMatch(/for room/)
    expect(await use({ ...good, room: 'standup-*' })).toBeNull()
    expect(await use({ ...good, room: 'retro-*' })).toMatch(/for room/)
    expect(await use({ ...good, exp: now - 1 })).toMatch(/expired/)
    expect(await use({ ...good, iat: now + 3600 })).toMatch(/issued after/)
    expect(await use(good, other.id)).toMatch(/bound to another/)
  })

  it('refuses a token of another issuer, another algorithm, another typ, or tampered with', async () => {
    const identity = await createIdentity()
    const now = Math.floor(Date.now() / 1000)
    const good = { sub: 'ada', room: ROOM, write: ['*'], cnf: { jwk: identity.publicJwk }, iat: now, exp: now + 600 }
    const stranger = await generateIssuerKeys()
    expect(await verifier.verify(await sign(good, { key: stranger.privateKey }))).toMatch(/does not verify/)
    const hs = await new SignJWT(good).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32))
    expect(await verifier.verify(hs)).toMatch(/does not verify/)
    expect(await verifier.verify(await sign(good, { typ: 'dpop+jwt' }))).toMatch(/typ/)
    const token = await sign(good)
    const [h, p, s] = token.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, write: ['*', 'more'] })).toString('base64url')}.${s}`
    expect(await verifier.verify(tampered)).toMatch(/does not verify/)
    expect(await verifier.verify('not a jwt')).toMatch(/does not verify/)
    // An ES256 issuer works the same way.
    const p256 = await generateIssuerKeys({ alg: 'ES256' })
    const es = await createRoomToken({ privateKey: p256.privateKey, room: ROOM, user: 'ada', write: [], peerKey: identity.publicJwk })
    expect(await new RoomTokenVerifier(p256.publicKey).verify(es)).toMatchObject({ user: 'ada', write: [] })
  })

  it('from a JWKS URL: a token refused because the key set could not be fetched is verified again at its next use', async () => {
    const jwks = await jwksServer()
    const remote = jwks.verifier
    const identity = await createIdentity()
    const token = await tokenFor(identity, 'ada', ['*'])
    expect(await remote.verify(token)).toMatch(/JSON Web Key Set/)
    jwks.up = true
    expect(await remote.verify(token)).toMatchObject({ user: 'ada', write: ['*'] })
    const forged = await createRoomToken({ privateKey: (await generateIssuerKeys()).privateKey, room: ROOM, user: 'eve', write: ['*'], peerKey: identity.publicJwk })
    const [h, p] = forged.split('.') as [string, string, string]
    const wrongSignature = `${h}.${p}.${token.split('.')[2] ?? ''}`
    expect(await remote.verify(wrongSignature)).toMatch(/signature verification failed/)
    expect(jwks.fetches).toBe(2)
  })

  it('from a JWKS URL: an entry refused because the key set could not be fetched is judged again at its next check', async () => {
    const jwks = await jwksServer()
    const remote = jwks.verifier
    const host = await peer('host', ['*'])
    const entry = entryOf('pinned', await forge(host, 'pinned', 'hello'))
    const reader = new RoomAuthority({ room: ROOM, identity: await createIdentity(), verifier: remote })
    expect(await reader.check('pinned', entry)).toMatch(/JSON Web Key Set/)
    jwks.up = true
    expect(await reader.check('pinned', entry)).toEqual({ user: 'host' })
    // A final verdict is kept: the entry is not verified again.
    jwks.up = false
    expect(await reader.check('pinned', entry)).toEqual({ user: 'host' })
  })

  it('adopt() refuses this peer\'s own token when it is for another room or another key', async () => {
    const identity = await createIdentity()
    const authority = new RoomAuthority({ room: ROOM, identity, verifier })
    await expect(authority.adopt(await tokenFor(identity, 'ada', ['*'], { room: 'elsewhere' }))).rejects.toThrow(/for room/)
    await expect(authority.adopt(await tokenFor(await createIdentity(), 'ada', ['*']))).rejects.toThrow(/another peer/)
    expect(authority.permissions).toBeNull()
  })
})

describe('signed entries', () => {
  it('a sealed envelope reads back with its seal; the signature covers room, key and every other field', async () => {
    const host = await peer('host', ['*'])
    const text = await forge(host, 'pinned', 'hello', { ver: 3 })
    const entry = decodeEnvelope('pinned', text, DEFAULT_LIMITS)
    if (typeof entry === 'string') throw new Error(entry)
    expect(entry.seal).toMatchObject({ ver: 3, deleted: false, signer: host.identity.id, token: host.token })
    expect(entry.value).toBe('hello')
    expect(await host.authority.check('pinned', entry)).toEqual({ user: 'host' })
    // The same text under another key, or in another room, does not verify.
    expect(await host.authority.check('spotlight', entry)).toMatch(/signature/)
    const elsewhere = new RoomAuthority({ room: 'standup-*', identity: host.identity, verifier })
    expect(await elsewhere.check('pinned', entry)).toMatch(/room|signature/)
    // Any field changed breaks the signature.
    for (const changed of [text.replace('"hello"', '"hellp"'), text.replace('"ver":3', '"ver":4'), text.replace(/"at":(\d+)/, (_m, n: string) => `"at":${Number(n) - 1}`)]) {
      const forged = decodeEnvelope('pinned', changed, DEFAULT_LIMITS)
      if (typeof forged === 'string') throw new Error(forged)
      expect(await host.authority.check('pinned', forged)).toMatch(/signature/)
    }
    expect(signingInput(ROOM, 'a\nb', 'c')).not.toEqual(signingInput(ROOM, 'a', 'b\nc'))
  })

  it('a P-256 session key (the fallback where WebCrypto lacks Ed25519) signs entries that verify the same way', async () => {
    const identity = await createIdentity({ algorithm: 'P-256' })
    expect(identity.id.startsWith('p256.')).toBe(true)
    const authority = new RoomAuthority({ room: ROOM, identity, verifier })
    await authority.adopt(await tokenFor(identity, 'p256-user', ['*']))
    const doc = new Y.Doc()
    const store = new SessionStore(doc.getMap(MAP), { authority })
    await store.set('pinned', 'from P-256')
    const reader = await peer('reader', [])
    Y.applyUpdate(reader.doc, Y.encodeStateAsUpdate(doc))
    await waitFor(() => reader.store.get('pinned') === 'from P-256')
    expect(reader.store.entry('pinned')?.updatedBy.user).toBe('p256-user')
  })

  it('where WebCrypto lacks Ed25519: the session key is P-256, and an EdDSA issuer\'s token or an Ed25519 signer\'s entry is refused, saying why', async () => {
    // Made while Ed25519 works: an entry of an Ed25519 signer, under an EdDSA and under an ES256 token.
    const es256 = await generateIssuerKeys({ alg: 'ES256' })
    const host = await peer('host', ['*'])
    const esToken = await createRoomToken({ privateKey: es256.privateKey, room: ROOM, user: 'host', write: ['*'], peerKey: host.identity.publicJwk })
    const underEdDSA = await forge(host, 'pinned', 'hello')
    const underES256 = await forge(host, 'pinned', 'hello', { token: esToken })
    const subtle = crypto.subtle as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
    const isEd25519 = (algorithm: unknown): boolean => (typeof algorithm === 'string' ? algorithm : (algorithm as { name?: string } | undefined)?.name)?.toLowerCase() === 'ed25519'
    for (const [method, at] of [['generateKey', 0], ['importKey', 2], ['sign', 0], ['verify', 0]] as const) {
      const original = (subtle[method] as (...args: unknown[]) => Promise<unknown>).bind(crypto.subtle)
      subtle[method] = async (...args: unknown[]) => isEd25519(args[at]) ? await Promise.reject(new DOMException('Unrecognized algorithm name', 'NotSupportedError')) : await original(...args)
    }
    try {
      vi.resetModules() // fresh module state: the probe and the key caches
      const identityModule = await import('../src/trust/identity.js')
      const { RoomTokenVerifier: Verifier } = await import('../src/trust/room-token.js')
      const { RoomAuthority: Authority } = await import('../src/trust/signed-entry.js')
      const self = await identityModule.createIdentity()
      expect(self.id.startsWith('p256.')).toBe(true)
      expect(await identityModule.hasEd25519()).toBe(false)
      expect(await new Verifier(issuer.publicKey).verify(host.token)).toMatch(/issuer key is Ed25519 \(EdDSA\), which this runtime's WebCrypto lacks/)
      const edAuthority = new Authority({ room: ROOM, identity: self, verifier: new Verifier(issuer.publicKey) })
      expect(await edAuthority.check('pinned', entryOf('pinned', underEdDSA))).toMatch(/lacks/)
      const esAuthority = new Authority({ room: ROOM, identity: self, verifier: new Verifier(es256.publicKey) })
      expect(await esAuthority.check('pinned', entryOf('pinned', underES256))).toMatch(/lacks Ed25519, so it cannot verify an Ed25519 peer/)
    } finally {
      for (const method of ['generateKey', 'importKey', 'sign', 'verify']) Reflect.deleteProperty(subtle, method)
      vi.resetModules()
    }
    expect(await host.authority.check('pinned', entryOf('pinned', underEdDSA))).toEqual({ user: 'host' })
  })

  it('an entry signed by a peer whose token does not grant the key, or under another peer\'s token, does not count', async () => {
    const guest = await peer('guest', ['hand/guest'])
    expect(await guest.authority.check('spotlight', entryOf('spotlight', await forge(guest, 'spotlight', 'me')))).toMatch(/does not grant/)
    // Another peer's token in my entry: the token is bound to its key, not mine.
    const host = await peer('host', ['*'])
    expect(await guest.authority.check('spotlight', entryOf('spotlight', await forge(guest, 'spotlight', 'me', { token: host.token })))).toMatch(/bound to another/)
  })

  // Each token grants every key: only the token's flaw can be what makes the entry not count.
  it.each(unusableTokens)('an entry signed under a token %s does not count, whatever it grants: %s', async (_what, reason, make) => {
    const mallory = await peer('mallory', null)
    const { token, at } = await make(mallory.identity)
    const reader = await peer('reader', [])
    expect(await reader.authority.check('spotlight', entryOf('spotlight', await forge(mallory, 'spotlight', 'me', { token, at })))).toMatch(reason)
  })

  it('an entry without a seal (a peer without auth) does not count', async () => {
    const reader = await peer('reader', [])
    expect(await reader.authority.check('spotlight', entryOf('spotlight', encodeEnvelope('1', Date.now(), Date.now(), 'null', '"me"')))).toMatch(/not signed/)
  })
})

describe('a protected store', () => {
  it('refuses writes the token does not grant with PERMISSION_DENIED, and says so beforehand with canWrite', async () => {
    const guest = await peer('guest', ['hand/guest'])
    const viewer = await peer('viewer', [])
    const anonymous = await peer('anon', null)
    expect(guest.store.canWrite('hand/guest')).toBe(true)
    expect(guest.store.canWrite('spotlight')).toBe(false)
    expect(await codeOf(guest.store.set('spotlight', 'me'))).toBe(ErrorCodes.PERMISSION_DENIED)
    expect(await codeOf(viewer.store.set('hand/guest', true))).toBe(ErrorCodes.PERMISSION_DENIED)
    expect(await codeOf(anonymous.store.set('x', 1))).toBe(ErrorCodes.PERMISSION_DENIED)
    expect(await codeOf(guest.store.delete('spotlight'))).toBe(ErrorCodes.PERMISSION_DENIED)
    expect(guest.doc.getMap(MAP).size).toBe(0)
    await expect(guest.store.set('hand/guest', true)).resolves.toBe(true)
    expect(guest.store.entry('hand/guest')?.updatedBy.user).toBe('guest')
  })

  it('an entry refused while its issuer\'s key set could not be fetched counts once it can, with no change of the key', async () => {
    const jwks = await jwksServer()
    const remote = jwks.verifier
    const host = await peer('host', ['*'])
    const doc = new Y.Doc()
    const reader = new SessionStore(doc.getMap(MAP), { authority: new RoomAuthority({ room: ROOM, identity: await createIdentity(), verifier: remote }), recheckDelay: 50, onError: () => {} })
    onTestFinished(() => reader.close())
    connect(host.doc, doc)
    await host.store.set('pinned', 'hello')
    await reader.settled()
    expect(reader.get('pinned')).toBeUndefined()
    jwks.up = true
    await waitFor(() => reader.get('pinned') === 'hello', { what: 'the entry judged again once the key set is back' })
    expect(reader.entry('pinned')?.updatedBy.user).toBe('host')
  })

  it('writes land in call order and each takes the next version', async () => {
    const host = await peer('host', ['*'])
    const results = await Promise.all([1, 2, 3, 4, 5].map(async (n) => await host.store.set('count', n)))
    expect(results).toEqual([1, 2, 3, 4, 5])
    expect(host.store.get('count')).toBe(5)
    const entry = decodeEnvelope('count', host.doc.getMap(MAP).get('count'), DEFAULT_LIMITS)
    expect(typeof entry !== 'string' && entry.seal?.ver).toBe(5)
  })

  it('a delete is a signed tombstone: the key is gone for every peer, and a replay of the old value does not bring it back', async () => {
    const host = await peer('host', ['*'])
    const guest = await peer('guest', ['hand/guest'])
    connect(host.doc, guest.doc)
    await host.store.set('pinned', 'v1')
    await waitFor(() => guest.store.get('pinned') === 'v1')
    const v1 = host.doc.getMap(MAP).get('pinned') as string
    await host.store.delete('pinned')
    await waitFor(() => !guest.store.has('pinned'))
    expect(host.doc.getMap(MAP).has('pinned')).toBe(true) // the tombstone
    guest.doc.getMap(MAP).set('pinned', v1) // the replay
    await waitFor(() => host.doc.getMap(MAP).get('pinned') !== v1 && guest.doc.getMap(MAP).get('pinned') !== v1, { what: 'the tombstone restored' })
    expect(host.store.has('pinned')).toBe(false)
    expect(guest.store.has('pinned')).toBe(false)
    await host.store.set('pinned', 'v2')
    await waitFor(() => guest.store.get('pinned') === 'v2')
  })

  describe('attacks by a peer with a valid guest token writing straight into the document', () => {
    const attacks: Array<[string, (attacker: TestPeer, host: TestPeer, map: Y.Map<unknown>) => Promise<void>]> = [
      ['garbage over the key', async (_a, _h, map) => { map.set('spotlight', 'garbage') }],
      ['a non-string over the key', async (_a, _h, map) => { map.set('spotlight', { v: 'me' }) }],
      ['an open-room envelope over the key', async (_a, _h, map) => { map.set('spotlight', encodeEnvelope('1', Date.now(), Date.now(), 'null', '"me"')) }],
      ['a forged entry: the host\'s signed entry with another value', async (_a, _h, map) => {
        map.set('spotlight', (map.get('spotlight') as string).replace('"host-2"', '"guest"'))
      }],
      ['a forged entry: right shape, signer the host, a signature of its own', async (attacker, host, map) => {
        const text = await forge(attacker, 'spotlight', 'guest', { ver: 99 })
        map.set('spotlight', text.replace(attacker.identity.id, host.identity.id).replace(attacker.token, host.token))
      }],
      ['an entry signed by the guest, whose token does not grant the key', async (attacker, _h, map) => {
        map.set('spotlight', await forge(attacker, 'spotlight', 'guest', { ver: 99 }))
      }],
      ['a replay of the host\'s older entry over its newer one', async (_a, host, map) => {
        map.set('spotlight', (host as TestPeer & { older: string }).older)
      }],
      ['a raw Yjs delete of the key', async (_a, _h, map) => { map.delete('spotlight') }],
      ['a tombstone signed by the guest', async (attacker, _h, map) => {
        map.set('spotlight', await forge(attacker, 'spotlight', null, { ver: 99, deleted: true }))
      }],
      ...unusableTokens.map(([what, _reason, make]): typeof attacks[number] => [`an entry signed under a token ${what}, granting every key`, async (attacker, _h, map) => {
        const { token, at } = await make(attacker.identity)
        map.set('spotlight', await forge(attacker, 'spotlight', 'mallory', { ver: 99, token, at }))
      }])
    ]

    it.each(attacks)('%s: every honest peer keeps reading the host\'s latest value, the room converges back to it, a late joiner reads it', async (_what, attack) => {
      const host = await peer('host', ['*'])
      const guest = await peer('guest', ['hand/guest'])
      const viewer = await peer('viewer', [])
      const attacker = await peer('mallory', ['hand/mallory'])
      connect(host.doc, guest.doc, viewer.doc, attacker.doc)
      await host.store.set('spotlight', 'host-1')
      const older = host.doc.getMap(MAP).get('spotlight') as string
      await host.store.set('spotlight', 'host-2')
      const latest = host.doc.getMap(MAP).get('spotlight') as string
      await waitFor(() => [guest, viewer, attacker].every((p) => p.store.get('spotlight') === 'host-2'))
      // The attacker's own store is bypassed: it writes into the document, as a modified client would.
      await attack(attacker, Object.assign(host, { older }), attacker.doc.getMap(MAP))
      for (const p of [host, guest, viewer]) expect(p.store.get('spotlight')).toBe('host-2')
      await waitFor(() => [host, guest, viewer, attacker].every((p) => p.doc.getMap(MAP).get('spotlight') === latest), { timeout: 2000, what: 'the room converged back to the host\'s entry' })
      for (const p of [host, guest, viewer]) {
        expect(p.store.get('spotlight')).toBe('host-2')
        expect(p.store.entry('spotlight')?.updatedBy.user).toBe('host')
      }
      const late = await peer('late', [])
      Y.applyUpdate(late.doc, Y.encodeStateAsUpdate(guest.doc), 'net')
      await waitFor(() => late.store.get('spotlight') === 'host-2', { timeout: 2000, what: 'the late joiner read the host\'s value' })
    })
  })

  it('an open-room store reads a protected room\'s values; what it writes is invisible to the protected peers', async () => {
    const host = await peer('host', ['*'])
    const doc = new Y.Doc()
    const open = new SessionStore(doc.getMap(MAP))
    connect(host.doc, doc)
    await host.store.set('pinned', 'from host')
    await host.store.set('gone', 1)
    await host.store.delete('gone')
    expect(open.get('pinned')).toBe('from host')
    expect(open.has('gone')).toBe(false)
    await open.set('other', 'from open')
    expect(open.get('other')).toBe('from open')
    await waitFor(() => host.errors.some((e) => e.code === ErrorCodes.INVALID_REMOTE_ENTRY && e.key === 'other'))
    expect(host.store.has('other')).toBe(false)
  })

  it('the last valid value is one rule: peers that see the same candidates in any order (seeded) end with the same entry, the best by version, time, text', async () => {
    const t0 = Date.now()
    const writers = await Promise.all(['a', 'b', 'c'].map(async (name) => await peer(name, ['*'])))
    const candidates: string[] = []
    for (let i = 0; i < 12; i++) {
      const writer = writers[i % 3] as TestPeer
      candidates.push(await forge(writer, 'k', `${writer.name}${i}`, { ver: 1 + (i % 4), at: t0 + (i % 5) }))
    }
    const decoded = candidates.map((text) => {
      const entry = decodeEnvelope('k', text, DEFAULT_LIMITS)
      if (typeof entry === 'string') throw new Error(entry)
      return entry
    })
    const best = decoded.reduce((a, b) => outranks(b, a) ? b : a)
    let seed = 42
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
    for (let run = 0; run < 5; run++) {
      const reader = await peer(`reader${run}`, [])
      const order = [...candidates].sort(() => random() - 0.5)
      const map = reader.doc.getMap(MAP)
      for (const text of order) {
        map.set('k', text)
        if (random() < 0.5) await new Promise<void>((resolve) => setImmediate(resolve)) // some verdicts arrive between writes
      }
      await waitFor(() => map.get('k') === best.text, { timeout: 2000, what: `run ${run} restored the best candidate` })
      expect(reader.store.get('k')).toBe(best.value)
    }
  })
})

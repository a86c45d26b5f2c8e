/**
 * A peer's identity for one session: a key pair made with WebCrypto when the session starts, and
 * a peer id derived from its public key, so that an id proves itself: whoever signs with the key
 * is the peer, and no one else can.
 *
 * - Ed25519 where the runtime has it (Node 20, current Chromium, Firefox and Safari); the id is the
 *   public key's JWK `x` (43 base64url characters). Elsewhere ECDSA P-256 (every WebCrypto); the id
 *   is `p256.` followed by the JWK's `x` and `y`, joined by a dot.
 * - The private key is not extractable: it never leaves the session.
 * - Signed data is a compact JWS (jose), never an encoding of our own.
 *
 * One key pair serves every use: signaling (announces, offers), the connection handshake, and
 * (later) signed entries and lock requests.
 */

import { CompactSign, compactVerify, exportJWK, importJWK, type JWK } from 'jose'
import { isRecord } from '../guards.js'

export interface Identity {
  /** The self-certifying peer id. */
  readonly id: string
  /** The public key, as a JWK (for tokens that bind it: `cnf.jwk`). */
  readonly publicJwk: JWK
  /** Signs a JSON payload: a compact JWS. */
  sign: (payload: Record<string, unknown>) => Promise<string>
  /** Signs raw bytes (Ed25519, or ECDSA P-256 with SHA-256): the bare signature, for signed entries. */
  signBytes: (data: Uint8Array) => Promise<Uint8Array>
}

const P256_PREFIX = 'p256.'
const B64URL = /^[A-Za-z0-9_-]+$/

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The public JWK a peer id stands for, or null when the id is not one. */
export const jwkOfPeerId = (id: string): JWK | null => {
  if (typeof id !== 'string') return null
  if (id.startsWith(P256_PREFIX)) {
    const [x, y, extra] = id.slice(P256_PREFIX.length).split('.')
    if (x === undefined || y === undefined || extra !== undefined || x.length !== 43 || y.length !== 43 || !B64URL.test(x) || !B64URL.test(y)) return null
    return { kty: 'EC', crv: 'P-256', x, y }
  }
  if (id.length !== 43 || !B64URL.test(id)) return null
  return { kty: 'OKP', crv: 'Ed25519', x: id }
}

export const peerIdOfJwk = (jwk: JWK): string | null => {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && typeof jwk.x === 'string') return jwk.x
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.x === 'string' && typeof jwk.y === 'string') return `${P256_PREFIX}${jwk.x}.${jwk.y}`
  return null
}

const algOf = (jwk: JWK): 'EdDSA' | 'ES256' => jwk.kty === 'OKP' ? 'EdDSA' : 'ES256'

let ed25519: Promise<boolean> | undefined

/**
 * Whether this runtime's WebCrypto has Ed25519 (probed once). Without it (Chromium before 137,
 * Firefox before 129, Safari before 17) a session signs with P-256, which every runtime verifies,
 * but it cannot verify what Ed25519 peers sign, nor an EdDSA issuer's room tokens.
 */
export const hasEd25519 = async (): Promise<boolean> =>
  await (ed25519 ??= crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']).then(() => true, () => false))

/** Why this runtime cannot check a signature by `id`'s key, or null when it can (as far as the algorithm goes). */
export const unverifiable = async (id: string): Promise<string | null> =>
  jwkOfPeerId(id)?.kty === 'OKP' && !await hasEd25519() ? 'this runtime\'s WebCrypto lacks Ed25519, so it cannot verify an Ed25519 peer (it signs with P-256 itself)' : null

const generate = async (algorithm: 'Ed25519' | 'P-256' | undefined): Promise<CryptoKeyPair> => {
  if (algorithm !== 'P-256') {
    try {
      return await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']) as CryptoKeyPair
    } catch (err) {
      if (algorithm === 'Ed25519') throw err
    }
  }
  return await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
}

/**
 * Makes this session's identity: Ed25519 where WebCrypto has it, else P-256; `algorithm` forces
 * one (tests of the fallback).
 */
export const createIdentity = async ({ algorithm }: { algorithm?: 'Ed25519' | 'P-256' } = {}): Promise<Identity> => {
  const { publicKey, privateKey } = await generate(algorithm)
  const publicJwk = await exportJWK(publicKey)
  const id = peerIdOfJwk(publicJwk)
  if (id === null) throw new Error('WebCrypto made a key this library cannot name')
  const alg = algOf(publicJwk)
  return {
    id,
    publicJwk,
    sign: async (payload) => await new CompactSign(encoder.encode(JSON.stringify(payload))).setProtectedHeader({ alg }).sign(privateKey),
    signBytes: async (data) => new Uint8Array(await crypto.subtle.sign(webCryptoAlgorithm(publicJwk), privateKey, data as Uint8Array<ArrayBuffer>))
  }
}

const webCryptoAlgorithm = (jwk: JWK): AlgorithmIdentifier | EcdsaParams =>
  jwk.kty === 'OKP' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' }

/** Public keys by peer id: importing one costs about as much as a verification. Bounded. */
const keys = new Map<string, Promise<CryptoKey | Uint8Array | null>>()
const MAX_CACHED_KEYS = 1024

const keyOf = (id: string): Promise<CryptoKey | Uint8Array | null> => {
  let key = keys.get(id)
  if (key === undefined) {
    const jwk = jwkOfPeerId(id)
    key = jwk === null ? Promise.resolve(null) : importJWK(jwk, algOf(jwk)).catch(() => null)
    if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value as string)
    keys.set(id, key)
  }
  return key
}

/** Whether `signature` is peer `id`'s signature of `data` (as `signBytes` makes them). */
export const verifyBytes = async (id: string, data: Uint8Array, signature: Uint8Array): Promise<boolean> => {
  const jwk = jwkOfPeerId(id)
  const key = jwk === null ? null : await keyOf(id)
  if (jwk === null || key === null || key instanceof Uint8Array) return false
  try {
    return await crypto.subtle.verify(webCryptoAlgorithm(jwk), key, signature as Uint8Array<ArrayBuffer>, data as Uint8Array<ArrayBuffer>)
  } catch {
    return false
  }
}

/**
 * Verifies that `jws` was signed by the peer `id` and returns its JSON payload, or null (a bad
 * id, a bad signature, an algorithm that does not match the id, or a payload that is not an object).
 */
export const verifySigned = async (jws: unknown, id: string): Promise<Record<string, unknown> | null> => {
  if (typeof jws !== 'string' || jws.length > 64 * 1024) return null
  const key = await keyOf(id)
  const jwk = jwkOfPeerId(id)
  if (key === null || jwk === null) return null
  try {
    const { payload, protectedHeader } = await compactVerify(jws, key, { algorithms: [algOf(jwk)] })
    const value: unknown = JSON.parse(decoder.decode(payload))
    if (protectedHeader.alg !== algOf(jwk) || !isRecord(value)) return null
    return value
  } catch {
    return null
  }
}

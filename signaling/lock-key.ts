/**
 * The arbiter's signing key: an Ed25519 key pair whose private half signs every lock grant
 * (src/locks/wire.ts has the payload) and whose public half is handed to the peers, which check
 * grants with it. Instances of one cluster must share it (the `lockKey` option, or Redis when the
 * option is not set: redis-locks.ts), or a grant from one would not verify with the key of another.
 */

import { CompactSign, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose'
import { grantPayload, verifyGrant, type GrantPayload } from '../src/locks/wire.js'
import { decodeJson, isRecord } from './protocol.js'

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/

/** Makes a fresh private Ed25519 JWK for `lockKey` (give every instance of a cluster the same one). */
export const generateLockKey = async (): Promise<JWK> => {
  const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true })
  const { kty, crv, x, d } = await exportJWK(privateKey)
  return { kty, crv, x, d }
}

/** A private Ed25519 JWK (an object, or its JSON text), or null. */
export const toLockKey = (value: unknown): JWK | null => {
  const jwk = typeof value === 'string' ? decodeJson(value) : value
  if (!isRecord(jwk) || jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') return null
  if (typeof jwk.x !== 'string' || typeof jwk.d !== 'string' || !B64URL_32.test(jwk.x) || !B64URL_32.test(jwk.d)) return null
  return { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }
}

export interface LockSigner {
  /** The public half, as peers get it. */
  readonly publicJwk: JWK
  /** A compact JWS over the grant payload of `grant`. */
  sign: (grant: Omit<GrantPayload, 'v'>) => Promise<string>
}

const encoder = new TextEncoder()

/** The signer of a private JWK; rejects when the key does not import or its `x` is not its public half. */
export const createLockSigner = async (jwk: JWK): Promise<LockSigner> => {
  const privateKey = await importJWK(jwk, 'EdDSA')
  const publicJwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string }
  const signer: LockSigner = {
    publicJwk,
    sign: async (grant) => await new CompactSign(encoder.encode(JSON.stringify(grantPayload(grant))))
      .setProtectedHeader({ alg: 'EdDSA' })
      .sign(privateKey)
  }
  // A JWK whose x is not derived from its d would sign grants nobody can verify: check once.
  const probe = { room: 'probe', key: 'probe', holder: 'probe', fencing: 1, expiresAt: 1 }
  if (await verifyGrant(await signer.sign(probe), publicJwk) === null) throw new Error('the lock key\'s x is not the public half of its d')
  return signer
}

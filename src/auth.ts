/**
 * `y-session-store/auth`: what an app's backend needs to protect rooms. It makes the issuer's key
 * pair once (`generateIssuerKeys`; keep the private JWK secret, give peers the public one) and
 * mints a room token for each peer that asks (`createRoomToken`), bound to the session key the
 * peer sent (`peerKey`: what `auth.token` is called with). Runs wherever WebCrypto does (Node 20,
 * browsers, edge runtimes); nothing here is needed by the peers themselves.
 */

import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose'
import { ErrorCodes, SessionStoreError } from './errors.js'
import { peerIdOfJwk } from './trust/identity.js'
import { MAX_PATTERN_CHARS, MAX_WRITE_PATTERNS } from './trust/room-token.js'

export { RoomTokenVerifier, checkUse, grantsKey, patternCovers, type IssuerKey, type RoomClaims } from './trust/room-token.js'
export type { Permissions } from './trust/signed-entry.js'

export interface IssuerKeys {
  /** The public JWK: `auth.issuer` of every peer, and the signaling server's `issuerKey`. */
  publicKey: JWK
  /** The private JWK: only the backend that mints tokens holds it. */
  privateKey: JWK
}

/** Makes an issuer key pair: Ed25519 (`EdDSA`) by default, or P-256 (`ES256`). */
export const generateIssuerKeys = async ({ alg = 'EdDSA' }: { alg?: 'EdDSA' | 'ES256' } = {}): Promise<IssuerKeys> => {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) })
  return { publicKey: await exportJWK(publicKey), privateKey: await exportJWK(privateKey) }
}

/** A key jose signs with: a JWK, a WebCrypto CryptoKey or a Node KeyObject. */
export type SigningKey = JWK | Parameters<SignJWT['sign']>[0]

export interface RoomTokenOptions {
  /** The issuer's private key: a JWK (from generateIssuerKeys), a CryptoKey or a KeyObject. */
  privateKey: SigningKey
  /** A room name, or a prefix ending in `*`. */
  room: string
  /** The user id (`sub`): what `store.entry(key).updatedBy.user` shows. */
  user: string
  /** Key patterns the user may set or delete: exact keys, prefixes ending in `*`, `"*"`; `[]` is read-only. */
  write: string[]
  /** The peer's session public key, as `auth.token` received it. */
  peerKey: JWK
  /** Lifetime: seconds, or a jose time span such as `'2h'`. Default 3600. */
  expiresIn?: number | string | undefined
}

const invalid = (message: string): SessionStoreError => new SessionStoreError(ErrorCodes.INVALID_OPTION, message)

/** Mints a room token (a JWT) for one peer's session key. */
export const createRoomToken = async ({ privateKey, room, user, write, peerKey, expiresIn = 3600 }: RoomTokenOptions): Promise<string> => {
  if (typeof room !== 'string' || room.length === 0) throw invalid('room must be a non-empty string')
  if (typeof user !== 'string' || user.length === 0 || user.length > 256) throw invalid('user must be a string of 1 to 256 characters')
  if (!Array.isArray(write) || write.length > MAX_WRITE_PATTERNS || !write.every((p) => typeof p === 'string' && p.length > 0 && p.length <= MAX_PATTERN_CHARS)) {
    throw invalid(`write must be an array of at most ${MAX_WRITE_PATTERNS} non-empty key patterns`)
  }
  if (typeof peerKey !== 'object' || peerKey === null || peerIdOfJwk(peerKey) === null) throw invalid('peerKey must be the peer\'s Ed25519 or P-256 public JWK')
  if (typeof expiresIn === 'number' && !(Number.isFinite(expiresIn) && expiresIn > 0)) throw invalid('expiresIn must be a positive number of seconds or a time span string')
  const jwk = privateKey as JWK
  const isJwk = typeof (privateKey as { kty?: unknown }).kty === 'string'
  const name = (privateKey as { algorithm?: { name?: string }, asymmetricKeyType?: string }).algorithm?.name ?? (privateKey as { asymmetricKeyType?: string }).asymmetricKeyType
  const alg = isJwk ? (jwk.kty === 'OKP' ? 'EdDSA' : 'ES256') : (name === 'Ed25519' || name === 'ed25519' ? 'EdDSA' : 'ES256')
  const key = isJwk ? await importJWK(jwk, alg) : privateKey as Parameters<SignJWT['sign']>[0]
  const { kty, crv, x, y } = peerKey
  const cnfJwk = kty === 'EC' ? { kty, crv, x, y } : { kty, crv, x }
  return await new SignJWT({ room, write: [...write], cnf: { jwk: cnfJwk } })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000 + expiresIn) : expiresIn)
    .sign(key)
}

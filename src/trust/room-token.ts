/**
 * Room tokens: what an app's backend issues to say who a peer is and which keys it may write.
 * A compact JWT signed by the app's issuer key (`EdDSA` with Ed25519, or `ES256`) with claims
 *
 *     { sub: <user id>, room: <room, or a prefix ending in *>, write: [<key pattern>...],
 *       cnf: { jwk: <the peer's session public key> }, exp, iat }
 *
 * A key pattern is an exact key, a prefix ending in `*`, or `*` for every key; `write: []` is
 * read-only. `cnf.jwk` (RFC 7800) binds the token to one session's key pair, so a token copied
 * from another peer is useless: only the key's holder can sign with it.
 *
 * Verification here checks the issuer's signature and the claims' shape, once per token (cached);
 * the time rule (`iat` <= signing time < `exp`) and the room and key rules are checked per use,
 * because a signed entry is judged at the time it was signed, not at the time it is read.
 */

import { compactVerify, createRemoteJWKSet, importJWK, type JWK } from 'jose'
import { isRecord } from '../guards.js'
import { hasEd25519, peerIdOfJwk } from './identity.js'

/** The issuer's public key (a JWK), or a JWKS URL to fetch it from (the app's own server). */
export type IssuerKey = JWK | { jwksUrl: string }

/** A room token's claims, verified. */
export interface RoomClaims {
  /** `sub`: the user id. */
  readonly user: string
  /** `room`: a room name, or a prefix ending in `*`. */
  readonly room: string
  /** `write`: the key patterns the user may set or delete. */
  readonly write: readonly string[]
  /** The peer id of the key in `cnf.jwk`: the only peer that may use the token. */
  readonly peerId: string
  /** `iat` and `exp`, in ms since the epoch. */
  readonly issuedAt: number
  readonly expiresAt: number
}

/** Most key patterns in one token, and characters per pattern: a bound on the work of checking a key. */
export const MAX_WRITE_PATTERNS = 256
export const MAX_PATTERN_CHARS = 1024
/** Signing times this far before `iat` still count (clocks of issuer and peer differ). */
export const CLOCK_SKEW = 60_000

const ALGORITHMS = ['EdDSA', 'ES256']
const decoder = new TextDecoder()

/** Whether `pattern` (exact, prefix ending in `*`, or `*`) covers `key`. */
export const patternCovers = (pattern: string, key: string): boolean =>
  pattern.endsWith('*') ? key.startsWith(pattern.slice(0, -1)) : key === pattern

/** Whether the `write` patterns grant `key`. */
export const grantsKey = (write: readonly string[], key: string): boolean => write.some((pattern) => patternCovers(pattern, key))

/** Whether a token's `room` claim (a name, or a prefix ending in `*`) covers `room`. */
export const coversRoom = (claim: string, room: string): boolean => patternCovers(claim, room)

/**
 * Why `claims` cannot be used by `peerId` in `room` at time `at` (ms), or null when they can:
 * `iat - CLOCK_SKEW <= at < exp`.
 */
export const checkUse = (claims: RoomClaims, { room, peerId, at }: { room: string, peerId: string, at: number }): string | null => {
  if (!coversRoom(claims.room, room)) return `the token is for room '${claims.room}', not '${room}'`
  if (claims.peerId !== peerId) return 'the token is bound to another peer\'s key (cnf.jwk)'
  if (at >= claims.expiresAt) return `the token expired at ${new Date(claims.expiresAt).toISOString()}`
  if (at < claims.issuedAt - CLOCK_SKEW) return 'the token was issued after the time of use'
  return null
}

/** Reads the claims of a payload whose signature was verified; a reason when they are malformed. */
export const readClaims = (payload: unknown): RoomClaims | string => {
  if (!isRecord(payload)) return 'the token\'s payload is not a JSON object'
  const { sub, room, write, cnf, exp, iat } = payload
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) return 'the token has no sub (user id) of 1 to 256 characters'
  if (typeof room !== 'string' || room.length === 0) return 'the token has no room'
  if (!Array.isArray(write) || write.length > MAX_WRITE_PATTERNS) return `the token's write is not an array of at most ${MAX_WRITE_PATTERNS} key patterns`
  for (const pattern of write) {
    if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > MAX_PATTERN_CHARS) return 'a write pattern of the token is not a non-empty string'
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'the token has no exp'
  if (typeof iat !== 'number' || !Number.isFinite(iat)) return 'the token has no iat'
  const jwk = isRecord(cnf) ? cnf.jwk : undefined
  const peerId = isRecord(jwk) ? peerIdOfJwk(jwk as JWK) : null
  if (peerId === null) return 'the token has no cnf.jwk (the peer\'s Ed25519 or P-256 public key)'
  return { user: sub, room, write: Object.freeze([...write] as string[]), peerId, issuedAt: iat * 1000, expiresAt: exp * 1000 }
}

type KeyResolver = Parameters<typeof compactVerify>[1]

/** The key (or key resolver) jose verifies with; a JWKS is fetched and cached by jose. */
const resolverOf = (issuer: IssuerKey): KeyResolver => {
  if ('jwksUrl' in issuer && typeof issuer.jwksUrl === 'string') return createRemoteJWKSet(new URL(issuer.jwksUrl)) as KeyResolver
  const { d: _private, ...jwk } = issuer as JWK
  const alg = jwk.kty === 'OKP' ? 'EdDSA' : 'ES256'
  let key: Promise<CryptoKey | Uint8Array> | undefined
  return (async () => await (key ??= importJWK(jwk, alg))) as KeyResolver
}

/** Checks an issuer key option: a public Ed25519 or P-256 JWK, or `{ jwksUrl }`. */
export const issuerProblem = (issuer: unknown): string | null => {
  if (!isRecord(issuer)) return 'auth.issuer must be a public JWK or { jwksUrl }'
  if ('jwksUrl' in issuer) return typeof issuer.jwksUrl === 'string' && URL.canParse(issuer.jwksUrl) ? null : 'auth.issuer.jwksUrl must be a URL'
  const { kty, crv, x, y } = issuer
  if (kty === 'OKP' && crv === 'Ed25519' && typeof x === 'string') return null
  if (kty === 'EC' && crv === 'P-256' && typeof x === 'string' && typeof y === 'string') return null
  return 'auth.issuer must be an Ed25519 (OKP) or P-256 (EC) public JWK, or { jwksUrl }'
}

/** Most tokens whose verification is cached: one per peer that wrote, in practice. */
const MAX_CACHED = 512

/**
 * jose's codes for a token that is wrong whatever the key set holds. Any other failure with a
 * remote key set (fetch failed, timed out, no key with the token's kid yet) may pass later.
 */
const FINAL_FAILURES: ReadonlySet<string> = new Set(['ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'ERR_JWS_INVALID', 'ERR_JOSE_ALG_NOT_ALLOWED', 'ERR_JOSE_NOT_SUPPORTED'])

/** A token's claims or why it is refused, and whether that will not change (see `judge`). */
export interface TokenVerdict {
  readonly verdict: RoomClaims | string
  readonly final: boolean
}

/** Verifies room tokens against one issuer; each token's signature is checked once. */
export class RoomTokenVerifier {
  readonly #key: KeyResolver
  readonly #remote: boolean
  /** Whether the issuer key is an Ed25519 JWK. */
  readonly #ed25519: boolean
  readonly #cache = new Map<string, Promise<TokenVerdict>>()

  constructor (issuer: IssuerKey) {
    this.#key = resolverOf(issuer)
    this.#remote = 'jwksUrl' in issuer
    this.#ed25519 = !this.#remote && (issuer as JWK).kty === 'OKP'
  }

  /** The token's claims, or why it is not a valid token of this issuer (no time check: see checkUse). */
  async verify (token: string): Promise<RoomClaims | string> {
    return (await this.judge(token)).verdict
  }

  /**
   * As `verify`, and whether the verdict is final: not when a remote key set could not be had
   * (fetch failed, no key with the token's kid yet), which says nothing about the token, so the
   * next use verifies again. Whatever caches a verdict built on this one must do the same.
   */
  judge (token: string): Promise<TokenVerdict> {
    let result = this.#cache.get(token)
    if (result === undefined) {
      const pending: Promise<TokenVerdict> = this.#verify(token).then((judged) => {
        if (!judged.final && this.#cache.get(token) === pending) this.#cache.delete(token)
        return judged
      })
      result = pending
      if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value as string)
      this.#cache.set(token, result)
    }
    return result
  }

  async #verify (token: string): Promise<TokenVerdict> {
    if (typeof token !== 'string' || token.length > 8192) return { verdict: 'the token is not a compact JWT', final: true }
    let verified: Awaited<ReturnType<typeof compactVerify>>
    try {
      verified = await compactVerify(token, this.#key, { algorithms: ALGORITHMS })
    } catch (err) {
      if (this.#ed25519 && !await hasEd25519()) {
        return { verdict: 'the room\'s issuer key is Ed25519 (EdDSA), which this runtime\'s WebCrypto lacks: it cannot verify the token (an ES256 issuer works everywhere)', final: true }
      }
      const code = (err as { code?: unknown }).code
      return {
        verdict: `the token does not verify with the room's issuer key (${(err as Error).message})`,
        final: !this.#remote || (typeof code === 'string' && FINAL_FAILURES.has(code))
      }
    }
    const { payload, protectedHeader } = verified
    if (protectedHeader.typ !== undefined && protectedHeader.typ !== 'JWT') return { verdict: `the token's typ is ${String(protectedHeader.typ)}, not JWT`, final: true }
    try {
      return { verdict: readClaims(JSON.parse(decoder.decode(payload))), final: true }
    } catch {
      return { verdict: 'the token\'s payload is not JSON', final: true }
    }
  }
}

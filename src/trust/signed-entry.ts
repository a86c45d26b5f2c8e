/**
 * Signed entries: what makes a write count in a protected room. Each entry carries a seal
 * (store/envelope.ts): the key's version, the signer's peer id, the signer's room token and a
 * signature by the signer's session key over
 *
 *     "y-session-store/entry/1\n" + JSON.stringify([room, key]) + "\n" + <envelope without sig>
 *
 * An entry counts when its signature verifies with the signer's key, the token verifies with the
 * room's issuer key, binds that same key (`cnf.jwk`), covers the room, was valid at the entry's
 * signing time (`at`), and its `write` patterns grant the key. Because all of that travels inside
 * the entry, a write convinces every peer however it got there: relayed, re-synced, or restored
 * by another peer after an attacker overwrote it.
 *
 * `EntryAuthority` is the store's view of that: whether this peer may write a key, the seal of a
 * local write, and the verdict on a remote entry (cached by the entry's text, so an entry is
 * verified once however often it is read).
 */

import { base64url } from 'jose'
import type { Entry } from '../store/envelope.js'
import { unverifiable, verifyBytes, type Identity } from './identity.js'
import { checkUse, grantsKey, type RoomClaims, type RoomTokenVerifier } from './room-token.js'

/** This peer's rights, from its verified token (`session.permissions`). */
export interface Permissions {
  /** The token's `sub`. */
  readonly user: string
  /** The key patterns it may write. */
  readonly write: readonly string[]
  /** When the token expires (ms): writes after it are refused until a fresh token arrives. */
  readonly expiresAt: number
}

/** A remote entry's verdict: the verified user, or why it does not count. */
export type Verdict = { readonly user: string } | string

/** What the store needs of a protected room (store/store.ts). */
export interface EntryAuthority {
  /** Why this peer may not write `key` now (no valid token, not granted, expired), or null. */
  refusal: (key: string, now: number) => string | null
  /** The signer and token a local write seals with, and the user it is attributed to. */
  readonly signer: { id: string, token: string, user: string } | null
  /** The signature (base64url) of a local write's unsigned envelope. */
  sign: (key: string, unsigned: string) => Promise<string>
  /** Whether a remote entry counts: a verdict at once when known, else a promise of it. */
  check: (key: string, entry: Entry) => Verdict | Promise<Verdict>
  /**
   * Whether the verdict `check` gave `entry` is for good, or rested on what could not be known yet
   * (its issuer's key set unreachable): then the store asks again later.
   */
  final?: (key: string, entry: Entry) => boolean
}

const PREFIX = 'y-session-store/entry/1\n'
const encoder = new TextEncoder()

/** The bytes a sealed entry's signature covers. */
export const signingInput = (room: string, key: string, unsigned: string): Uint8Array =>
  encoder.encode(`${PREFIX}${JSON.stringify([room, key])}\n${unsigned}`)

/** A verdict's cache key: the signature covers the key, so the same text under another key is another question. */
const verdictId = (key: string, entry: Entry): string => `${key.length}:${key}${entry.text}`

/** Verdicts cached per entry text: a room holds at most a few hundred live entries. */
const MAX_VERDICTS = 4096

export interface AuthorityOptions {
  room: string
  /** This session's identity (its key signs the entries), or the promise of it. */
  identity: Identity | Promise<Identity>
  verifier: RoomTokenVerifier
}

export class RoomAuthority implements EntryAuthority {
  readonly #room: string
  readonly #identity: Promise<Identity>
  /** The identity, once a token was adopted. */
  #self: Identity | null = null
  readonly #verifier: RoomTokenVerifier
  #token: string | null = null
  #permissions: Permissions | null = null
  readonly #verdicts = new Map<string, Verdict | Promise<Verdict>>()

  constructor ({ room, identity, verifier }: AuthorityOptions) {
    this.#room = room
    this.#identity = Promise.resolve(identity)
    this.#verifier = verifier
  }

  /** This peer's rights, or null while it has no valid token. */
  get permissions (): Permissions | null {
    return this.#permissions
  }

  get signer (): { id: string, token: string, user: string } | null {
    return this.#token === null || this.#permissions === null || this.#self === null ? null : { id: this.#self.id, token: this.#token, user: this.#permissions.user }
  }

  /**
   * Verifies this peer's own token and adopts it: resolves the permissions, or rejects with the
   * reason the token cannot be used (the peer stays read-only, with its previous token if any).
   */
  async adopt (token: string, now = Date.now()): Promise<Permissions> {
    const self = await this.#identity
    const claims = await this.#verifier.verify(token)
    if (typeof claims === 'string') throw new Error(claims)
    const problem = checkUse(claims, { room: this.#room, peerId: self.id, at: now })
    if (problem !== null) throw new Error(problem)
    this.#self = self
    this.#token = token
    this.#permissions = Object.freeze({ user: claims.user, write: claims.write, expiresAt: claims.expiresAt })
    return this.#permissions
  }

  /** This peer's adopted room token, or null. */
  get token (): string | null {
    return this.#token
  }

  /** Why another peer's room token does not make its payloads attributable to it now, or null. */
  async checkPeer (token: string, peerId: string, now = Date.now()): Promise<string | null> {
    const claims = await this.#verifier.verify(token)
    return typeof claims === 'string' ? claims : checkUse(claims, { room: this.#room, peerId, at: now })
  }

  refusal (key: string, now: number): string | null {
    const permissions = this.#permissions
    if (permissions === null) return 'this peer has no valid room token: it is read-only'
    if (now >= permissions.expiresAt) return 'this peer\'s room token has expired: it is read-only until a fresh one arrives'
    if (!grantsKey(permissions.write, key)) return `the room token of '${permissions.user}' does not grant '${key}' (write: ${JSON.stringify(permissions.write)})`
    return null
  }

  async sign (key: string, unsigned: string): Promise<string> {
    return base64url.encode(await (await this.#identity).signBytes(signingInput(this.#room, key, unsigned)))
  }

  final (key: string, entry: Entry): boolean {
    return this.#verdicts.has(verdictId(key, entry))
  }

  check (key: string, entry: Entry): Verdict | Promise<Verdict> {
    const id = verdictId(key, entry)
    const cached = this.#verdicts.get(id)
    if (cached !== undefined) return cached
    const pending = this.#check(key, entry).then(({ verdict, final }) => {
      // A token that could not be checked yet (its issuer's key set unreachable) is asked again next time.
      if (!final) {
        if (this.#verdicts.get(id) === pending) this.#verdicts.delete(id)
      } else if (this.#verdicts.has(id)) this.#verdicts.set(id, verdict)
      return verdict
    })
    if (this.#verdicts.size >= MAX_VERDICTS) this.#verdicts.delete(this.#verdicts.keys().next().value as string)
    this.#verdicts.set(id, pending)
    return pending
  }

  async #check (key: string, entry: Entry): Promise<{ verdict: Verdict, final: boolean }> {
    const seal = entry.seal
    if (seal === undefined) return { verdict: 'the entry is not signed (written by a peer of an open room?)', final: true }
    const { verdict: claims, final } = await this.#verifier.judge(seal.token)
    if (typeof claims === 'string') return { verdict: claims, final }
    return { verdict: await this.#checkSigned(key, entry, seal, claims), final: true }
  }

  async #checkSigned (key: string, entry: Entry, seal: NonNullable<Entry['seal']>, claims: RoomClaims): Promise<Verdict> {
    const problem = checkUse(claims, { room: this.#room, peerId: seal.signer, at: entry.at })
    if (problem !== null) return problem
    if (!grantsKey(claims.write, key)) return `the signer's token (user '${claims.user}') does not grant '${key}'`
    let signature: Uint8Array
    try {
      signature = base64url.decode(seal.signature)
    } catch {
      return 'the signature is not base64url'
    }
    if (!await verifyBytes(seal.signer, signingInput(this.#room, key, seal.unsigned), signature)) return await unverifiable(seal.signer) ?? 'the signature does not verify with the signer\'s key'
    return { user: claims.user }
  }
}

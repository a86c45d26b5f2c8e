/**
 * The access token's lifetime, as a session watches it: `tokenExpiring` is emitted TOKEN_NOTICE
 * before a JWT's `exp`, so that the app can hand a fresh one to `setToken` before the signaling
 * server closes with 4401. The token is read, not verified: the server verifies it.
 */

import { decodeJwt } from 'jose'

/** How long before an access token's expiry `tokenExpiring` is emitted. */
export const TOKEN_NOTICE = 60_000

/** The `exp` of a JWT in ms, or null (not a JWT, or no `exp`). */
export const jwtExpiry = (token: string): number | null => {
  try {
    const { exp } = decodeJwt(token)
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null
  } catch {
    return null
  }
}

/** Calls `onExpiring` TOKEN_NOTICE before the expiry of the token it last watched. */
export class TokenWatch {
  #timer: ReturnType<typeof setTimeout> | undefined
  readonly #onExpiring: (event: { expiresAt: number }) => void

  constructor (onExpiring: (event: { expiresAt: number }) => void) {
    this.#onExpiring = onExpiring
  }

  watch (token: string): void {
    this.stop()
    const expiresAt = jwtExpiry(token)
    if (expiresAt === null) return
    this.#timer = setTimeout(() => this.#onExpiring({ expiresAt }), Math.max(0, expiresAt - TOKEN_NOTICE - Date.now()))
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

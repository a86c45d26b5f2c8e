/**
 * Sender handles: the server tags every publish it relays with an opaque handle of the client
 * address that sent it, so that receivers can tell one sender from many. A client can make up any
 * number of peer ids, each with a key that signs, but it cannot make up addresses: with the
 * handle, a peer bounds what one address makes it hold (the library caps pending connections per
 * handle, src/PROTOCOL.md, issue 17) however many ids that address invents.
 *
 * The handle is of the key the per-address limits count under (client-address.ts `addressGroup`:
 * an IPv4 address, or an IPv6 /64, behind `trustProxy` the forwarded one), so that a host cannot
 * get a new handle from each address of its /64. It is an HMAC of that key, so peers do not learn
 * the address from it (they may from the ICE candidates of a connection, but not from signaling)
 * and cannot guess another address's handle. The HMAC key is random per server instance unless
 * `senderSecret` is set; instances sharing a Redis need the same secret for one address to have
 * one handle on all of them. Pure apart from the random key.
 */

import { createHmac, randomBytes } from 'node:crypto'

/** Characters of a handle: base64url of 96 bits of the HMAC. */
export const SENDER_HANDLE_LENGTH = 16

/** What a handle from another instance (over Redis) may look like at most. */
export const MAX_SENDER_HANDLE_LENGTH = 64

const HANDLE = /^[A-Za-z0-9_-]+$/

/** Whether `value` can be a handle (a bounded base64url string); input from Redis is checked with it. */
export const isSenderHandle = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && value.length <= MAX_SENDER_HANDLE_LENGTH && HANDLE.test(value)

/** Derives handles from address groups under `key` (default: 32 random bytes, this instance's own). */
export const createSenderHandles = (key: Uint8Array = randomBytes(32)): (group: string) => string => {
  const secret = Buffer.from(key)
  return (group) => createHmac('sha256', secret).update('y-session-store sender handle\0').update(group).digest('base64url').slice(0, SENDER_HANDLE_LENGTH)
}

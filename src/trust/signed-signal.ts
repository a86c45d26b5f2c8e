/**
 * Signaling payloads signed by their sender, so that an announce or an offer "from" a peer id can
 * only come from the holder of that id's key (identity.ts).
 *
 * On the wire (a publish's `data`, before the room's password encryption, if any):
 *   { type: 'announce' | 'signal', from, to?, jws }
 * where `jws` is a compact JWS by `from` over
 *   { room, type, from, to?, seq, signal?, token?, attest? }
 * `type`, `from` and `to` stay in clear for routing and must equal the signed ones. `seq` grows
 * with every payload a peer signs in a session, so a receiver refuses a replay (a seq not above the
 * last it accepted from that peer). `attest`, in protected rooms, is the sender's room token: the
 * receiver checks it is bound to `from` and valid now (attributable payloads). The signed `room` keeps a payload from being replayed into
 * another room, `to` from being redirected to another peer.
 */

import { isRecord } from '../guards.js'
import { jwkOfPeerId, unverifiable, verifySigned, type Identity } from './identity.js'

export interface SignalPayload {
  type: 'announce' | 'signal'
  from: string
  to?: string
  /** simple-peer's signal (offer, answer, candidate). */
  signal?: unknown
  /** y-webrtc's glare token. */
  token?: number
  /** A protected room's room token of the sender: makes the payload attributable to a user. */
  attest?: string
}

export interface SignedSignal extends SignalPayload {
  seq: number
}

/** Signs `payload` as the `seq`-th message of `identity` in `room`; returns the wire form. */
export const signSignal = async (identity: Identity, room: string, seq: number, payload: SignalPayload): Promise<Record<string, unknown>> => {
  const { type, to, signal, token, attest } = payload
  const signed: Record<string, unknown> = { room, type, from: identity.id, seq }
  if (to !== undefined) signed.to = to
  if (signal !== undefined) signed.signal = signal
  if (token !== undefined) signed.token = token
  if (attest !== undefined) signed.attest = attest
  const jws = await identity.sign(signed)
  return to === undefined ? { type, from: identity.id, jws } : { type, from: identity.id, to, jws }
}

/** The clear routing fields of a wire payload, before its signature is checked (cheap). */
export const routeOf = (data: unknown): { type: string, from: string, to?: string } | null => {
  if (!isRecord(data) || typeof data.type !== 'string' || typeof data.from !== 'string') return null
  if (data.to !== undefined && typeof data.to !== 'string') return null
  return data.to === undefined ? { type: data.type, from: data.from } : { type: data.type, from: data.from, to: data.to }
}

/**
 * Checks a wire payload: the signed payload, or the reason it is refused. Pure but for the
 * signature check (WebCrypto); replays are for the caller to track with `seq`.
 */
export const openSignal = async (room: string, data: unknown): Promise<SignedSignal | string> => {
  const route = routeOf(data)
  if (route === null) return 'not a signaling payload (type, from and to must be strings)'
  if (route.type !== 'announce' && route.type !== 'signal') return `unknown type '${route.type.slice(0, 32)}'`
  if (route.type === 'signal' && route.to === undefined) return 'a signal without a recipient'
  if (jwkOfPeerId(route.from) === null) return 'the sender id is not a public key (an unsigned y-webrtc peer?)'
  const signed = await verifySigned((data as Record<string, unknown>).jws, route.from)
  if (signed === null) return await unverifiable(route.from) ?? 'the signature does not verify with the sender id\'s key'
  if (signed.room !== room) return 'signed for another room'
  if (signed.type !== route.type || signed.from !== route.from || signed.to !== route.to) return 'the clear fields differ from the signed ones'
  if (!Number.isSafeInteger(signed.seq) || (signed.seq as number) < 1) return 'no valid sequence number'
  if (signed.token !== undefined && typeof signed.token !== 'number') return 'token is not a number'
  if (signed.attest !== undefined && typeof signed.attest !== 'string') return 'attest is not a token'
  const out: SignedSignal = { type: route.type, from: route.from, seq: signed.seq as number }
  if (route.to !== undefined) out.to = route.to
  if (signed.signal !== undefined) out.signal = signed.signal
  if (signed.token !== undefined) out.token = signed.token as number
  if (signed.attest !== undefined) out.attest = signed.attest as string
  return out
}

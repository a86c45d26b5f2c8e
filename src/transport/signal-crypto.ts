/**
 * y-webrtc's encryption of signaling payloads in password rooms, reproduced so that the library
 * can read what y-webrtc peers publish before y-webrtc does (to screen it) and publish what they
 * can read: base64 of [varString 'AES-GCM', varUint8Array iv, varUint8Array cipher], where the
 * plain text is lib0's `writeAny` encoding of the payload and the key is y-webrtc's
 * PBKDF2-derived AES-GCM key of the room (`provider.key`).
 */

import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as buffer from 'lib0/buffer'

/** Encrypts a payload as y-webrtc's crypto.js does: base64 of [varString 'AES-GCM', iv, cipher]. */
export const encryptSignal = async (data: unknown, key: CryptoKey): Promise<string> => {
  const plain = encoding.createEncoder()
  encoding.writeAny(plain, data as Parameters<typeof encoding.writeAny>[1])
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const cipher = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, encoding.toUint8Array(plain)))
  const out = encoding.createEncoder()
  encoding.writeVarString(out, 'AES-GCM')
  encoding.writeVarUint8Array(out, iv)
  encoding.writeVarUint8Array(out, cipher)
  return buffer.toBase64(encoding.toUint8Array(out))
}

/** Decrypts a y-webrtc encrypted payload (see y-webrtc's crypto.js); null when it cannot. */
export const decryptSignal = async (data: unknown, key: CryptoKey): Promise<unknown> => {
  if (typeof data !== 'string') return null
  try {
    const decoder = decoding.createDecoder(buffer.fromBase64(data))
    if (decoding.readVarString(decoder) !== 'AES-GCM') return null
    const iv = decoding.readVarUint8Array(decoder)
    const cipher = decoding.readVarUint8Array(decoder)
    const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, cipher))
    return decoding.readAny(decoding.createDecoder(plain))
  } catch {
    return null
  }
}

/** The room's key from its password, as y-webrtc derives it: PBKDF2-SHA-256, 100,000 rounds, the room name as salt. */
export const deriveRoomKey = async (password: string, room: string): Promise<CryptoKey> => {
  const material = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey'])
  return await crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt: new TextEncoder().encode(room), iterations: 100_000, hash: 'SHA-256' },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt']
  )
}

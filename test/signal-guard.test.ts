import { describe, expect, it } from 'vitest'
import * as buffer from 'lib0/buffer'
// y-webrtc's own encryption, to produce exactly what an encrypted room's peers publish.
// @ts-expect-error: not in y-webrtc's exports map, and untyped
import * as ycrypto from '../node_modules/y-webrtc/src/crypto.js'
import { screenSignal, shouldAnswerAnnounce } from '../src/transport/signal-guard.js'
import { decryptSignal, encryptSignal } from '../src/transport/signal-crypto.js'

const room = {
  peerId: () => 'me',
  hasConnection: (peerId: string) => peerId === 'known'
}

describe('screenSignal: what y-webrtc can process without throwing', () => {
  it.each([
    ['an announce', { type: 'announce', from: 'x' }],
    ['a probe without from/to', { type: 'y-session-store:probe' }],
    ['an offer to us', { type: 'signal', from: 'x', to: 'me', token: 1.5, signal: { type: 'offer', sdp: 'v=0' } }],
    ['a candidate to us', { type: 'signal', from: 'x', to: 'me', signal: { candidate: { candidate: '' } } }],
    ['an answer from a peer we offered to', { type: 'signal', from: 'known', to: 'me', signal: { type: 'answer', sdp: 'v=0' } }],
    ['anything addressed to someone else', { type: 'signal', from: 'x', to: 'other' }],
    ['an unknown type', { type: 'chat', from: 'x' }]
  ])('accepts %s', (_what, data) => {
    expect(screenSignal(data, room)).toBeNull()
  })

  it.each([
    ['null', null],
    ['a string', 'hello'],
    ['an array', [1]],
    ['a non-string from', { type: 'announce', from: 42 }],
    ['a non-string to', { type: 'signal', from: 'x', to: 7 }],
    ['a signal without signal', { type: 'signal', from: 'x', to: 'me' }],
    ['a string signal', { type: 'signal', from: 'x', to: 'me', signal: 'not json {' }],
    ['a non-string signal type', { type: 'signal', from: 'x', to: 'me', signal: { type: 5 } }],
    ['a non-number token', { type: 'signal', from: 'x', to: 'me', token: 'a', signal: { type: 'offer' } }],
    ['an answer from a peer we never offered to', { type: 'signal', from: 'stranger', to: 'me', signal: { type: 'answer' } }]
  ])('refuses %s', (_what, data) => {
    expect(screenSignal(data, room)).toEqual(expect.any(String))
  })
})

describe('decryptSignal', () => {
  it('reads what y-webrtc encrypts, and nothing encrypted with another password', async () => {
    const key: CryptoKey = await ycrypto.deriveKey('open sesame', 'room-1')
    const other: CryptoKey = await ycrypto.deriveKey('wrong', 'room-1')
    const payload = { type: 'announce', from: 'peer-1' }
    const published = buffer.toBase64(await ycrypto.encryptJson(payload, key))
    await expect(decryptSignal(published, key)).resolves.toEqual(payload)
    await expect(decryptSignal(published, other)).resolves.toBeNull()
    await expect(decryptSignal('not base64 !!!', key)).resolves.toBeNull()
    await expect(decryptSignal(buffer.toBase64(new Uint8Array([3, 1, 2])), key)).resolves.toBeNull()
    await expect(decryptSignal({ not: 'a string' }, key)).resolves.toBeNull()
  })

  it('encryptSignal writes what y-webrtc decrypts', async () => {
    const key: CryptoKey = await ycrypto.deriveKey('open sesame', 'room-1')
    const payload = { type: 'announce', from: 'peer-2' }
    const published = await encryptSignal(payload, key)
    await expect(ycrypto.decryptJson(buffer.fromBase64(published), key)).resolves.toEqual(payload)
  })
})

describe('shouldAnswerAnnounce: of two peers, only the smaller id initiates', () => {
  const me = (id: string, connected: string[] = []) => ({ peerId: () => id, hasConnection: (p: string) => connected.includes(p) })
  it('leaves the initiative to a smaller announcing peer', () => {
    expect(shouldAnswerAnnounce({ type: 'announce', from: 'aaa' }, me('bbb'))).toBe(true)
  })
  it('initiates itself towards a larger announcing peer', () => {
    expect(shouldAnswerAnnounce({ type: 'announce', from: 'ccc' }, me('bbb'))).toBe(false)
  })
  it('does nothing special for a peer it is connected to, its own echo, or before it has an id', () => {
    expect(shouldAnswerAnnounce({ type: 'announce', from: 'aaa' }, me('bbb', ['aaa']))).toBe(false)
    expect(shouldAnswerAnnounce({ type: 'announce', from: 'bbb' }, me('bbb'))).toBe(false)
    expect(shouldAnswerAnnounce({ type: 'announce', from: 'aaa' }, { peerId: () => undefined, hasConnection: () => false })).toBe(false)
    expect(shouldAnswerAnnounce({ type: 'signal', from: 'aaa' }, me('bbb'))).toBe(false)
  })
})

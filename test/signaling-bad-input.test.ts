import { connect as netConnect, type Socket } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import { CloseCode, type RejectionReason } from '../signaling/index.js'
import { connect, connectMany, httpGet, startServer, type TestClient } from './helpers/signaling.js'
import { once, waitFor, withTimeout } from './helpers/wait.js'

const deep = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`

/** Frames a connection survives: each is ignored and counted under `reason`. */
const IGNORED: Array<[name: string, frame: string | Buffer, binary: boolean, reason: RejectionReason]> = [
  ['a binary frame', Buffer.from([0, 1, 2, 255]), true, 'binary'],
  ['a binary frame holding valid JSON', Buffer.from('{"type":"ping"}'), true, 'binary'],
  ['empty text', '', false, 'invalid_json'],
  ['truncated JSON', '{"type":"publish","topic":"t"', false, 'invalid_json'],
  ['not JSON at all', 'hello', false, 'invalid_json'],
  ['JSON with a trailing comma', '{"type":"ping",}', false, 'invalid_json'],
  ['JSON deep enough to break a recursive parser', deep(100_000).slice(0, 60_000), false, 'invalid_json'],
  ['null', 'null', false, 'malformed'],
  ['a number', '12', false, 'malformed'],
  ['a string', '"subscribe"', false, 'malformed'],
  ['an array of messages', '[{"type":"ping"}]', false, 'malformed'],
  ['an object without type', '{"topics":["t"]}', false, 'malformed'],
  ['a numeric type', '{"type":7}', false, 'malformed'],
  ['an unknown type', '{"type":"shutdown"}', false, 'malformed'],
  ['subscribe with topics as a string', '{"type":"subscribe","topics":"t"}', false, 'malformed'],
  ['subscribe with an object in topics', '{"type":"subscribe","topics":[{"a":1}]}', false, 'malformed'],
  ['subscribe with a huge array', JSON.stringify({ type: 'subscribe', topics: Array.from({ length: 5_000 }, (_, i) => `t${i}`) }), false, 'malformed'],
  ['subscribe with a topic name too long', JSON.stringify({ type: 'subscribe', topics: ['x'.repeat(300)] }), false, 'malformed'],
  ['unsubscribe with topics null', '{"type":"unsubscribe","topics":null}', false, 'malformed'],
  ['publish with a numeric topic', '{"type":"publish","topic":5,"data":{}}', false, 'malformed'],
  ['publish without data', '{"type":"publish","topic":"shared"}', false, 'malformed'],
  ['publish with deeply nested data', `{"type":"publish","topic":"shared","data":${deep(20_000)}}`, false, 'malformed'],
  ['a __proto__ payload', '{"__proto__":{"type":"ping"},"constructor":{"prototype":{"x":1}}}', false, 'malformed'],
  ['publish to a topic not subscribed', '{"type":"publish","topic":"elsewhere","data":1}', false, 'not_subscribed']
]

/** Frames that end the sender's connection, with the close code it sees. */
const FATAL: Array<[name: string, frame: string | Buffer, code: number, reason: RejectionReason]> = [
  ['a frame over maxPayload', `{"type":"publish","topic":"shared","data":"${'x'.repeat(70_000)}"}`, CloseCode.MessageTooBig, 'too_large'],
  ['a text frame that is not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), CloseCode.InvalidPayload, 'protocol_error']
]

/** A WebSocket handshake by hand, so the test can then send frames no client library would. */
const rawWebSocket = async (port: number): Promise<Socket> => {
  const socket = netConnect(port, '127.0.0.1')
  onTestFinished(() => { socket.destroy() })
  await once(socket, 'connect')
  socket.write([
    'GET / HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))
  const head = await once<Buffer>(socket, 'data')
  expect(head.toString()).toMatch(/^HTTP\/1\.1 101/)
  return socket
}

describe('bad input', () => {
  it('survives a table of malformed frames from several clients and returns to baseline', async () => {
    const server = await startServer()
    const [alice, bob] = await connectMany(server.url, 2)
    await alice!.subscribe('shared')
    await bob!.subscribe('shared')
    const baseline = server.stats()

    const offenders = await connectMany(server.url, 3)
    for (const offender of offenders) await offender.subscribe('shared')
    IGNORED.forEach(([, frame, binary], i) => offenders[i % offenders.length]!.sendRaw(frame, binary))
    for (const offender of offenders) await offender.roundTrip()

    // The offenders are still connected and still count in the room.
    alice!.publish('shared', 'during')
    expect(await bob!.next((m) => m.type === 'publish')).toMatchObject({ data: 'during', clients: 5 })

    const doomed = await Promise.all(FATAL.map(async () => await connect(server.url)))
    for (const client of doomed) await client.subscribe('shared')
    FATAL.forEach(([, frame], i) => doomed[i]!.sendRaw(frame))
    const codes = await Promise.all(doomed.map(async (client) => (await withTimeout(client.closed, 5_000)).code))
    expect(codes).toEqual(FATAL.map(([, , code]) => code))

    const raw = await rawWebSocket(server.port)
    raw.write(Buffer.from([0x81, 0x02, 0x68, 0x69])) // an unmasked text frame: clients must mask
    await withTimeout(once(raw, 'close'), 5_000, 'the unmasked sender to be closed')

    await Promise.all(offenders.map(async (offender: TestClient) => await offender.close()))
    await waitFor(() => server.stats().connections === baseline.connections, { what: 'connections back to baseline' })

    const stats = server.stats()
    expect(stats).toMatchObject({ connections: baseline.connections, topics: baseline.topics, subscriptions: baseline.subscriptions })
    const expected: Partial<Record<RejectionReason, number>> = { protocol_error: 1 }
    for (const [, , , reason] of IGNORED) expected[reason] = (expected[reason] ?? 0) + 1
    for (const [, , , reason] of FATAL) expected[reason] = (expected[reason] ?? 0) + 1
    expect(stats.rejections).toMatchObject(expected)
    expect(stats.rejections.internal_error).toBe(0)

    alice!.publish('shared', 'after')
    expect(await bob!.next((m) => m.type === 'publish' && m.data === 'after')).toMatchObject({ clients: 2 })
    expect(await alice!.next((m) => m.type === 'publish' && m.data === 'after')).toMatchObject({ clients: 2 })
  })

  it('answers garbage on the HTTP side without affecting WebSocket clients', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    await client.subscribe('t')

    const socket = netConnect(server.port, '127.0.0.1')
    onTestFinished(() => { socket.destroy() })
    const answer: Buffer[] = []
    socket.on('data', (chunk: Buffer) => answer.push(chunk))
    socket.write('\x00\x01 not http at all\r\n\r\n')
    await withTimeout(once(socket, 'close'), 5_000, 'the garbage connection to close')
    expect(Buffer.concat(answer).toString()).toMatch(/^HTTP\/1\.1 400/)

    const plain = await httpGet(server, '/')
    expect(plain.status).toBe(404)

    client.publish('t', 'fine')
    expect(await client.next((m) => m.type === 'publish')).toMatchObject({ data: 'fine', clients: 1 })
  })
})

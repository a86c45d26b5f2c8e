import { describe, expect, it } from 'vitest'
import { AddressTable, RefusalLog, type AddressLimits } from '../signaling/address-limits.js'
import { CloseCode, type Logger, type SignalingServer } from '../signaling/index.js'
import { attempt, connect, connectMany, httpGet, startServer, uniqueTopic, type ConnectOptions, type TestClient } from './helpers/signaling.js'
import { waitFor, withTimeout } from './helpers/wait.js'

const LIMITS: AddressLimits = {
  maxConnections: 2,
  upgrades: { rate: 1, burst: 3 },
  messages: { rate: 10, burst: 5 },
  errors: { rate: 1, burst: 1 }
}

/** A logger that keeps every line, at every level. */
const recordingLogger = (): Logger & { lines: Array<{ level: string, obj: Record<string, unknown>, msg?: string }> } => {
  const lines: Array<{ level: string, obj: Record<string, unknown>, msg?: string }> = []
  const at = (level: string) => (obj: object, msg?: string) => { lines.push({ level, obj: obj as Record<string, unknown>, msg }) }
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

describe('address table', () => {
  it('admits up to maxConnections per address, and again once one is released', () => {
    const table = new AddressTable(LIMITS, 100)
    const first = table.admit('a', 0)
    expect(typeof first).toBe('object')
    expect(typeof table.admit('a', 0)).toBe('object')
    expect(table.admit('a', 0)).toBe('address_connection_limit')
    expect(typeof table.admit('b', 0)).toBe('object')
    if (typeof first === 'object') table.release(first)
    expect(typeof table.admit('a', 1000)).toBe('object')
  })

  it('refuses upgrades beyond the rate, counted in attempts, and refills', () => {
    const table = new AddressTable({ ...LIMITS, maxConnections: 10 }, 100)
    expect([0, 0, 0, 0].map(() => typeof table.admit('a', 0))).toEqual(['object', 'object', 'object', 'string'])
    expect(table.admit('a', 0)).toBe('address_connection_rate')
    // Two refused attempts are two tokens of debt: 3 s for one token.
    expect(table.admit('a', 2000)).toBe('address_connection_rate')
    expect(typeof table.admit('a', 6000)).toBe('object')
  })

  it('shares one message bucket between the connections of an address', () => {
    const table = new AddressTable(LIMITS, 100)
    const a = table.admit('a', 0)
    const b = table.admit('a', 0)
    if (typeof a !== 'object' || typeof b !== 'object') throw new Error('not admitted')
    expect(a).toBe(b)
    const verdicts = [a, b, a, b, a, b, a, b, a, b].map((entry) => table.takeMessage(entry, 0))
    expect(verdicts).toEqual(['allow', 'allow', 'allow', 'allow', 'allow', 'drop', 'drop', 'drop', 'drop', 'close'])
  })

  it('forgets an address only once it has no connection and its buckets have refilled', () => {
    const table = new AddressTable(LIMITS, 100)
    const entry = table.admit('a', 0)
    if (typeof entry !== 'object') throw new Error('not admitted')
    table.sweep(60_000)
    expect(table.size).toBe(1)
    table.release(entry)
    table.sweep(60_000)
    expect(table.size).toBe(0)

    const again = table.admit('b', 0)
    if (typeof again !== 'object') throw new Error('not admitted')
    table.release(again)
    table.sweep(500)
    expect(table.size).toBe(1)
    table.sweep(1000)
    expect(table.size).toBe(0)
  })

  it('holds at most maxIdleAddresses without connections, forgetting the oldest', () => {
    const table = new AddressTable(LIMITS, 3)
    const held = table.admit('held', 0)
    for (const key of ['a', 'b', 'c', 'd', 'e']) {
      const entry = table.admit(key, 0)
      if (typeof entry === 'object') table.release(entry)
    }
    expect(table.size).toBe(3)
    expect(typeof held).toBe('object')
    // The address with a connection is kept: admitting it again finds the same entry.
    expect(table.admit('held', 0)).toBe(held)
  })
})

describe('refusal log', () => {
  it('writes one line per address per interval, with the count of what it held back', () => {
    const logger = recordingLogger()
    const log = new RefusalLog(logger, 1000, 100)
    for (let i = 0; i < 50; i++) log.note('127.0.0.2', 'address_connection_limit', i)
    log.note('127.0.0.3', 'connection_limit', 10)
    expect(logger.lines.map((line) => line.obj)).toEqual([
      { address: '127.0.0.2', reason: 'address_connection_limit', count: 1 },
      { address: '127.0.0.3', reason: 'connection_limit', count: 1 }
    ])
    log.sweep(999)
    expect(logger.lines).toHaveLength(2)
    log.sweep(1000)
    expect(logger.lines.slice(2).map((line) => line.obj)).toEqual([{ address: '127.0.0.2', reason: 'address_connection_limit', count: 49 }])
    log.sweep(2000)
    log.sweep(3000)
    log.note('127.0.0.2', 'address_rate_limited', 3000)
    expect(logger.lines.slice(3).map((line) => line.obj)).toEqual([{ address: '127.0.0.2', reason: 'address_rate_limited', count: 1 }])
    expect(logger.lines.every((line) => line.level === 'warn')).toBe(true)
  })

  it('remembers at most maxAddresses at once', () => {
    const logger = recordingLogger()
    const log = new RefusalLog(logger, 1000, 2)
    for (const address of ['a', 'b', 'c', 'd']) log.note(address, 'address_connection_limit', 0)
    expect(logger.lines).toHaveLength(2)
  })
})

/** Connects from `options` until the server refuses (at most `max` tries); the connections and the status. */
const openUntilRefused = async (url: string, options: ConnectOptions | ((i: number) => ConnectOptions), max = 50): Promise<{ opened: TestClient[], status: number }> => {
  const opened: TestClient[] = []
  for (let i = 0; i < max; i++) {
    const result = await attempt(url, typeof options === 'function' ? options(i) : options)
    if (typeof result === 'number') return { opened, status: result }
    opened.push(result)
  }
  throw new Error(`${max} connections and no refusal`)
}

/** Subscribes both to a fresh topic and checks that a publish of `from` reaches `to`. */
const relays = async (from: TestClient, to: TestClient): Promise<void> => {
  const topic = uniqueTopic()
  await to.subscribe(topic)
  await from.subscribe(topic)
  from.publish(topic, { hello: 'there' })
  expect(await to.next((m) => m.type === 'publish' && m.topic === topic)).toMatchObject({ data: { hello: 'there' }, clients: 2 })
}

const metricLine = async (server: SignalingServer, reason: string): Promise<string | undefined> =>
  (await httpGet(server, '/metrics')).body.split('\n').find((line) => line.startsWith(`signaling_rejections_total{reason="${reason}"}`))

describe('per-address limits on a server', () => {
  it('refuses one address at its connection limit while another still connects and relays', async () => {
    const logger = recordingLogger()
    const server = await startServer({ maxConnectionsPerAddress: 5, connectionsPerSecondPerAddress: 1000, logger })
    const attacker = { localAddress: '127.0.0.2' }
    const { opened, status } = await openUntilRefused(server.url, attacker)
    expect(opened).toHaveLength(5)
    expect(status).toBe(429)
    for (let i = 0; i < 3; i++) expect(await attempt(server.url, attacker)).toBe(429)

    const bystander = await connect(server.url, { localAddress: '127.0.0.3' })
    await relays(opened[0]!, bystander)
    expect(server.stats()).toMatchObject({ connections: 6, addresses: 2 })
    expect(server.stats().rejections.address_connection_limit).toBe(4)
    expect(await metricLine(server, 'address_connection_limit')).toBe('signaling_rejections_total{reason="address_connection_limit"} 4')
    // Four refusals, one line.
    expect(logger.lines.filter((line) => line.msg === 'refused a client address')).toEqual([
      { level: 'warn', obj: { address: '127.0.0.2', reason: 'address_connection_limit', count: 1 }, msg: 'refused a client address' }
    ])

    await opened[0]!.close()
    await waitFor(() => server.stats().connections === 5, { what: 'the closed connection to be gone' })
    await (await connect(server.url, attacker)).roundTrip()
  })

  it('refuses an address that opens connections faster than its rate, even under its count', async () => {
    const server = await startServer({ maxConnectionsPerAddress: 3, connectionsPerSecondPerAddress: 0.01 })
    const clients = await connectMany(server.url, 3, { localAddress: '127.0.0.2' })
    for (const client of clients) await client.close()
    await waitFor(() => server.stats().connections === 0, { what: 'the connections to be gone' })
    expect(await attempt(server.url, { localAddress: '127.0.0.2' })).toBe(429)
    expect(server.stats().rejections.address_connection_rate).toBe(1)
    await (await connect(server.url, { localAddress: '127.0.0.3' })).roundTrip()
  })

  it('ignores X-Forwarded-For without trustProxy: a client cannot pick its address', async () => {
    const logger = recordingLogger()
    const server = await startServer({ maxConnectionsPerAddress: 2, connectionsPerSecondPerAddress: 1000, logger })
    const { opened, status } = await openUntilRefused(server.url, (i) => ({ localAddress: '127.0.0.2', headers: { 'X-Forwarded-For': `198.51.100.${i}` } }))
    expect([opened.length, status]).toEqual([2, 429])
    expect(logger.lines.filter((line) => line.msg?.includes('trustProxy is off'))).toHaveLength(1)
  })

  it('ignores forged X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const server = await startServer({ maxConnectionsPerAddress: 2, connectionsPerSecondPerAddress: 1000, trustProxy: ['127.0.0.4'] })
    const { opened, status } = await openUntilRefused(server.url, (i) => ({ localAddress: '127.0.0.5', headers: { 'X-Forwarded-For': `198.51.100.${i}` } }))
    expect([opened.length, status]).toEqual([2, 429])
  })

  it('honours X-Forwarded-For from a trusted proxy: each client behind it has its own limit', async () => {
    const server = await startServer({ maxConnectionsPerAddress: 2, connectionsPerSecondPerAddress: 1000, trustProxy: ['127.0.0.4'] })
    const viaProxy = (client: string): ConnectOptions => ({ localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': client } })
    const { opened, status } = await openUntilRefused(server.url, viaProxy('203.0.113.1'))
    expect([opened.length, status]).toEqual([2, 429])
    const other = await connect(server.url, viaProxy('203.0.113.2'))
    await relays(other, opened[0]!)
    expect(server.stats()).toMatchObject({ connections: 3, addresses: 2 })
  })

  it('with a hop count, reads the entry its proxy appended, not what the client wrote before it', async () => {
    const server = await startServer({ maxConnectionsPerAddress: 2, connectionsPerSecondPerAddress: 1000, trustProxy: 1 })
    const { opened, status } = await openUntilRefused(server.url, (i) => ({ localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': `198.51.100.${i}, 203.0.113.9` } }))
    expect([opened.length, status]).toEqual([2, 429])
  })

  it('reads the Forwarded header when told to, and counts IPv6 clients by /64', async () => {
    const server = await startServer({ maxConnectionsPerAddress: 2, connectionsPerSecondPerAddress: 1000, trustProxy: ['127.0.0.4'], proxyHeader: 'forwarded' })
    const viaProxy = (client: string): ConnectOptions => ({ localAddress: '127.0.0.4', headers: { Forwarded: `for="[${client}]:4711";proto=https` } })
    await connect(server.url, viaProxy('2001:db8:1:2::1'))
    await connect(server.url, viaProxy('2001:db8:1:2:aaaa::7'))
    expect(await attempt(server.url, viaProxy('2001:db8:1:2::3'))).toBe(429)
    await (await connect(server.url, viaProxy('2001:db8:1:3::1'))).roundTrip()
    // X-Forwarded-For is not the header this proxy writes: ignored.
    expect(await attempt(server.url, { localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': '203.0.113.1', Forwarded: 'for="[2001:db8:1:2::9]"' } })).toBe(429)
  })

  it('throttles a message flood spread over many connections of one address as one', async () => {
    const server = await startServer({
      maxConnectionsPerAddress: 5,
      connectionsPerSecondPerAddress: 1000,
      messagesPerSecondPerAddress: 0.1,
      messageBurstPerAddress: 10
    })
    const flooders = await connectMany(server.url, 5, { localAddress: '127.0.0.2' })
    const bystander = await connect(server.url, { localAddress: '127.0.0.3' })
    const pongs = (): number => flooders.reduce((n, client) => n + client.inbox.filter((m) => m.type === 'pong').length, 0)

    // 15 pings over 5 connections, well within each connection's own limit: the address's burst is 10.
    for (let i = 0; i < 3; i++) for (const client of flooders) client.send({ type: 'ping' })
    await waitFor(() => pongs() + server.stats().rejections.address_rate_limited === 15, { what: 'all 15 pings to be handled' })
    expect(pongs()).toBeGreaterThanOrEqual(10)
    expect(pongs()).toBeLessThanOrEqual(11)
    expect(server.stats().rejections.rate_limited).toBe(0)
    await bystander.roundTrip()

    // Going on while throttled: the debt reaches the burst, and each sender is closed with 4429 at its next frame.
    const open = (): TestClient[] => flooders.filter((client) => client.ws.readyState === client.ws.OPEN)
    await waitFor(() => {
      for (const client of open()) client.send({ type: 'ping' })
      return open().length === 0
    }, { interval: 20, what: 'every flooder to be closed' })
    const codes = await Promise.all(flooders.map(async (client) => (await withTimeout(client.closed, 5_000, 'a flooder to be closed')).code))
    expect(codes).toEqual(new Array(5).fill(CloseCode.RateLimited))
    expect(server.stats().rejections.rate_limit_closed).toBe(5)
    await bystander.roundTrip()
  })
})

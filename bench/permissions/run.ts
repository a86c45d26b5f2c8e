/**
 * The permissions bench (issue 12): what sealing costs. `npm run bench:permissions`.
 *
 * - In process: µs of CPU to sign one write and to verify one remote entry (token verified once
 *   and cached, as a peer does), `store.set` with and without a seal, and the bytes a seal adds.
 * - Over real WebRTC, two peer processes (bench/permissions/peer.mjs): ping-pong round trip (p50,
 *   p99) and burst throughput with auth on against auth off, side by side in one run.
 *
 * Writes bench/results/permissions.json and .md.
 */

import { fork, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import * as Y from 'yjs'
import { createRoomToken, generateIssuerKeys, RoomTokenVerifier } from '../../dist/src/auth.js'
import { decodeEnvelope, encodeEnvelope, encodeUnsignedEnvelope, insertSignature } from '../../dist/src/store/envelope.js'
import { DEFAULT_LIMITS } from '../../dist/src/store/limits.js'
import { SessionStore } from '../../dist/src/store/store.js'
import { createIdentity } from '../../dist/src/trust/identity.js'
import { RoomAuthority } from '../../dist/src/trust/signed-entry.js'
import { createSignalingServer } from '../../dist/signaling/index.js'

const ROOM = 'bench-permissions'
const issuer = await generateIssuerKeys()
const verifier = new RoomTokenVerifier(issuer.publicKey)

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
const round = (n: number, digits = 1): number => Number(n.toFixed(digits))

const authority = async (user: string): Promise<RoomAuthority> => {
  const identity = await createIdentity()
  const a = new RoomAuthority({ room: ROOM, identity, verifier })
  await a.adopt(await createRoomToken({ privateKey: issuer.privateKey, room: ROOM, user, write: ['*'], peerKey: identity.publicJwk }))
  return a
}

/** µs per call of `fn`, over `n` sequential calls after a warm-up. */
const perCall = async (n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<number> => {
  for (let i = 0; i < 200; i++) await fn(-i - 1)
  const start = process.cpuUsage()
  for (let i = 0; i < n; i++) await fn(i)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / n
}

const micro = async (): Promise<Record<string, number>> => {
  const writer = await authority('host')
  const reader = new RoomAuthority({ room: ROOM, identity: await createIdentity(), verifier })
  const signer = writer.signer as { id: string, token: string }
  const value = JSON.stringify({ text: 'x'.repeat(90) })
  const unsignedOf = (i: number): string => encodeUnsignedEnvelope('1', 1_800_000_000_000 + i, 1_800_000_000_000, { ver: i + 1000, deleted: false, signer: signer.id, token: signer.token }, 'null', value)
  const signUs = await perCall(5000, async (i) => await writer.sign('k', unsignedOf(i)))
  // Entries to verify: signed now, within the token's lifetime, each one new to the reader.
  const now = Date.now()
  const fresh: string[] = []
  for (let i = 0; i < 5200; i++) {
    const unsigned = encodeUnsignedEnvelope('1', now + i % 1000, now, { ver: i + 1, deleted: false, signer: signer.id, token: signer.token }, 'null', value)
    fresh.push(insertSignature(unsigned, await writer.sign('k', unsigned)))
  }
  let bad = 0
  const verifyUs = await perCall(5000, async (i) => {
    const entry = decodeEnvelope('k', fresh[i + 200], DEFAULT_LIMITS)
    if (typeof entry === 'string') throw new Error(entry)
    const verdict = await reader.check('k', entry)
    if (typeof verdict === 'string') bad++
  })
  if (bad > 0) throw new Error(`${bad} entries did not verify`)
  const plain = encodeEnvelope('1', now, now, 'null', value)
  const sealedBytes = Buffer.byteLength(fresh[0] as string) - Buffer.byteLength(plain)

  const setCost = async (sealed: boolean): Promise<number> => {
    const doc = new Y.Doc()
    const store = new SessionStore(doc.getMap('session-store'), sealed ? { authority: await authority('host') } : {})
    return await perCall(5000, async (i) => await store.set(`k${Math.abs(i) % 100}`, { text: 'x'.repeat(90), i }))
  }
  return {
    signUs: round(signUs),
    verifyUs: round(verifyUs),
    setOpenUs: round(await setCost(false)),
    setSealedUs: round(await setCost(true)),
    sealBytes: sealedBytes,
    plainEntryBytes: Buffer.byteLength(plain),
    tokenBytes: signer.token.length
  }
}

interface Child { call: <T>(cmd: string, args?: unknown) => Promise<T>, child: ChildProcess }

const spawnPeer = async (): Promise<Child> => {
  const child = fork(fileURLToPath(new URL('./peer.mjs', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let next = 0
  const pending = new Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>()
  child.on('message', (m: any) => {
    if (typeof m.id !== 'number') return
    const w = pending.get(m.id)
    pending.delete(m.id)
    if (m.ok === true) w?.resolve(m.result)
    else w?.reject(new Error(m.error))
  })
  await new Promise<void>((resolve) => child.once('message', () => resolve()))
  return {
    child,
    call: async <T>(cmd: string, args: unknown = {}) => await new Promise<T>((resolve, reject) => {
      const id = next++
      pending.set(id, { resolve, reject })
      child.send({ id, cmd, args })
    })
  }
}

const pair = async (url: string, auth: boolean, run: number): Promise<Record<string, number>> => {
  const room = `${ROOM}-${auth ? 'auth' : 'open'}-${run}-${process.pid}`
  const authOf = (user: string) => auth ? { issuer: issuer.publicKey, mint: { privateKey: issuer.privateKey, room, user, write: ['*'] } } : null
  const [a, b] = await Promise.all([spawnPeer(), spawnPeer()])
  try {
    await a.call('join', { room, url, auth: authOf('a') })
    await b.call('join', { room, url, auth: authOf('b') })
    await Promise.all([a.call('waitConnected'), b.call('waitConnected')])
    await b.call('respond')
    const rtts = (await a.call<number[]>('pingPong', { count: 500, warmup: 50 })).sort((x, y) => x - y)
    const writes = 10_000
    const arrived = b.call<number>('awaitBurst', { writes, tag: 'burst' })
    const burst = await a.call<{ ms: number, cpuUs: number, end: number }>('burst', { writes, tag: 'burst' })
    const lagMs = (await arrived) - burst.end
    return {
      rttP50: round(quantile(rtts, 0.5), 2),
      rttP99: round(quantile(rtts, 0.99), 2),
      writesPerS: Math.round(writes / (burst.ms / 1000)),
      cpuUsPerWrite: round(burst.cpuUs / writes),
      lagMs: round(Math.max(0, lagMs))
    }
  } finally {
    for (const p of [a, b]) p.child.kill('SIGKILL')
  }
}

const main = async (): Promise<void> => {
  const started = new Date().toISOString()
  const load = loadavg()[0] ?? 0
  const m = await micro()
  console.log('in process', m)
  const server = await createSignalingServer({ port: 0, host: '127.0.0.1' })
  const rows: Record<string, Array<Record<string, number>>> = { open: [], auth: [] }
  try {
    for (let run = 0; run < 3; run++) {
      for (const auth of [false, true]) {
        const row = await pair(server.url, auth, run)
        rows[auth ? 'auth' : 'open']?.push(row)
        console.log(auth ? 'auth on ' : 'auth off', row)
      }
    }
  } finally {
    await server.close()
  }
  const median = (list: Array<Record<string, number>>, field: string): number => {
    const sorted = list.map((r) => r[field] as number).sort((x, y) => x - y)
    return sorted[Math.floor(sorted.length / 2)] as number
  }
  const fields = ['rttP50', 'rttP99', 'writesPerS', 'cpuUsPerWrite', 'lagMs']
  const summary = Object.fromEntries(['open', 'auth'].map((k) => [k, Object.fromEntries(fields.map((f) => [f, median(rows[k] as Array<Record<string, number>>, f)]))]))
  const result = { started, machine: { cpus: cpus().length, load }, micro: m, webrtc: { runs: rows, median: summary } }
  const out = fileURLToPath(new URL('../results/', import.meta.url))
  writeFileSync(`${out}permissions.json`, JSON.stringify(result, null, 2) + '\n')
  const o = summary.open as Record<string, number>
  const a = summary.auth as Record<string, number>
  const md = [
    `# Permissions bench (${started}, ${cpus().length} cores, load ${load.toFixed(1)})`,
    '',
    '| in process | µs or bytes |',
    '| --- | --- |',
    `| sign one write (Ed25519, WebCrypto) | ${m.signUs} µs |`,
    `| verify one remote entry (signature; token cached) | ${m.verifyUs} µs |`,
    `| store.set, open room | ${m.setOpenUs} µs |`,
    `| store.set, protected room (seal + sign) | ${m.setSealedUs} µs |`,
    `| bytes a seal adds to an entry | ${m.sealBytes} B (of which the room token ${m.tokenBytes} B; a plain entry of a 100-byte value: ${m.plainEntryBytes} B) |`,
    '',
    '| over WebRTC, 2 processes, median of 3 runs | auth off | auth on |',
    '| --- | --- | --- |',
    `| round trip p50 (ms) | ${o.rttP50} | ${a.rttP50} |`,
    `| round trip p99 (ms) | ${o.rttP99} | ${a.rttP99} |`,
    `| burst writes/s (10,000 writes, 98 keys) | ${o.writesPerS} | ${a.writesPerS} |`,
    `| sender CPU per write (µs) | ${o.cpuUsPerWrite} | ${a.cpuUsPerWrite} |`,
    `| receiver lag after the last write (ms) | ${o.lagMs} | ${a.lagMs} |`,
    ''
  ].join('\n')
  writeFileSync(`${out}permissions.md`, md)
  console.log(md)
}

await main()
process.exit(0)

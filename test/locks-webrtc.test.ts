/**
 * Locks over real WebRTC, every peer in its own process, the signaling server as the arbiter:
 * update() loses nothing when many peers call it at once (one instance, and two instances sharing
 * Redis); a holder that is killed loses its lock within its TTL, one that leaves frees it at once;
 * a non-holder's set rejects LOCKED; a modified client writing to a locked key through the
 * document is ignored, also when it claims a lease it was not given.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { joinPeer, type PeerProcess } from './helpers/peers.js'
import { requireRedisServer, startInstances, startRedis } from './helpers/redis.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

const settle = async (peers: PeerProcess[], count: number): Promise<void> => {
  await Promise.all(peers.map(async (p) => await p.call('waitForPeers', { count, timeout: 20_000 })))
}

describe('locks over WebRTC', () => {
  it('5 peers each update("votes", v => v + 1) 50 times at once: every peer ends with exactly 250', { timeout: 120_000 }, async () => {
    const server = await startSignaling({ lockGrace: 0 })
    const room = uniqueRoom('votes')
    const peers = await Promise.all(['a', 'b', 'c', 'd', 'e'].map(async (name) => await joinPeer(name, room, { signaling: [server.url] })))
    await settle(peers, 5)
    await Promise.all(peers.map(async (p) => await p.call('incrementMany', { key: 'votes', count: 50 }, 90_000)))
    await Promise.all(peers.map(async (p) => await p.call('waitForValue', { key: 'votes', value: 250, timeout: 10_000 })))
  })

  it('the same with the peers split across two signaling instances sharing Redis', { timeout: 120_000 }, async () => {
    requireRedisServer()
    const redis = await startRedis()
    onTestFinished(async () => { await redis.stop() })
    const [one, two] = await startInstances(2, redis.url, { lockGrace: 0 })
    const room = uniqueRoom('votes-redis')
    const peers = await Promise.all(['a', 'b', 'c', 'd', 'e'].map(async (name, i) => await joinPeer(name, room, { signaling: [(i % 2 === 0 ? one : two)?.url as string] })))
    await settle(peers, 5)
    await Promise.all(peers.map(async (p) => await p.call('incrementMany', { key: 'votes', count: 50 }, 90_000)))
    await Promise.all(peers.map(async (p) => await p.call('waitForValue', { key: 'votes', value: 250, timeout: 10_000 })))
  })

  it('a non-holder\'s set rejects LOCKED, a modified client\'s write is ignored, a killed holder\'s lock is free within its TTL + 1 s', { timeout: 90_000 }, async () => {
    const server = await startSignaling({ lockGrace: 0 })
    const room = uniqueRoom('locked')
    const [holder, other, mallory] = await Promise.all(['holder', 'other', 'mallory'].map(async (name) => await joinPeer(name, room, { signaling: [server.url] })))
    const peers = [holder, other, mallory] as PeerProcess[]
    await settle(peers, 3)
    await holder?.call('set', { key: 'spotlight', value: 'before' })
    await other?.call('waitForValue', { key: 'spotlight', value: 'before' })
    const lock = await holder?.call<{ fencingToken: number }>('lock', { key: 'spotlight', ttl: 10_000 })
    await waitFor(async () => (await other?.call('lockHolder', { key: 'spotlight' })) !== null, { what: 'the others to learn of the lock' })
    await holder?.call('set', { key: 'spotlight', value: 'held' })
    await other?.call('waitForValue', { key: 'spotlight', value: 'held' })
    await expect(other?.call('set', { key: 'spotlight', value: 'other' })).rejects.toMatchObject({ code: 'LOCKED' })
    const held = await holder?.call<string>('rawGet', { key: 'spotlight' })
    expect(held).toContain(`"lk":${String(lock?.fencingToken)}`)
    expect(held).toMatch(/"lg":"[\w-]+\.[\w-]+\.[\w-]+",/)
    // A modified client copies the holder's entry with another value, fencing token and grant
    // included; then claims a lease it was not given (the next token), with the holder's grant or none.
    await waitFor(async () => (await mallory?.call('lockHolder', { key: 'spotlight' })) !== null)
    const token = String(lock?.fencingToken)
    const next = String((lock?.fencingToken ?? 0) + 1)
    for (const raw of [
      held?.replace('"held"', '"mallory"'),
      held?.replace('"held"', '"mallory"').replace(`"lk":${token},`, `"lk":${next},`),
      held?.replace('"held"', '"mallory"').replace(`"lk":${token},`, `"lk":${next},`).replace(/"lg":"[^"]*",/, '')
    ]) {
      await mallory?.call('rawSet', { key: 'spotlight', raw })
      await waitFor(async () => {
        const raws = await Promise.all([holder, other].map(async (p) => await p?.call<string>('rawGet', { key: 'spotlight' })))
        return raws.every((raw) => raw === held)
      }, { timeout: 4000, what: 'the holder\'s entry restored' })
      expect(await other?.call('get', { key: 'spotlight' })).toBe('held')
    }

    const killedAt = Date.now()
    await holder?.kill('SIGKILL')
    await other?.call('lock', { key: 'spotlight', ttl: 10_000, wait: 15_000 }, 20_000)
    expect(Date.now() - killedAt).toBeLessThan(11_000 + 1_000)
    await other?.call('set', { key: 'spotlight', value: 'other now' })
    await mallory?.call('waitForValue', { key: 'spotlight', value: 'other now' })
  })
})

describe('a clean leave', () => {
  it('frees the holder\'s lock at once, every peer is told through session \'lock\' events, and a joiner reads what was written under it', { timeout: 90_000 }, async () => {
    const server = await startSignaling({ lockGrace: 0 })
    const room = uniqueRoom('leave')
    const holder = await joinPeer('holder', room, { signaling: [server.url] })
    const other = await joinPeer('other', room, { signaling: [server.url] })
    await settle([holder, other], 2)
    const lock = await holder.call<{ holder: string }>('lock', { key: 'spotlight', ttl: 60_000 })
    const told = (released: boolean) => (p: PeerProcess) => p.events.some((e) => e.event === 'lock' && e.key === 'spotlight' && e.released === released && e.holder === (released ? null : lock.holder))
    await waitFor(() => [holder, other].every(told(false)), { what: 'both peers told of the grant' })
    await holder.call('set', { key: 'spotlight', value: 'under the lock' })
    await other.call('waitForValue', { key: 'spotlight', value: 'under the lock' })
    const leftAt = Date.now()
    await holder.call('leave')
    await waitFor(() => told(true)(other), { timeout: 5_000, what: 'the other told of the release' })
    await other.call('lock', { key: 'spotlight', ttl: 10_000, wait: 5_000 })
    // Within seconds, not the 60 s lease.
    expect(Date.now() - leftAt).toBeLessThan(5_000)
    await other.call('release', { key: 'spotlight' })
    // A joiner never told of the holder's lease reads what was written under it: its grant checks out.
    const late = await joinPeer('late', room, { signaling: [server.url] })
    await late.call('waitForValue', { key: 'spotlight', value: 'under the lock' })
    expect(late.events.filter((e) => e.event === 'error')).toEqual([])
  })
})

describe('locks in a protected room', () => {
  it('a peer whose token grants the key may revoke another\'s lock of it; one whose token does not may neither lock nor revoke', { timeout: 90_000 }, async () => {
    const { generateIssuerKeys } = await import('../src/auth.js')
    const issuer = await generateIssuerKeys()
    const server = await startSignaling({ lockGrace: 0, issuerKey: issuer.publicKey })
    const room = uniqueRoom('revoke')
    const join = async (user: string, write: string[]): Promise<PeerProcess> =>
      await joinPeer(user, room, { signaling: [server.url], auth: { issuer: issuer.publicKey, mint: { privateKey: issuer.privateKey, room, user, write } } })
    const host = await join('host', ['*'])
    const guest = await join('guest', ['hand/guest'])
    await settle([host, guest], 2)
    await expect(guest.call('lock', { key: 'spotlight', ttl: 10_000 })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    await guest.call('lock', { key: 'hand/guest', ttl: 10_000 })
    await waitFor(async () => (await host.call('lockHolder', { key: 'hand/guest' })) !== null, { what: 'the host to learn of the guest\'s lock' })
    await expect(host.call('set', { key: 'hand/guest', value: false })).rejects.toMatchObject({ code: 'LOCKED' })
    await host.call('lock', { key: 'spotlight', ttl: 10_000 })
    await waitFor(async () => (await guest.call('lockHolder', { key: 'spotlight' })) !== null)
    await expect(guest.call('revokeLock', { key: 'spotlight' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    await host.call('revokeLock', { key: 'hand/guest' })
    await waitFor(async () => (await guest.call('lockHolder', { key: 'hand/guest' })) === null, { what: 'the revoke to reach the guest' })
    await host.call('set', { key: 'hand/guest', value: false })
    await guest.call('waitForValue', { key: 'hand/guest', value: false })
  })
})

/**
 * The join rule as a state machine, without sockets: each case is one sequence of inputs,
 * including the races seen over real networks (an echo before the signaling status, a sync
 * after the timeout, two servers that disagree, peers that leave before they answer).
 */
import { describe, expect, it } from 'vitest'
import { initialAvailability, isDecided, nextAvailability, type AvailabilityInput, type AvailabilityState } from '../src/availability.js'

const one = [{ id: 'ws://a', connected: false }]
const two = [{ id: 'ws://a', connected: false }, { id: 'ws://b', connected: false }]
const up = (...ids: string[]): AvailabilityInput => ({ type: 'signaling', sources: ids.map((id) => ({ id, connected: true })) })
const count = (source: string, clients: number): AvailabilityInput => ({ type: 'count', source, clients })
const run = (state: AvailabilityState, ...inputs: AvailabilityInput[]): AvailabilityState =>
  inputs.reduce(nextAvailability, state)

describe('availability', () => {
  it('is pending until something decides it', () => {
    const state = run(initialAvailability(one), up('ws://a'))
    expect(state).toMatchObject({ sync: 'pending', probing: false, failed: false, everConnected: true })
    expect(isDecided(state)).toBe(false)
  })

  it("is 'alone' when the echo counts only this peer", () => {
    expect(run(initialAvailability(one), up('ws://a'), count('ws://a', 1)).sync).toBe('alone')
  })

  it('counts an echo that arrives before the signaling status as a connection', () => {
    const state = run(initialAvailability(one), count('ws://a', 1))
    expect(state.sync).toBe('alone')
  })

  it("waits for a peer's state when others are in the room, probing meanwhile", () => {
    const waiting = run(initialAvailability(one), up('ws://a'), count('ws://a', 3))
    expect(waiting).toMatchObject({ sync: 'pending', probing: true, waitedForPeers: true })
    const synced = run(waiting, { type: 'heard', peerId: 'p1' }, { type: 'synced', peerId: 'p1' })
    expect(synced).toMatchObject({ sync: 'synced', probing: false })
  })

  it("is 'peers-left' when the peers it waited for leave before sending their state", () => {
    const state = run(initialAvailability(one), up('ws://a'), count('ws://a', 2), count('ws://a', 1))
    expect(state).toMatchObject({ sync: 'peers-left', probing: false })
  })

  it('with two servers, is alone only when every connected one counts 1', () => {
    const a = run(initialAvailability(two), up('ws://a', 'ws://b'), count('ws://a', 1))
    expect(a.sync).toBe('pending') // b has not relayed a count: it may see peers a cannot
    expect(nextAvailability(a, count('ws://b', 1)).sync).toBe('alone')
    const others = nextAvailability(a, count('ws://b', 2))
    expect(others).toMatchObject({ sync: 'pending', probing: true })
  })

  it('ignores a disconnected server when judging alone', () => {
    const state = run(initialAvailability(two), { type: 'signaling', sources: [{ id: 'ws://a', connected: true }, { id: 'ws://b', connected: false }] }, count('ws://a', 1))
    expect(state.sync).toBe('alone')
  })

  it("is 'synced' when a state arrives before any echo (a peer answered first)", () => {
    expect(run(initialAvailability(one), up('ws://a'), { type: 'synced', peerId: 'p1' }).sync).toBe('synced')
  })

  it("times out to 'timeout' once a server was reached, or a peer connected", () => {
    expect(run(initialAvailability(one), up('ws://a'), count('ws://a', 2), { type: 'timeout' })).toMatchObject({ sync: 'timeout', failed: false, probing: false })
    expect(run(initialAvailability(one), { type: 'connections', open: ['p1'] }, { type: 'timeout' }).sync).toBe('timeout')
  })

  it('fails when no server was ever reached and no peer connected', () => {
    const state = run(initialAvailability(one), { type: 'timeout' })
    expect(state).toMatchObject({ sync: 'pending', failed: true })
    expect(isDecided(state)).toBe(true)
  })

  it('a server reached and lost again still counts as reached', () => {
    const state = run(initialAvailability(one), up('ws://a'), { type: 'signaling', sources: [{ id: 'ws://a', connected: false }] }, { type: 'timeout' })
    expect(state.sync).toBe('timeout')
  })

  it('waits for every peer it heard from, not the first answer: one empty state cannot hide the others', () => {
    const waiting = run(initialAvailability(one), up('ws://a'), count('ws://a', 3),
      { type: 'heard', peerId: 'attacker' }, { type: 'heard', peerId: 'host' }, { type: 'connections', open: ['attacker'] },
      { type: 'synced', peerId: 'attacker' })
    expect(waiting.sync).toBe('pending')
    const withHost = run(waiting, { type: 'connections', open: ['attacker', 'host'] }, { type: 'synced', peerId: 'host' })
    expect(withHost.sync).toBe('synced')
  })

  it('stops waiting SYNC_WINDOW after the first state, for peers that never send theirs', () => {
    const waiting = run(initialAvailability(one), up('ws://a'), count('ws://a', 3),
      { type: 'heard', peerId: 'a' }, { type: 'heard', peerId: 'silent' }, { type: 'synced', peerId: 'a' })
    expect(waiting.sync).toBe('pending')
    expect(nextAvailability(waiting, { type: 'window-closed' }).sync).toBe('synced')
  })

  it('an open connection that has not sent its state holds the decision too', () => {
    const state = run(initialAvailability(one), up('ws://a'), count('ws://a', 2), { type: 'connections', open: ['a', 'b'] }, { type: 'synced', peerId: 'a' })
    expect(state.sync).toBe('pending')
  })

  it("counts subscribers that never answer as absent after ANSWER_TIMEOUT: 'alone'", () => {
    const silent = run(initialAvailability(one), up('ws://a'), count('ws://a', 2))
    expect(nextAvailability(silent, { type: 'answer-timeout' }).sync).toBe('alone')
    const answered = nextAvailability(silent, { type: 'heard', peerId: 'p' })
    expect(nextAvailability(answered, { type: 'answer-timeout' }).sync).toBe('pending')
  })

  it('never changes once decided: a late state, echo, connection or timeout', () => {
    const alone = run(initialAvailability(one), up('ws://a'), count('ws://a', 1))
    for (const input of [{ type: 'synced', peerId: 'p' }, count('ws://a', 5), { type: 'timeout' }, { type: 'connections', open: ['p'] }, { type: 'answer-timeout' }] as AvailabilityInput[]) {
      expect(nextAvailability(alone, input)).toBe(alone)
    }
    const failed = run(initialAvailability(one), { type: 'timeout' })
    expect(nextAvailability(failed, count('ws://a', 1))).toBe(failed)
  })
})

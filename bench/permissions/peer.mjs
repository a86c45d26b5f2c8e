// One peer of the permissions and locks benches in its own process (y-webrtc: one provider per room per
// realm), driven over IPC by bench/permissions/run.ts. It joins with or without `auth`.
import { performance } from 'node:perf_hooks'
import { joinRoom } from 'y-session-store/node'
import { createRoomToken } from 'y-session-store/auth'

let session = null
let store = null
const waiters = new Set()
const wake = () => { for (const check of waiters) check() }
const until = (cond, timeout, what) => new Promise((resolve, reject) => {
  if (cond()) return resolve()
  const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out: ${what}`)) }, timeout)
  const check = () => { if (cond()) { clearTimeout(timer); waiters.delete(check); resolve() } }
  waiters.add(check)
})

const commands = {
  async join ({ room, url, auth }) {
    const options = { signaling: [url], joinTimeout: 5000 }
    if (auth !== null) {
      options.auth = { issuer: auth.issuer, token: (peerKey) => createRoomToken({ ...auth.mint, peerKey }) }
    }
    session = joinRoom(room, options)
    store = await session.sessionStore
    store.observeAllChanges(wake)
    return true
  },
  waitConnected: ({ count = 1 } = {}) => until(() => session.status.webrtcPeers >= count, 30000, `${count} connections`),
  /** Answers each `ping` with the same value as `pong`. */
  respond () {
    store.observeChanges(['ping'], (_key, value) => { if (typeof value === 'number') void store.set('pong', value) })
    return true
  },
  /** `count` ping-pong round trips after `warmup`: each in ms. */
  async pingPong ({ count, warmup }) {
    const rtts = []
    for (let i = 1; i <= warmup + count; i++) {
      const start = performance.now()
      void store.set('ping', i)
      await until(() => store.get('pong') === i, 5000, `pong ${i}`)
      if (i > warmup) rtts.push(performance.now() - start)
    }
    return rtts
  },
  /** `writes` writes of ~100-byte values over 98 keys round-robin, yielding every 200: ms and CPU µs. */
  async burst ({ writes, tag }) {
    const cpu = process.cpuUsage()
    const start = performance.now()
    const pending = []
    for (let i = 0; i < writes; i++) {
      pending.push(store.set(`k${i % 98}`, { tag, i, pad: 'x'.repeat(70) }))
      if (i % 200 === 199) { await Promise.all(pending.splice(0)); await new Promise((resolve) => setImmediate(resolve)) }
    }
    await Promise.all(pending)
    const used = process.cpuUsage(cpu)
    return { ms: performance.now() - start, cpuUs: used.user + used.system, end: performance.timeOrigin + performance.now() }
  },
  /** Resolves when every key holds the last value of a burst of `writes` tagged `tag`: the wall time. */
  async awaitBurst ({ writes, tag }) {
    const last = new Map()
    for (let i = 0; i < writes; i++) last.set(`k${i % 98}`, i)
    await until(() => [...last].every(([key, i]) => store.get(key)?.i === i && store.get(key)?.tag === tag), 60000, 'the burst')
    return performance.timeOrigin + performance.now()
  },
  /** `count` updates of `key` one after another: each update's round trip in ms. */
  async updateLoop ({ key, count }) {
    const times = []
    for (let i = 0; i < count; i++) {
      const start = performance.now()
      await store.update(key, (n) => (n ?? 0) + 1)
      times.push(performance.now() - start)
    }
    return times
  },
  /** `count` updates of `key` all started at once; resolves when all are done. */
  async incrementMany ({ key, count }) {
    await Promise.all(Array.from({ length: count }, () => store.update(key, (n) => (n ?? 0) + 1)))
    return store.get(key)
  },
  waitForValue: ({ key, value, timeout = 30000 }) => until(() => store.get(key) === value, timeout, `${key} = ${value}`),
  async leave () { await session.leave(); return true }
}

process.on('message', async ({ id, cmd, args }) => {
  try {
    process.send({ id, ok: true, result: await commands[cmd](args ?? {}) })
  } catch (err) {
    process.send({ id, ok: false, error: String(err?.message ?? err) })
  }
})
process.on('disconnect', () => process.exit(0))
process.send({ ready: true })

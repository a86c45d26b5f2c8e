import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { ENV_NAMES } from '../signaling/cli-args.js'
import { CloseCode, createToken } from '../signaling/index.js'
import { isRedisUp, startRedis } from './helpers/redis.js'
import { connect, httpRequest, refusedClose, refusedStatus } from './helpers/signaling.js'
import { spawnCaptured, type Captured } from './helpers/process.js'
import { waitFor, withTimeout } from './helpers/wait.js'

const CLI = fileURLToPath(new URL('../dist/signaling/cli.js', import.meta.url))
const SECRET = 'a-cli-test-secret-that-is-long-enough-for-hs256'

type Cli = Captured

/** This process's environment without anything the CLI would read. */
const inheritedEnv = (): NodeJS.ProcessEnv => {
  const inherited = { ...process.env }
  for (const name of [...ENV_NAMES, 'npm_command']) delete inherited[name]
  return inherited
}

const readText = (path: string): string => existsSync(path) ? readFileSync(path, 'utf8') : ''

/** True while `pid` runs (a zombie waiting for its new parent to reap it has exited). */
const isRunning = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

const run = (args: string[], env: Record<string, string> = {}): Cli =>
  spawnCaptured(process.execPath, [CLI, ...args], { env: { ...inheritedEnv(), ...env } })

/** Starts the CLI and resolves with the URL from its one line on stdout. */
const start = async (args: string[], env: Record<string, string> = {}): Promise<Cli & { url: string }> => {
  const cli = run(args, env)
  const line = await waitFor(() => /^signaling server listening on (ws:\/\/\S+)\n/.exec(cli.stdout()), {
    timeout: 15_000,
    what: `the CLI to print its URL (stderr so far: ${cli.stderr()})`
  })
  return { ...cli, url: line[1]! }
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`)
})

describe('CLI', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('prints its URL, serves clients and shuts down gracefully on %s', async (signal) => {
    const cli = await start(['--port', '0'])
    expect(cli.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    const client = await connect(cli.url)
    await client.roundTrip()

    cli.child.kill(signal)
    expect((await withTimeout(client.closed, 10_000, 'the client to be closed')).code).toBe(CloseCode.GoingAway)
    expect(await withTimeout(cli.exited, 10_000, 'the CLI to exit')).toEqual({ code: 0, signal: null })
    expect(cli.stdout()).toBe(`signaling server listening on ${cli.url}\n`)
    const logs = cli.stderr().trim().split('\n').map((line) => JSON.parse(line) as { msg: string })
    expect(logs.map((log) => log.msg)).toEqual(expect.arrayContaining(['signaling server listening', 'shutting down', 'signaling server closed']))
  })

  it('reads PORT and AUTH_SECRET from the environment and limits from flags', async () => {
    const cli = await start(['--log-level', 'silent', '--max-topics-per-connection', '1'], { PORT: '0', AUTH_SECRET: SECRET })
    expect((await refusedClose(cli.url)).code).toBe(CloseCode.Unauthorized)
    const client = await connect(`${cli.url}/?token=${await createToken({ secret: SECRET, rooms: ['*'] })}`)
    await client.subscribe('a')
    await client.subscribe('b')
    client.publish('b', 'refused: over the topic limit')
    client.publish('a', 'relayed')
    expect(await client.next((m) => m.type === 'publish')).toMatchObject({ topic: 'a', clients: 1 })
    cli.child.kill('SIGTERM')
    expect((await withTimeout(cli.exited, 10_000, 'the CLI to exit')).code).toBe(0)
    expect(cli.stderr()).toBe('')
  })

  it('reads origins, per-address limits and the metrics token from flags and the environment', async () => {
    const token = 'a-metrics-token-of-32-characters'
    const cli = await start(['--port', '0', '--log-level', 'silent', '--allowed-origins', 'https://app.example.com, http://localhost:5173'], {
      MAX_CONNECTIONS_PER_ADDRESS: '1',
      METRICS_TOKEN: token,
      TRUST_PROXY: '127.0.0.4,10.0.0.0/8'
    })
    expect(await refusedStatus(cli.url, { headers: { Origin: 'https://evil.example' } })).toBe(403)
    const client = await connect(cli.url, { localAddress: '127.0.0.2', headers: { Origin: 'http://localhost:5173' } })
    await client.roundTrip()
    expect(await refusedStatus(cli.url, { localAddress: '127.0.0.2' })).toBe(429)
    await (await connect(cli.url, { localAddress: '127.0.0.4', headers: { 'X-Forwarded-For': '203.0.113.5' } })).roundTrip()
    const port = Number(new URL(cli.url).port)
    expect((await httpRequest(port, '/metrics')).status).toBe(401)
    const metrics = await httpRequest(port, '/metrics', 'GET', { Authorization: `Bearer ${token}` })
    expect(metrics.body.split('\n')).toContain('signaling_rejections_total{reason="address_connection_limit"} 1')
    cli.child.kill('SIGTERM')
    expect((await withTimeout(cli.exited, 10_000, 'the CLI to exit')).code).toBe(0)
  })

  it('reads REDIS_URL from the environment, reports the link and still shuts down gracefully', async () => {
    const redis = await startRedis()
    const cli = await start(['--port', '0', '--redis-prefix', 'cli-test:'], { REDIS_URL: redis.url })
    const port = Number(new URL(cli.url).port)
    await waitFor(async () => await isRedisUp(port), { what: 'the Redis link to be up' })
    const client = await connect(cli.url)
    await client.subscribe('room')
    cli.child.kill('SIGTERM')
    expect((await withTimeout(cli.exited, 10_000, 'the CLI to exit')).code).toBe(0)
    const logs = cli.stderr().trim().split('\n').map((line) => JSON.parse(line) as { msg: string, url?: string })
    expect(logs.map((log) => log.msg)).toEqual(expect.arrayContaining(['redis link up', 'signaling server closed']))
  })

  it('hands out TURN credentials with TURN_SECRET and TURN_URLS from the environment and --turn-ttl', async () => {
    const urls = ['turn:turn.example.com:3478', 'turns:turn.example.com:5349?transport=tcp']
    const cli = await start(['--port', '0', '--turn-ttl', '120'], { TURN_SECRET: 'a-turn-secret-of-16+', TURN_URLS: urls.join(',') })
    const client = await connect(cli.url)
    expect(await client.next((m) => m.type === 'turn')).toMatchObject({ type: 'turn', ttl: 120, iceServers: [{ urls }] })
  })

  it('with --static, prints the address to open and serves the page there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signaling-static-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>demo</title>')
    const cli = await start(['--port', '0', '--static', dir])
    const page = await waitFor(() => /^open (http:\/\/\S+\/) in a browser$/m.exec(cli.stdout()), { what: 'the page address' })
    expect(page[1]).toBe(`${cli.url.replace('ws://', 'http://')}/`)
    const res = await fetch(page[1]!)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('<title>demo</title>')
    cli.child.kill('SIGTERM')
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(0)
  })

  it('with --dev-tokens (as npm start runs it), hands out tokens that it requires, and warns that it is for development', async () => {
    const cli = await start(['--port', '0', '--dev-tokens'])
    const http = cli.url.replace('ws://', 'http://')
    const { keys } = await (await fetch(`${http}/dev/issuer`)).json() as { keys: unknown[] }
    expect(keys).toHaveLength(1)
    const peerKey = { kty: 'OKP', crv: 'Ed25519', x: 'B'.repeat(43) }
    const answer = await fetch(`${http}/dev/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ room: 'demo', peerKey, name: 'Ada' }) })
    const { token, role } = await answer.json() as { token: string, role: string }
    expect(role).toBe('host')
    const client = await connect(`${cli.url}/?token=${token}`)
    await client.subscribe('demo')
    expect((await refusedClose(cli.url)).code).toBe(CloseCode.Unauthorized)
    expect(cli.stderr()).toMatch(/dev tokens are on.*never in production/)
    expect(cli.stderr()).not.toContain(token)
    cli.child.kill('SIGTERM')
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(0)
  })

  it.each([
    ['with --exit-with-parent', ['--exit-with-parent'], {}],
    ['by default under npm and npx', [], { npm_command: 'exec' }]
  ])('shuts down gracefully when its parent process dies, %s', async (_name, flags, env) => {
    const dir = mkdtempSync(join(tmpdir(), 'signaling-cli-parent-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const out = join(dir, 'out')
    // A parent like npx: it starts the server, says its pid, and is then killed without passing anything on.
    const script = `
      const { spawn } = require('node:child_process')
      const { openSync } = require('node:fs')
      const child = spawn(process.execPath, ${JSON.stringify([CLI, '--port', '0', ...flags])}, {
        stdio: ['ignore', openSync(${JSON.stringify(out)}, 'w'), openSync(${JSON.stringify(`${out}.err`)}, 'w')],
        env: { ...process.env, ...${JSON.stringify(env)} }
      })
      process.stdout.write(String(child.pid) + '\\n')
      setInterval(() => {}, 1000)
    `
    const npx = spawn(process.execPath, ['-e', script], { env: inheritedEnv(), stdio: ['ignore', 'pipe', 'inherit'] })
    onTestFinished(() => { npx.kill('SIGKILL') })
    let said = ''
    npx.stdout.setEncoding('utf8').on('data', (chunk: string) => { said += chunk })
    const pid = Number((await waitFor(() => /^(\d+)\n/.exec(said), { what: 'the parent to say the server pid' }))[1])
    onTestFinished(() => { if (isRunning(pid)) process.kill(pid, 'SIGKILL') })
    const url = (await waitFor(() => /^signaling server listening on (ws:\/\/\S+)\n/.exec(readText(out)), { timeout: 15_000, what: 'the server URL' }))[1]!
    const client = await connect(url)
    await client.roundTrip()

    npx.kill('SIGKILL')
    expect((await withTimeout(client.closed, 10_000, 'the client to be closed')).code).toBe(CloseCode.GoingAway)
    await waitFor(() => !isRunning(pid), { what: 'the orphaned server to exit' })
    const logs = readText(`${out}.err`).trim().split('\n').map((line) => JSON.parse(line) as { msg: string, reason?: string })
    expect(logs).toEqual(expect.arrayContaining([expect.objectContaining({ msg: 'shutting down', reason: 'the parent process exited' })]))
  })

  it('prints usage for --help and exits 0', async () => {
    const cli = run(['--help'])
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(0)
    expect(cli.stdout()).toContain('--auth-secret')
  })

  it.each([
    [['--bogus']],
    [['--port', 'abc']],
    [['--log-level', 'loud']],
    [['stray-positional']],
    [['--turn-urls', 'turn:turn.example.com']],
    [['--turn-secret', 'a-turn-secret-of-16+', '--turn-ttl', 'soon']]
  ])('exits 2 with usage on stderr for %j', async (args) => {
    const cli = run(args)
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(2)
    expect(cli.stdout()).toBe('')
    expect(cli.stderr()).toContain('Usage:')
  })

  it('exits 1 when the server cannot start', async () => {
    const cli = run(['--port', '0', '--auth-secret', 'too-short'])
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(1)
    expect(cli.stderr()).toContain('WEAK_SECRET')
    expect(cli.stdout()).toBe('')
  })

  it('exits 1 for a Redis URL that is not one, without echoing it', async () => {
    const cli = run(['--port', '0', '--redis-url', 'http://user:hunter2@127.0.0.1:6379'])
    expect((await withTimeout(cli.exited, 10_000)).code).toBe(1)
    expect(cli.stderr()).toContain('INVALID_OPTION')
    expect(cli.stderr()).not.toContain('hunter2')
  })
})

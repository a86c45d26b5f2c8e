import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { beforeAll, afterAll, describe, expect, it, onTestFinished } from 'vitest'
import { resolveStaticPath } from '../signaling/static.js'
import { createSignalingServer } from '../signaling/index.js'
import { connect, connectMany, httpGet, httpRequest, startServer } from './helpers/signaling.js'
import { waitFor } from './helpers/wait.js'

describe('health and metrics', () => {
  it('says up on /healthz and nothing more', async () => {
    const server = await startServer()
    const [a] = await connectMany(server.url, 2)
    await a!.subscribe('x', 'y')
    const res = await httpGet(server, '/healthz')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(res.body)).toEqual({ status: 'ok' })
  })

  it('exposes levels, message counters and rejections by reason on /metrics', async () => {
    const server = await startServer()
    const client = await connect(server.url)
    await client.subscribe('room')
    client.publish('room', 1)
    client.sendRaw('not json')
    await client.roundTrip()

    const res = await httpGet(server, '/metrics')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    const lines = res.body.split('\n')
    expect(lines).toContain('signaling_connections 1')
    expect(lines).toContain('signaling_topics 1')
    expect(lines).toContain('signaling_subscriptions 1')
    expect(lines).toContain('signaling_messages_received_total 5')
    expect(lines).toContain('signaling_messages_sent_total 3')
    expect(lines).toContain('signaling_rejections_total{reason="invalid_json"} 1')
    expect(lines).toContain('signaling_rejections_total{reason="rate_limited"} 0')
    expect(res.body).toContain('# TYPE signaling_rejections_total counter')

    // Counters keep counting across scrapes.
    client.sendRaw('still not json')
    await client.roundTrip()
    const again = (await httpGet(server, '/metrics')).body.split('\n')
    expect(again).toContain('signaling_rejections_total{reason="invalid_json"} 2')
    expect(again).toContain('signaling_messages_received_total 7')
  })

  it('keeps the metrics of two servers in one process apart', async () => {
    const [busy, idle] = await Promise.all([startServer(), startServer()])
    await connectMany(busy.url, 3)
    expect((await httpGet(busy, '/metrics')).body.split('\n')).toContain('signaling_connections 3')
    expect((await httpGet(idle, '/metrics')).body.split('\n')).toContain('signaling_connections 0')
  })

  it('answers 404 for unknown paths, 405 for other methods, and HEAD without a body', async () => {
    const server = await startServer()
    expect((await httpGet(server, '/nope')).status).toBe(404)
    expect((await httpGet(server, '/')).status).toBe(404)
    const post = await httpGet(server, '/healthz', 'POST')
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
    const head = await httpGet(server, '/healthz', 'HEAD')
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
  })
})

describe('private metrics', () => {
  const TOKEN = 'a-metrics-token-of-32-characters'

  it('asks for the bearer token on /metrics: none or a wrong one get 401, the right one the metrics', async () => {
    const server = await startServer({ metricsToken: TOKEN })
    const missing = await httpGet(server, '/metrics')
    expect(missing.status).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="metrics"')
    expect(missing.body).not.toContain('signaling_')
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, 'Bearer', `Basic ${TOKEN}`, TOKEN]) {
      expect((await httpGet(server, '/metrics', 'GET', { Authorization: authorization })).status).toBe(401)
    }
    const right = await httpGet(server, '/metrics', 'GET', { Authorization: `Bearer ${TOKEN}` })
    expect(right.status).toBe(200)
    expect(right.body.split('\n')).toContain('signaling_connections 0')
    expect((await httpGet(server, '/metrics', 'GET', { Authorization: `bearer  ${TOKEN}` })).status).toBe(200)
    // /healthz stays public.
    expect(JSON.parse((await httpGet(server, '/healthz')).body)).toEqual({ status: 'ok' })
  })

  it('serves /metrics on metricsPort only, with the token too when both are set', async () => {
    const server = await startServer({ metricsPort: 0, metricsToken: TOKEN })
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const metricsPort = Number(new URL(server.metricsUrl!).port)
    expect(metricsPort).not.toBe(server.port)
    expect((await httpGet(server, '/metrics', 'GET', { Authorization: `Bearer ${TOKEN}` })).status).toBe(404)
    expect((await httpRequest(metricsPort, '/metrics')).status).toBe(401)
    const res = await httpRequest(metricsPort, '/metrics', 'GET', { Authorization: `Bearer ${TOKEN}` })
    expect(res.status).toBe(200)
    expect(res.body).toContain('signaling_rejections_total')
    expect((await httpRequest(metricsPort, '/healthz')).status).toBe(404)
    expect((await httpRequest(metricsPort, '/metrics', 'POST')).status).toBe(405)
    await server.close()
    await expect(httpRequest(metricsPort, '/metrics')).rejects.toThrow()
  })

  it('rejects when the metrics port is taken', async () => {
    const blocker = createNetServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    onTestFinished(async () => { await new Promise((resolve) => blocker.close(resolve)) })
    const { port } = blocker.address() as AddressInfo
    await expect(createSignalingServer({ port: 0, metricsPort: port })).rejects.toMatchObject({ code: 'EADDRINUSE' })
  })

  it('refuses a short token with WEAK_SECRET and a bad port with INVALID_OPTION', async () => {
    await expect(createSignalingServer({ port: 0, metricsToken: 'short' })).rejects.toMatchObject({ code: 'WEAK_SECRET' })
    await expect(createSignalingServer({ port: 0, metricsPort: 70_000 })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
    await expect(createSignalingServer({ port: 0, metricsPort: 0, metricsHost: '' })).rejects.toMatchObject({ code: 'INVALID_OPTION' })
  })
})

describe('static files', () => {
  let root: string
  let outside: string

  beforeAll(async () => {
    const base = await mkdtemp(join(tmpdir(), 'signaling-static-'))
    root = join(base, 'public')
    outside = join(base, 'private')
    await mkdir(join(root, 'assets'), { recursive: true })
    await mkdir(join(root, 'docs'), { recursive: true })
    await mkdir(outside)
    await writeFile(join(root, 'index.html'), '<!doctype html><title>demo</title>')
    await writeFile(join(root, 'assets', 'app.js'), 'console.log(1)')
    await writeFile(join(root, 'assets', 'style.css'), 'body{}')
    await writeFile(join(root, 'assets', 'data.bin'), Buffer.from([1, 2, 3]))
    await writeFile(join(root, 'docs', 'index.html'), '<p>docs</p>')
    await writeFile(join(root, '.env'), 'SECRET=1')
    await writeFile(join(outside, 'secret.txt'), 'top secret')
    await symlink(join(outside, 'secret.txt'), join(root, 'assets', 'link.txt'))
  })
  afterAll(async () => {
    await rm(join(root, '..'), { recursive: true, force: true })
  })

  it('resolves paths inside the root only', () => {
    expect(resolveStaticPath('/srv', '/')).toBe('/srv')
    expect(resolveStaticPath('/srv', '/a/b.js')).toBe('/srv/a/b.js')
    expect(resolveStaticPath('/srv', '/a//b.js')).toBe('/srv/a/b.js')
    expect(resolveStaticPath('/srv', '/%61.js')).toBe('/srv/a.js')
    expect(resolveStaticPath('/srv', '/../etc/passwd')).toBeNull()
    expect(resolveStaticPath('/srv', '/a/../../etc/passwd')).toBeNull()
    expect(resolveStaticPath('/srv', '/%2e%2e/etc/passwd')).toBeNull()
    expect(resolveStaticPath('/srv', '/a%2f..%2f..%2fetc')).toBeNull()
    expect(resolveStaticPath('/srv', '/..%5c..%5cetc')).toBeNull()
    expect(resolveStaticPath('/srv', '/a%00.js')).toBeNull()
    expect(resolveStaticPath('/srv', '/%E0%A4%A')).toBeNull()
    expect(resolveStaticPath('/srv', '/.env')).toBeNull()
    expect(resolveStaticPath('/srv', '/.git/config')).toBeNull()
  })

  it('serves files with their content types, index.html for / and for extensionless paths', async () => {
    const server = await startServer({ staticDir: root })
    const index = await httpGet(server, '/')
    expect(index.status).toBe(200)
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(index.body).toContain('<title>demo</title>')
    expect((await httpGet(server, '/assets/app.js')).headers['content-type']).toBe('text/javascript; charset=utf-8')
    expect((await httpGet(server, '/assets/style.css')).headers['content-type']).toBe('text/css; charset=utf-8')
    const bin = await httpGet(server, '/assets/data.bin')
    expect(bin.headers['content-type']).toBe('application/octet-stream')
    expect(bin.headers['content-length']).toBe('3')
    expect((await httpGet(server, '/docs/')).body).toBe('<p>docs</p>')
    expect((await httpGet(server, '/some/client/route')).body).toContain('<title>demo</title>')
    expect((await httpGet(server, '/assets/missing.js')).status).toBe(404)
    expect((await httpGet(server, '/healthz')).headers['content-type']).toMatch(/^application\/json/)
  })

  it('a client that hangs up mid-download is not logged as a server error', async () => {
    await writeFile(join(root, 'assets', 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 1))
    const errors: unknown[] = []
    const debug: unknown[] = []
    const log = (into: unknown[]) => (obj: object, msg?: string) => { into.push([obj, msg]) }
    const server = await startServer({ staticDir: root, logger: { debug: log(debug), info: () => {}, warn: () => {}, error: log(errors) } })
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request(`${server.url.replace('ws://', 'http://')}/assets/big.bin`, (res) => {
          res.once('data', () => { req.destroy(); resolve() })
        })
        req.on('error', (err) => { if ((err as { code?: string }).code !== 'ECONNRESET') reject(err) })
        req.end()
      })
    }
    await waitFor(() => debug.length + errors.length >= 5, { what: 'the server to notice the hang-ups', timeout: 5000 }).catch(() => {})
    expect(errors).toEqual([])
    expect((await httpGet(server, '/')).status).toBe(200)
  })

  it.each([
    '/../private/secret.txt',
    '/%2e%2e/private/secret.txt',
    '/assets/..%2f..%2fprivate%2fsecret.txt',
    '/.env',
    '/assets/link.txt',
    '/%00'
  ])('refuses %s', async (path) => {
    const server = await startServer({ staticDir: root })
    const res = await httpGet(server, path)
    expect(res.status).toBe(404)
    expect(res.body).not.toContain('secret')
  })
})

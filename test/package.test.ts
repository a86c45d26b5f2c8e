/**
 * The package as users get it: entry points resolve from the build, the browser entry bundles
 * without Node-only code, there is one copy of Yjs, the tarball holds its licence and the sources
 * its maps point at, and installed into an empty app it brings no native or server package, with
 * a clear error naming what a Node user must add.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, sep } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { build } from 'esbuild'
import { installProject, packedTarball } from './helpers/tarball.js'

const run = promisify(execFile)

/** Every package directory under node_modules (scoped ones as `@scope/name`), nested ones included. */
const installedPackages = async (dir: string): Promise<string[]> => {
  const found: string[] = []
  const walk = async (modules: string): Promise<void> => {
    const entries = await readdir(modules, { withFileTypes: true }).catch(() => [])
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue
      const names = entry.name.startsWith('@')
        ? (await readdir(join(modules, entry.name))).map((name) => `${entry.name}/${name}`)
        : [entry.name]
      for (const name of names) {
        found.push(name)
        await walk(join(modules, name, 'node_modules'))
      }
    }
  }
  await walk(join(dir, 'node_modules'))
  return found.sort()
}

/** Files anywhere under `dir` whose name ends with `suffix` (native addons end with `.node`). */
const filesEndingWith = async (dir: string, suffix: string): Promise<string[]> =>
  (await readdir(dir, { recursive: true })).filter((path) => path.endsWith(suffix))

describe('package', () => {
  it('exposes the four entry points with their types', async () => {
    const browser = await import('y-session-store')
    const node = await import('y-session-store/node')
    const react = await import('y-session-store/react')
    const signaling = await import('y-session-store/signaling')
    expect(typeof react.SessionProvider).toBe('function')
    expect(typeof browser.joinRoom).toBe('function')
    expect(typeof node.joinRoom).toBe('function')
    expect(node.joinRoom).not.toBe(browser.joinRoom)
    expect(node.SessionStoreError).toBe(browser.SessionStoreError)
    expect(typeof signaling.createSignalingServer).toBe('function')
    for (const file of ['dist/src/index.d.ts', 'dist/src/node.d.ts', 'dist/src/react.d.ts', 'dist/signaling/index.d.ts']) expect(existsSync(file)).toBe(true)
  })

  it('the browser entry bundles without ws, @roamhq/wrtc or any node: module', async () => {
    const result = await build({ entryPoints: ['src/index.ts'], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' })
    const inputs = Object.keys(result.metafile.inputs)
    expect(inputs.some((i) => i.includes('node_modules/yjs/'))).toBe(true)
    expect(inputs.filter((i) => /node_modules\/(ws|@roamhq\/wrtc)\/|^node:/.test(i))).toEqual([])
  })

  it('pins y-webrtc to the release whose internals the adapter relies on, and has it installed', async () => {
    const { Y_WEBRTC_VERSION } = await import('../src/transport/y-webrtc-adapter.js')
    const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> }
    expect(manifest.dependencies['y-webrtc']).toBe(Y_WEBRTC_VERSION)
    const installed = JSON.parse(readFileSync('node_modules/y-webrtc/package.json', 'utf8')) as { version: string }
    expect(installed.version).toBe(Y_WEBRTC_VERSION)
  })

  it('has one copy of Yjs in the tree (two break instanceof checks)', () => {
    const copies = JSON.parse(execFileSync('npm', ['query', '#yjs'], { encoding: 'utf8' })) as Array<{ path: string }>
    expect(copies.map((c) => c.path)).toHaveLength(1)
  })

  it('ships an MIT LICENSE, and the sources that every source map points at', { timeout: 90_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'y-session-store-unpacked-'))
    onTestFinished(async () => { await rm(dir, { recursive: true, force: true }) })
    await run('tar', ['-xzf', await packedTarball(), '-C', dir])
    const pkg = join(dir, 'package')
    expect(readFileSync(join(pkg, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} y-session-store contributors\n/)
    const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { license: string }
    expect(manifest.license).toBe('MIT')

    const files = await readdir(pkg, { recursive: true })
    const maps = files.filter((path) => path.endsWith('.map'))
    expect(maps.length).toBeGreaterThan(0)
    const unresolved = maps.flatMap((map) => {
      const { sourceRoot = '', sources } = JSON.parse(readFileSync(join(pkg, map), 'utf8')) as { sourceRoot?: string, sources: string[] }
      return sources
        .map((source) => join(dirname(join(pkg, map)), sourceRoot, source))
        .filter((path) => !path.startsWith(pkg + sep) || !existsSync(path))
        .map((path) => `${map} -> ${relative(pkg, path)}`)
    })
    expect(unresolved).toEqual([])
  })

  it('installed from its tarball into an empty app, it brings no native or server package, and says what a Node user must add', { timeout: 90_000 }, async () => {
    const project = await installProject('browser-app')
    onTestFinished(project.remove)
    const app = project.dir

    const packages = await installedPackages(app)
    for (const heavy of ['@roamhq/wrtc', 'ioredis', 'pino', 'prom-client', 'react', 'react-dom']) expect(packages).not.toContain(heavy)
    expect(packages.filter((name) => name.startsWith('@roamhq/'))).toEqual([])
    expect(await filesEndingWith(join(app, 'node_modules'), '.node')).toEqual([])
    // yjs is a peer dependency: npm installs it once, where the app's own import would find it.
    expect(packages.filter((name) => name === 'yjs')).toEqual(['yjs'])
    expect(packages.length).toBeLessThanOrEqual(25)

    // A Node user without the optional peers gets the command to run, not a resolution stack.
    const probe = async (code: string): Promise<string> => (await run(process.execPath, ['--input-type=module', '-e', code], { cwd: app })).stdout.trim()
    expect(await probe("import('y-session-store/node').then((m) => m.joinRoom('r')).then(() => console.log('joined'), (e) => console.log(e.code, e.message))"))
      .toMatch(/^MISSING_DEPENDENCY .*npm i @roamhq\/wrtc$/)
    expect(await probe("import('y-session-store/signaling').then((m) => m.createSignalingServer({ port: 0 })).then(() => console.log('started'), (e) => console.log(e.code, e.message))"))
      .toMatch(/^MISSING_DEPENDENCY .*npm i prom-client$/)
    // Minting tokens needs none of the server's packages.
    expect(await probe("import('y-session-store/signaling').then(async (m) => console.log((await m.createToken({ secret: 'x'.repeat(32), rooms: ['r'] })).split('.').length))")).toBe('3')
    const cli = await run(join(app, 'node_modules/.bin/y-session-store-signaling'), [], { cwd: app }).then(() => null, (err: { code: number, stderr: string }) => err)
    expect(cli?.code).toBe(1)
    expect(cli?.stderr).toContain('npm i prom-client pino')

    // The browser entry still bundles from the installed package.
    await writeFile(join(app, 'main.js'), "import { joinRoom } from 'y-session-store'\nconsole.log(typeof joinRoom)\n")
    const bundle = await build({ entryPoints: [join(app, 'main.js')], bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' })
    expect(Object.keys(bundle.metafile.inputs).filter((input) => input.includes('node_modules/yjs/')).length).toBeGreaterThan(0)
  })
})

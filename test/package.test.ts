/**
 * The package as users get it: entry points resolve from the build, the browser entry bundles
 * without Node-only code, and there is one copy of Yjs.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { build } from 'esbuild'

describe('package', () => {
  it('exposes the three entry points with their types', async () => {
    const browser = await import('y-session-store')
    const node = await import('y-session-store/node')
    const signaling = await import('y-session-store/signaling')
    expect(typeof browser.joinRoom).toBe('function')
    expect(typeof node.joinRoom).toBe('function')
    expect(node.joinRoom).not.toBe(browser.joinRoom)
    expect(node.SessionStoreError).toBe(browser.SessionStoreError)
    expect(typeof signaling.createSignalingServer).toBe('function')
    for (const file of ['dist/src/index.d.ts', 'dist/src/node.d.ts', 'dist/signaling/index.d.ts']) expect(existsSync(file)).toBe(true)
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
})

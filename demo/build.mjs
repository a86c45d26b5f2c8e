// Builds the demo page into demo/dist/: type-checks demo/main.ts, bundles it with esbuild (it
// imports the built package, so `npm run build` comes first), and copies the HTML and CSS.
// `npm start` serves demo/dist/ from the signaling server. Files are overwritten in place, never
// removed first, so a server already serving demo/dist/ (another test run) never sees it missing.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import * as esbuild from 'esbuild'

const require = createRequire(import.meta.url)
const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const out = here('./dist/')

const fail = (message) => {
  process.stderr.write(`build:demo: ${message}\n`)
  process.exit(1)
}

if (!existsSync(here('../dist/src/index.js'))) fail('the demo bundles the built package: run `npm run build` first')

const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', here('./tsconfig.json')], { stdio: 'inherit' })
if (tsc.status !== 0) fail('demo/main.ts does not type-check')

await mkdir(out, { recursive: true })
await esbuild.build({
  entryPoints: [here('./main.ts')],
  outfile: here('./dist/main.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning'
})
await copyFile(here('./index.html'), here('./dist/index.html'))
await copyFile(here('./style.css'), here('./dist/style.css'))
process.stdout.write(`build:demo: wrote ${out}\n`)

/**
 * Static files on the signaling port, so one process can also serve a demo page. Paths are
 * resolved by a pure function that refuses traversal, dotfiles and odd encodings; symlinks are
 * checked again against the real root before a byte is read.
 */

import { createReadStream } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import { extname, isAbsolute, join, relative } from 'node:path'
import type { ServerResponse } from 'node:http'
import { pipeline } from 'node:stream/promises'

export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2'
}

export const contentTypeFor = (file: string): string =>
  CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream'

const isInside = (root: string, target: string): boolean => {
  const rel = relative(root, target)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

/**
 * Maps a URL pathname to a path inside `root` (absolute), or null when the pathname is not
 * acceptable: undecodable, containing NUL or a backslash, or with a segment starting with `.`
 * (which covers `..` and dotfiles such as `.env`).
 */
export const resolveStaticPath = (root: string, pathname: string): string | null => {
  let decoded: string
  try {
    decoded = decodeURIComponent(pathname)
  } catch {
    return null
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null
  const segments = decoded.split('/').filter((segment) => segment.length > 0)
  if (segments.some((segment) => segment.startsWith('.'))) return null
  const target = join(root, ...segments)
  return isInside(root, target) ? target : null
}

const fileAt = async (path: string): Promise<{ path: string, size: number } | null> => {
  try {
    const info = await stat(path)
    if (info.isFile()) return { path, size: info.size }
    if (info.isDirectory()) return await fileAt(join(path, 'index.html'))
    return null
  } catch {
    return null
  }
}

/**
 * Serves `pathname` from `root`: the file, `index.html` of a directory, or the root `index.html`
 * for a path without an extension (client-side routes). Anything else is a 404.
 */
export const serveStatic = async (root: string, pathname: string, method: string, res: ServerResponse): Promise<void> => {
  const target = resolveStaticPath(root, pathname)
  let file = target === null ? null : await fileAt(target)
  if (file === null && target !== null && extname(pathname) === '') file = await fileAt(join(root, 'index.html'))
  if (file === null || !isInside(await realpath(root), await realpath(file.path))) {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
    return
  }
  res.writeHead(200, {
    'Content-Type': contentTypeFor(file.path),
    'Content-Length': file.size,
    'X-Content-Type-Options': 'nosniff'
  })
  if (method === 'HEAD') {
    res.end()
    return
  }
  await pipeline(createReadStream(file.path), res)
}

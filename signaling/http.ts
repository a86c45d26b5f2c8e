/**
 * The plain HTTP side of the signaling port: `/healthz` for load balancers, `/metrics` for
 * Prometheus, and optionally static files. WebSocket upgrades never reach this handler.
 */

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from './logger.js'
import { serveStatic } from './static.js'
import type { RedisLinkState } from './stats.js'

export interface Health {
  /** 'ok' whatever the Redis link does: an instance serves its own rooms without Redis. */
  status: 'ok' | 'closing'
  connections: number
  topics: number
  /** Only with `redisUrl`. */
  redis?: RedisLinkState
}

export interface HttpContext {
  health: () => Health
  registry: Registry
  /** Absolute directory to serve, or null for none. */
  staticDir: string | null
  logger: Logger
}

const pathnameOf = (req: IncomingMessage): string | null => {
  try {
    return new URL(req.url ?? '/', 'http://localhost').pathname
  } catch {
    return null
  }
}

const send = (res: ServerResponse, status: number, type: string, body: string, method: string): void => {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' })
  res.end(method === 'HEAD' ? undefined : body)
}

const route = async (ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const method = req.method ?? 'GET'
  if (method !== 'GET' && method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n')
    return
  }
  const pathname = pathnameOf(req)
  if (pathname === '/healthz') {
    const health = ctx.health()
    send(res, health.status === 'ok' ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify(health), method)
  } else if (pathname === '/metrics') {
    send(res, 200, ctx.registry.contentType, await ctx.registry.metrics(), method)
  } else if (ctx.staticDir !== null && pathname !== null) {
    await serveStatic(ctx.staticDir, pathname, method, res)
  } else {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', method)
  }
}

export const createHttpHandler = (ctx: HttpContext): RequestListener => (req, res) => {
  route(ctx, req, res).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      // The client went away (or Node's pipeline saw the response close first): nothing failed here.
      ctx.logger.debug({ path: pathnameOf(req) }, 'http client closed the response early')
      return
    }
    ctx.logger.error({ err, path: pathnameOf(req) }, 'http request failed')
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error\n')
    else res.destroy()
  })
}

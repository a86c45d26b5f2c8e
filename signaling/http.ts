/**
 * The plain HTTP side of the signaling port: `/healthz` for load balancers, `/metrics` for
 * Prometheus (unless it has a port of its own), optionally static files and (development only)
 * the dev token endpoint under `/dev/`; and the handler of that metrics port. WebSocket upgrades
 * never reach these handlers.
 *
 * `/healthz` is public and says up or down, nothing more. `/metrics` holds counts that tell an
 * attacker how well an attack works: it can ask for a bearer token, compared in constant time.
 */

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import type { DevTokenService } from './dev-tokens.js'
import type { Logger } from './logger.js'
import { serveStatic } from './static.js'

export interface Health {
  /** 'ok' whatever the Redis link does: an instance serves its own rooms without Redis. */
  status: 'ok' | 'closing'
}

export interface MetricsEndpoint {
  registry: Registry
  /** SHA-256 of the bearer token `/metrics` needs, or null when it needs none. */
  tokenDigest: Buffer | null
}

export interface HttpContext {
  health: () => Health
  /** `/metrics` on this port, or null when it is served elsewhere (then it is a 404 here). */
  metrics: MetricsEndpoint | null
  /** Absolute directory to serve, or null for none. */
  staticDir: string | null
  /** The dev token endpoint (`devTokens`), which answers everything under `/dev/`; null for none. */
  devTokens: DevTokenService | null
  logger: Logger
}

const BEARER = /^bearer +(\S+) *$/i

/** True when the request carries the bearer token (hashed first, so the comparison is constant-time whatever the lengths). */
export const isAuthorized = (req: IncomingMessage, tokenDigest: Buffer | null): boolean => {
  if (tokenDigest === null) return true
  const token = BEARER.exec(req.headers.authorization ?? '')?.[1]
  return token !== undefined && timingSafeEqual(createHash('sha256').update(token).digest(), tokenDigest)
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

const serveMetrics = async (metrics: MetricsEndpoint, req: IncomingMessage, res: ServerResponse, method: string): Promise<void> => {
  if (!isAuthorized(req, metrics.tokenDigest)) {
    res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="metrics"', 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' })
    res.end(method === 'HEAD' ? undefined : 'a bearer token is required\n')
    return
  }
  send(res, 200, metrics.registry.contentType, await metrics.registry.metrics(), method)
}

/** The method if it is GET or HEAD; otherwise answers 405 and returns null. */
const readOnlyMethod = (req: IncomingMessage, res: ServerResponse): string | null => {
  const method = req.method ?? 'GET'
  if (method === 'GET' || method === 'HEAD') return method
  res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n')
  return null
}

const route = async (ctx: HttpContext, req: IncomingMessage, res: ServerResponse): Promise<void> => {
  const pathname = pathnameOf(req)
  if (ctx.devTokens !== null && pathname?.startsWith('/dev/') === true) {
    await ctx.devTokens.serve(req, res, pathname)
    return
  }
  const method = readOnlyMethod(req, res)
  if (method === null) return
  if (pathname === '/healthz') {
    const health = ctx.health()
    send(res, health.status === 'ok' ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify(health), method)
  } else if (pathname === '/metrics' && ctx.metrics !== null) {
    await serveMetrics(ctx.metrics, req, res, method)
  } else if (ctx.staticDir !== null && pathname !== null) {
    await serveStatic(ctx.staticDir, pathname, method, res)
  } else {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n', method)
  }
}

/** Runs `serve`; a failure is logged (with the path, never the query) and answered 500. */
const handle = (logger: Logger, serve: (req: IncomingMessage, res: ServerResponse) => Promise<void>): RequestListener => (req, res) => {
  serve(req, res).catch((err: unknown) => {
    if ((err as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      // The client went away (or Node's pipeline saw the response close first): nothing failed here.
      logger.debug({ path: pathnameOf(req) }, 'http client closed the response early')
      return
    }
    logger.error({ err, path: pathnameOf(req) }, 'http request failed')
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error\n')
    else res.destroy()
  })
}

export const createHttpHandler = (ctx: HttpContext): RequestListener =>
  handle(ctx.logger, async (req, res) => await route(ctx, req, res))

/** The handler of the metrics port: `/metrics` and nothing else. */
export const createMetricsHandler = (metrics: MetricsEndpoint, logger: Logger): RequestListener =>
  handle(logger, async (req, res) => {
    const method = readOnlyMethod(req, res)
    if (method === null) return
    if (pathnameOf(req) === '/metrics') await serveMetrics(metrics, req, res, method)
    else send(res, 404, 'text/plain; charset=utf-8', 'not found\n', method)
  })

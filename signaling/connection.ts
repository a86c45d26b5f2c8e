/**
 * One client connection: its subscriptions, its rate limit, its heartbeat and its access grant.
 *
 * Every frame goes through the same gate: rate limit, then parse (a guard that returns null), then
 * permission checks. A refusal is counted and the frame dropped; nothing a client sends can throw
 * out of here. A connection the server gives up on is released at once (its topics are freed and
 * it stops counting) and only then closed, so `clients` counts never include a dying socket.
 */

import type { RawData, WebSocket } from 'ws'
import { isTopicAllowed, type Grant } from './auth.js'
import type { Logger } from './logger.js'
import { CloseCode, PONG, decodeJson, toClientMessage, type ClientMessage, type ParseLimits } from './protocol.js'
import { createBucket, take, type RateLimit, type TokenBucket } from './rate-limit.js'
import type { Subscriber, TopicRelay } from './relay.js'
import type { Counters, RejectionReason } from './stats.js'

export interface ConnectionLimits {
  parse: ParseLimits
  rate: RateLimit
  maxTopicsPerConnection: number
  maxBufferedBytes: number
}

export interface ConnectionContext {
  relay: TopicRelay
  counters: Counters
  limits: ConnectionLimits
  logger: Logger
  /** Called exactly once, when the connection stops counting. */
  onRelease: (connection: Connection) => void
}

const PONG_FRAME = Buffer.from(PONG)

/** setTimeout's largest delay; a later expiry is reached in several steps. */
const MAX_TIMER_DELAY = 2 ** 31 - 1

const toText = (data: RawData): string => {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

export class Connection implements Subscriber {
  private readonly topics = new Set<string>()
  private alive = true
  private released = false
  private readonly bucket: TokenBucket
  private expiryTimer: ReturnType<typeof setTimeout> | undefined

  constructor (
    readonly id: number,
    private readonly ws: WebSocket,
    private readonly ctx: ConnectionContext,
    private readonly grant: Grant | null
  ) {
    this.bucket = createBucket(ctx.limits.rate, performance.now())
    ws.on('message', (data, isBinary) => this.receive(data, isBinary))
    ws.on('pong', () => { this.alive = true })
    ws.on('error', (err) => this.onProtocolError(err))
    ws.on('close', () => this.release())
    if (grant !== null) this.scheduleExpiry(grant.expiresAt)
  }

  deliver (frame: Buffer): boolean {
    if (this.released) return false
    // Checked before queueing, so one frame larger than the cap still goes to a reader that keeps up.
    if (this.ws.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      this.drop('slow_consumer')
      return false
    }
    try {
      this.ws.send(frame, { binary: false })
    } catch (err) {
      this.ctx.logger.error({ conn: this.id, err }, 'send failed')
      this.drop('internal_error')
      return false
    }
    this.ctx.counters.messagesOut++
    return true
  }

  /** Called every heartbeat interval: drop the connection if the previous ping went unanswered. */
  heartbeat (): void {
    if (this.released) return
    if (!this.alive) {
      this.drop('heartbeat_timeout')
      return
    }
    this.alive = false
    try {
      this.ws.ping()
    } catch (err) {
      this.ctx.logger.debug({ conn: this.id, err }, 'ping failed')
    }
  }

  /** Graceful close for server shutdown: 1001 Going Away. */
  shutdown (): void {
    this.closeWith(null, CloseCode.GoingAway, 'server shutting down')
  }

  private receive (data: RawData, isBinary: boolean): void {
    if (this.released) return
    const { counters, limits } = this.ctx
    counters.messagesIn++
    this.alive = true
    const verdict = take(this.bucket, limits.rate, performance.now())
    if (verdict !== 'allow') {
      this.reject('rate_limited')
      if (verdict === 'close') this.closeWith('rate_limit_closed', CloseCode.RateLimited, 'rate limit exceeded')
      return
    }
    if (isBinary) {
      this.reject('binary')
      return
    }
    try {
      const value = decodeJson(toText(data))
      if (value === undefined) {
        this.reject('invalid_json')
        return
      }
      const message = toClientMessage(value, limits.parse)
      if (message === null) {
        this.reject('malformed')
        return
      }
      this.handle(message)
    } catch (err) {
      this.ctx.logger.error({ conn: this.id, err }, 'failed to handle a message')
      this.reject('internal_error')
    }
  }

  private handle (message: ClientMessage): void {
    switch (message.type) {
      case 'subscribe':
        for (const topic of message.topics) this.subscribe(topic)
        break
      case 'unsubscribe':
        for (const topic of message.topics) {
          if (this.topics.delete(topic)) this.ctx.relay.unsubscribe(topic, this)
        }
        break
      case 'publish':
        if (!this.mayUse(message.topic)) this.reject('forbidden_topic')
        else if (!this.topics.has(message.topic)) this.reject('not_subscribed')
        else this.ctx.relay.publish(message.topic, message.data)
        break
      case 'ping':
        this.deliver(PONG_FRAME)
        break
    }
  }

  private subscribe (topic: string): void {
    if (this.topics.has(topic)) return
    if (!this.mayUse(topic)) {
      this.reject('forbidden_topic')
      return
    }
    if (this.topics.size >= this.ctx.limits.maxTopicsPerConnection) {
      this.reject('topic_limit')
      return
    }
    this.topics.add(topic)
    this.ctx.relay.subscribe(topic, this)
  }

  private mayUse (topic: string): boolean {
    return this.grant === null || isTopicAllowed(this.grant, topic)
  }

  private reject (reason: RejectionReason): void {
    this.ctx.counters.rejections[reason]++
    this.ctx.logger.debug({ conn: this.id, reason }, 'rejected')
  }

  private onProtocolError (err: Error & { code?: string }): void {
    // `ws` emits 'error' only for what it read (oversize frame, bad framing, invalid UTF-8) and
    // closes the connection itself right after.
    this.reject(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'too_large' : 'protocol_error')
    this.release()
  }

  /** Always through a timer, so even an already expired token is acted on after construction. */
  private scheduleExpiry (expiresAt: number): void {
    const delay = Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_DELAY)
    this.expiryTimer = setTimeout(() => {
      if (Date.now() >= expiresAt) this.closeWith('token_expired', CloseCode.TokenExpired, 'token expired')
      else this.scheduleExpiry(expiresAt)
    }, delay)
    this.expiryTimer.unref()
  }

  /** Releases now and cuts the socket without a close handshake (the peer is not listening). */
  private drop (reason: RejectionReason): void {
    if (this.released) return
    this.reject(reason)
    this.ctx.logger.info({ conn: this.id, reason }, 'connection dropped')
    this.release()
    this.ws.terminate()
  }

  /** Releases now and starts the close handshake; `ws` cuts the socket after `closeTimeout`. */
  private closeWith (reason: RejectionReason | null, code: CloseCode, text: string): void {
    if (this.released) return
    if (reason !== null) {
      this.reject(reason)
      this.ctx.logger.info({ conn: this.id, reason, code }, 'connection closed by the server')
    }
    this.release()
    this.ws.close(code, text)
  }

  private release (): void {
    if (this.released) return
    this.released = true
    clearTimeout(this.expiryTimer)
    for (const topic of this.topics) this.ctx.relay.unsubscribe(topic, this)
    this.topics.clear()
    this.ctx.onRelease(this)
  }
}

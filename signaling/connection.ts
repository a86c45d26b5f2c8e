/**
 * One client connection: its subscriptions, its rate limit, its heartbeat and its access grant.
 *
 * Every frame goes through the same gate: rate limit, then parse (a guard that returns null), then
 * permission checks. A refusal is counted and the frame dropped; nothing a client sends can throw
 * out of here. A connection the server gives up on is released at once (its topics are freed and
 * it stops counting) and only then closed, so `clients` counts never include a dying socket.
 *
 * The connection *is* the WebSocket: the server hands this class to `ws` (its documented
 * `WebSocket` option), and the four events it needs arrive through `emit` instead of four listener
 * closures. An idle connection is what ws and Node hold for a socket plus this object's fields,
 * which the server keeps in one registry; its token bucket is one of those fields, its topic
 * another, and it drops two empty tables ws and EventEmitter make for every socket.
 */

import { WebSocket, type RawData } from 'ws'
import type { AddressEntry, AddressTable, RefusalLog } from './address-limits.js'
import { isTopicAllowed, type Grant } from './auth.js'
import type { LockService } from './lock-service.js'
import type { Logger } from './logger.js'
import { CloseCode, PONG, decodeJson, encodeError, toClientMessage, type ClientMessage, type ParseLimits } from './protocol.js'
import { FULL, charge, verdictOf, type RateLimit } from './rate-limit.js'
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
  /** The lock arbiter's protocol: lock frames go there. */
  locks: LockService
  counters: Counters
  limits: ConnectionLimits
  /** Per-address limits: the message bucket a connection shares with its address's others. */
  addresses: AddressTable
  refusals: RefusalLog
  logger: Logger
  /**
   * Called exactly once, when the connection stops counting; `clean` when the client closed it
   * with a close frame (not cut, not closed by the server).
   */
  onRelease: (connection: Connection, clean: boolean) => void
  /** Called exactly once, when the socket is gone (after `onRelease`). */
  onClose: (connection: Connection) => void
}

const PONG_FRAME = Buffer.from(PONG)

/** setTimeout's largest delay; a later expiry is reached in several steps. */
const MAX_TIMER_DELAY = 2 ** 31 - 1

const toText = (data: RawData): string => {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

/**
 * ws's table of negotiated extensions: a new empty object per connection, which ws replaces (and
 * never writes into) when one is negotiated. The server negotiates none (`perMessageDeflate: false`).
 */
const NO_EXTENSIONS = Object.freeze({})

export class Connection extends WebSocket implements Subscriber {
  /**
   * Two objects that EventEmitter and ws create for every socket, dropped as soon as they are made
   * (these fields are set right after their constructors run): the listener table, an empty
   * dictionary of 184 B, which EventEmitter creates again for the first listener (events reach a
   * connection through `emit`, so most never get one); and ws's extension table, 56 B.
   */
  private _events: object | undefined = undefined
  private readonly _extensions: object = NO_EXTENSIONS
  id = 0
  /** Null until `attach`: ws constructs the object, the server then gives it its context. */
  private ctx: ConnectionContext | null = null
  /** The client address's entry, shared with its other connections. */
  address: AddressEntry | null = null
  private grant: Grant | null = null
  /**
   * Subscribed topics, at most `maxTopicsPerConnection`: null until the first subscribe, then the
   * topic itself (most connections hold one: no array for it), an array from the second on.
   */
  private topics: string | string[] | null = null
  private alive = true
  private released = false
  /** The connection's own token bucket (rate-limit.ts), full until the first frame. */
  private fullAt = FULL
  private expiryTimer: ReturnType<typeof setTimeout> | undefined = undefined

  /** Starts serving the socket that ws just upgraded. */
  attach (id: number, ctx: ConnectionContext, address: AddressEntry, grant: Grant | null): void {
    this.id = id
    this.ctx = ctx
    this.address = address
    this.grant = grant
    if (grant !== null) this.scheduleExpiry(grant.expiresAt)
  }

  /** ws reports everything through `emit`; these are the events a connection acts on. */
  override emit (event: string | symbol, ...args: any[]): boolean {
    if (this.ctx === null) return super.emit(event, ...args)
    switch (event) {
      case 'message':
        this.receive(args[0] as RawData, args[1] as boolean)
        break
      case 'ping':
        this.answerPing(args[0] as Buffer)
        break
      case 'pong':
        this.alive = true
        break
      case 'error':
        // Handled here: without a listener, EventEmitter would throw it.
        this.onProtocolError(args[0] as Error & { code?: string })
        return true
      case 'close':
        // 1006: the socket went without a close frame.
        this.release(args[0] !== 1006)
        this.ctx.onClose(this)
        break
    }
    return super.emit(event, ...args)
  }

  deliver (frame: Buffer): boolean {
    if (this.released || this.ctx === null) return false
    // Checked before queueing, so one frame larger than the cap still goes to a reader that keeps up.
    if (this.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      this.drop('slow_consumer')
      return false
    }
    try {
      this.send(frame, { binary: false })
    } catch (err) {
      this.ctx.logger.error({ conn: this.id, err }, 'send failed')
      this.drop('internal_error')
      return false
    }
    this.ctx.counters.messagesOut++
    return true
  }

  /** Whether the connection is subscribed to `topic`. */
  subscribes (topic: string): boolean {
    return this.topics === topic || (Array.isArray(this.topics) && this.topics.includes(topic))
  }

  /** Called every heartbeat interval: drop the connection if the previous ping went unanswered. */
  heartbeat (): void {
    if (this.released || this.ctx === null) return
    if (!this.alive) {
      this.drop('heartbeat_timeout')
      return
    }
    this.alive = false
    try {
      this.ping()
    } catch (err) {
      this.ctx.logger.debug({ conn: this.id, err }, 'ping failed')
    }
  }

  /**
   * Closes a socket upgraded only to say why it is refused (a browser cannot read the HTTP status
   * of a refused upgrade). It never counts as a connection and ignores whatever it is sent.
   */
  refuse (ctx: ConnectionContext, address: AddressEntry, code: CloseCode, reason: string): void {
    this.ctx = ctx
    this.address = address
    this.released = true
    this.close(code, reason)
  }

  /** Graceful close for server shutdown: 1001 Going Away. */
  shutdown (): void {
    this.closeWith(null, CloseCode.GoingAway, 'server shutting down')
  }

  /**
   * The rate limits, for every frame a client sends (messages and WebSocket pings alike): the
   * connection's own bucket, then the one it shares with its address's other connections.
   */
  private admit (ctx: ConnectionContext): boolean {
    this.alive = true
    const now = performance.now()
    this.fullAt = charge(this.fullAt, ctx.limits.rate, now)
    const own = verdictOf(this.fullAt, ctx.limits.rate, now)
    if (own !== 'allow') {
      this.reject('rate_limited')
      if (own === 'close') this.closeWith('rate_limit_closed', CloseCode.RateLimited, 'rate limit exceeded')
      return false
    }
    if (this.address === null) return true
    const shared = ctx.addresses.takeMessage(this.address, now)
    if (shared === 'allow') return true
    this.reject('address_rate_limited')
    ctx.refusals.note(this.address.key, 'address_rate_limited', now)
    if (shared === 'close') this.closeWith('rate_limit_closed', CloseCode.RateLimited, 'address rate limit exceeded')
    return false
  }

  /**
   * ws's automatic pong is off (it costs a closure per connection): a ping is answered here, within
   * the rate limit, and not to a receiver that has stopped reading.
   */
  private answerPing (data: Buffer): void {
    if (this.released || this.ctx === null || !this.admit(this.ctx)) return
    if (this.bufferedAmount > this.ctx.limits.maxBufferedBytes) {
      this.drop('slow_consumer')
      return
    }
    try {
      this.pong(data)
    } catch (err) {
      this.ctx.logger.debug({ conn: this.id, err }, 'pong failed')
    }
  }

  private receive (data: RawData, isBinary: boolean): void {
    if (this.released || this.ctx === null) return
    const { counters, limits } = this.ctx
    counters.messagesIn++
    if (!this.admit(this.ctx)) return
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
      this.handle(message, this.ctx)
    } catch (err) {
      this.ctx.logger.error({ conn: this.id, err }, 'failed to handle a message')
      this.reject('internal_error')
    }
  }

  private handle (message: ClientMessage, ctx: ConnectionContext): void {
    switch (message.type) {
      case 'subscribe':
        for (const topic of message.topics) this.subscribe(topic, ctx)
        break
      case 'unsubscribe':
        for (const topic of message.topics) this.unsubscribe(topic, ctx)
        break
      case 'publish':
        if (!this.mayUse(message.topic)) this.forbid(message.topic, ctx)
        else if (!this.subscribes(message.topic)) this.reject('not_subscribed')
        else ctx.relay.publish(message.topic, message.data, this.address === null || this.address.handle === '' ? undefined : this.address.handle)
        break
      case 'ping':
        this.deliver(PONG_FRAME)
        break
      case 'lock':
        ctx.locks.handle(this, message)
        break
    }
  }

  private subscribe (topic: string, ctx: ConnectionContext): void {
    if (this.subscribes(topic)) return
    if (!this.mayUse(topic)) {
      this.forbid(topic, ctx)
      return
    }
    if (this.topicList().length >= ctx.limits.maxTopicsPerConnection) {
      this.reject('topic_limit')
      return
    }
    const { topics } = this
    if (topics === null) this.topics = topic
    else if (typeof topics === 'string') this.topics = [topics, topic]
    else topics.push(topic)
    ctx.relay.subscribe(topic, this)
  }

  private unsubscribe (topic: string, ctx: ConnectionContext): void {
    if (!this.subscribes(topic)) return
    if (typeof this.topics === 'string') this.topics = null
    else this.topics?.splice(this.topics.indexOf(topic), 1)
    ctx.relay.unsubscribe(topic, this)
  }

  private topicList (): readonly string[] {
    const { topics } = this
    return topics === null ? [] : typeof topics === 'string' ? [topics] : topics
  }

  private mayUse (topic: string): boolean {
    return this.grant === null || isTopicAllowed(this.grant, topic)
  }

  /** A topic outside the token: counted, and told to the client while its address's error budget lasts. */
  private forbid (topic: string, ctx: ConnectionContext): void {
    this.reject('forbidden_topic')
    if (this.address !== null && ctx.addresses.takeError(this.address, performance.now())) {
      this.deliver(Buffer.from(encodeError('forbidden_topic', topic)))
    }
  }

  private reject (reason: RejectionReason): void {
    if (this.ctx === null) return
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
    this.ctx?.logger.info({ conn: this.id, reason }, 'connection dropped')
    this.release()
    this.terminate()
  }

  /** Releases now and starts the close handshake; `ws` cuts the socket after `closeTimeout`. */
  private closeWith (reason: RejectionReason | null, code: CloseCode, text: string): void {
    if (this.released) return
    if (reason !== null) {
      this.reject(reason)
      this.ctx?.logger.info({ conn: this.id, reason, code }, 'connection closed by the server')
    }
    this.release()
    this.close(code, text)
  }

  private release (clean = false): void {
    if (this.released || this.ctx === null) return
    this.released = true
    clearTimeout(this.expiryTimer)
    for (const topic of this.topicList()) this.ctx.relay.unsubscribe(topic, this)
    this.topics = null
    this.ctx.onRelease(this, clean)
  }
}

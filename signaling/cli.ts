#!/usr/bin/env node
/**
 * `y-session-store-signaling`: a thin shell around `createSignalingServer`. Flags and env in,
 * one line with the URL on stdout, pino logs on stderr, graceful shutdown on SIGINT/SIGTERM.
 */

import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { DEFAULT_OPTIONS, type SignalingServerOptions } from './options.js'
import { createSignalingServer } from './server.js'
import { DEFAULT_TURN_TTL } from './turn.js'

const USAGE = `Usage: y-session-store-signaling [options]

Options (environment variable in brackets):
  --port N                        port, 0 for any free one [PORT] (default ${DEFAULT_OPTIONS.port})
  --host HOST                     interface to bind [HOST] (default ${DEFAULT_OPTIONS.host})
  --max-payload BYTES             largest frame (default ${DEFAULT_OPTIONS.maxPayload})
  --max-connections N             open connections at most (default ${DEFAULT_OPTIONS.maxConnections})
  --max-topics-per-connection N   subscriptions per connection (default ${DEFAULT_OPTIONS.maxTopicsPerConnection})
  --max-topic-length N            longest topic name (default ${DEFAULT_OPTIONS.maxTopicLength})
  --messages-per-second N         sustained rate per connection (default ${DEFAULT_OPTIONS.messagesPerSecond})
  --message-burst N               burst per connection (default ${DEFAULT_OPTIONS.messageBurst})
  --max-buffered-bytes BYTES      unsent bytes before a receiver is dropped (default ${DEFAULT_OPTIONS.maxBufferedBytes})
  --heartbeat-interval MS         ping interval (default ${DEFAULT_OPTIONS.heartbeatInterval})
  --close-timeout MS              wait for close handshakes (default ${DEFAULT_OPTIONS.closeTimeout})
  --auth-secret SECRET            require HS256 tokens signed with SECRET [AUTH_SECRET]
  --static DIR                    serve files from DIR on the same port
  --redis-url URL                 share rooms with every instance on this Redis, redis://[:password@]host:port [REDIS_URL]
  --redis-prefix PREFIX           prefix of the Redis channels and keys [REDIS_PREFIX] (default ${DEFAULT_OPTIONS.redisPrefix})
  --redis-ttl MS                  a crashed instance's clients stop counting this long after its last heartbeat (default ${DEFAULT_OPTIONS.redisTtl})
  --turn-secret SECRET            hand clients TURN credentials for coturn's static-auth-secret SECRET [TURN_SECRET]
  --turn-url URL                  a TURN URL for those credentials, repeatable or comma-separated [TURN_URLS]
  --turn-ttl SECONDS              lifetime of a TURN credential (default ${DEFAULT_TURN_TTL})
  --log-level LEVEL               fatal, error, warn, info, debug, trace or silent [LOG_LEVEL] (default info)
  -h, --help                      show this help
`

const NUMERIC_FLAGS = {
  'max-payload': 'maxPayload',
  'max-connections': 'maxConnections',
  'max-topics-per-connection': 'maxTopicsPerConnection',
  'max-topic-length': 'maxTopicLength',
  'messages-per-second': 'messagesPerSecond',
  'message-burst': 'messageBurst',
  'max-buffered-bytes': 'maxBufferedBytes',
  'heartbeat-interval': 'heartbeatInterval',
  'close-timeout': 'closeTimeout',
  'redis-ttl': 'redisTtl'
} as const satisfies Record<string, keyof SignalingServerOptions>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

class UsageError extends Error {}

const toNumber = (flag: string, text: string): number => {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} needs a number, got '${text}'`)
  return value
}

const parse = (argv: string[]): { help: boolean, logLevel: string, options: SignalingServerOptions } => {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      port: { type: 'string' },
      host: { type: 'string' },
      'auth-secret': { type: 'string' },
      static: { type: 'string' },
      'redis-url': { type: 'string' },
      'redis-prefix': { type: 'string' },
      'log-level': { type: 'string' },
      'turn-secret': { type: 'string' },
      'turn-url': { type: 'string', multiple: true },
      'turn-ttl': { type: 'string' },
      ...Object.fromEntries(Object.keys(NUMERIC_FLAGS).map((flag) => [flag, { type: 'string' as const }]))
    }
  })
  const text = (name: string): string | undefined => {
    const value = (values as Record<string, string | boolean | undefined>)[name]
    return typeof value === 'string' ? value : undefined
  }
  // An empty variable (`PORT=` in a compose file) counts as unset.
  const env = (name: string): string | undefined => process.env[name] === '' ? undefined : process.env[name]
  const options: SignalingServerOptions = {}
  const port = text('port') ?? env('PORT')
  if (port !== undefined) options.port = toNumber('port', port)
  const host = text('host') ?? env('HOST')
  if (host !== undefined) options.host = host
  const authSecret = text('auth-secret') ?? env('AUTH_SECRET')
  if (authSecret !== undefined) options.authSecret = authSecret
  const staticDir = text('static')
  if (staticDir !== undefined) options.staticDir = staticDir
  const redisUrl = text('redis-url') ?? env('REDIS_URL')
  if (redisUrl !== undefined) options.redisUrl = redisUrl
  const redisPrefix = text('redis-prefix') ?? env('REDIS_PREFIX')
  if (redisPrefix !== undefined) options.redisPrefix = redisPrefix
  for (const [flag, name] of Object.entries(NUMERIC_FLAGS)) {
    const value = text(flag)
    if (value !== undefined) options[name] = toNumber(flag, value)
  }
  const turnSecret = text('turn-secret') ?? env('TURN_SECRET')
  if (turnSecret !== undefined) {
    const urls = ((values['turn-url'] as string[] | undefined) ?? [env('TURN_URLS') ?? '']).flatMap((url) => url.split(',')).filter((url) => url !== '')
    const ttl = text('turn-ttl')
    options.turn = { secret: turnSecret, urls, ...(ttl === undefined ? {} : { ttl: toNumber('turn-ttl', ttl) }) }
  } else if (values['turn-url'] !== undefined || text('turn-ttl') !== undefined) {
    throw new UsageError('--turn-url and --turn-ttl need --turn-secret (or TURN_SECRET)')
  }
  const logLevel = text('log-level') ?? env('LOG_LEVEL') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  return { help: values.help === true, logLevel, options }
}

const main = async (): Promise<void> => {
  let args: ReturnType<typeof parse>
  try {
    args = parse(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  if (args.help) {
    process.stdout.write(USAGE)
    return
  }

  const logger = pino({ name: 'signaling', level: args.logLevel }, pino.destination({ dest: 2, sync: true }))
  let server: Awaited<ReturnType<typeof createSignalingServer>>
  try {
    server = await createSignalingServer({ ...args.options, logger })
  } catch (err) {
    logger.fatal({ err }, 'could not start the signaling server')
    process.exit(1)
  }
  process.stdout.write(`signaling server listening on ${server.url}\n`)
  if (args.options.staticDir !== undefined) process.stdout.write(`open ${server.url.replace(/^ws/, 'http')}/ in a browser\n`)

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting without waiting')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      }
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

await main()

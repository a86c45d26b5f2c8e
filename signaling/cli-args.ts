/**
 * The command line of `y-session-store-signaling`, as data: every flag, the environment variable
 * named after it (`--max-connections` → `MAX_CONNECTIONS`), the option it sets and its help line.
 * `parseCommandLine` turns argv and the environment into server options (pure: no process here),
 * so flags, variables and usage cannot drift apart.
 */

import { parseArgs } from 'node:util'
import { DEFAULT_OPTIONS, type SignalingServerOptions } from './options.js'
import { DEFAULT_TURN_TTL } from './turn.js'

type Kind =
  | 'number'
  | 'string'
  /** Comma-separated strings. */
  | 'list'
  /** A hop count, or comma-separated addresses and CIDR ranges. */
  | 'trust'
  /** A public JWK as JSON, or the http(s) URL of a JWKS. */
  | 'issuer'
  /** On or off: `--flag` alone, or the variable as 1/0. */
  | 'boolean'

interface Flag {
  option: keyof SignalingServerOptions
  kind: Kind
  /** What goes after the flag in the usage. */
  value: string
  help: string
}

const FLAGS = {
  port: { option: 'port', kind: 'number', value: 'N', help: `port, 0 for any free one (default ${DEFAULT_OPTIONS.port})` },
  host: { option: 'host', kind: 'string', value: 'HOST', help: `interface to bind (default ${DEFAULT_OPTIONS.host})` },
  'allowed-origins': { option: 'allowedOrigins', kind: 'list', value: 'ORIGINS', help: 'web page origins allowed to connect, comma-separated (default any)' },
  'trust-proxy': { option: 'trustProxy', kind: 'trust', value: 'HOPS|LIST', help: 'proxies whose forwarding header names the client: a hop count or addresses/CIDRs (default none)' },
  'proxy-header': { option: 'proxyHeader', kind: 'string', value: 'NAME', help: `x-forwarded-for or forwarded (default ${DEFAULT_OPTIONS.proxyHeader})` },
  'max-connections-per-address': { option: 'maxConnectionsPerAddress', kind: 'number', value: 'N', help: `connections per client address (default ${DEFAULT_OPTIONS.maxConnectionsPerAddress})` },
  'connections-per-second-per-address': { option: 'connectionsPerSecondPerAddress', kind: 'number', value: 'N', help: `new connections per address per second (default ${DEFAULT_OPTIONS.connectionsPerSecondPerAddress})` },
  'messages-per-second-per-address': { option: 'messagesPerSecondPerAddress', kind: 'number', value: 'N', help: `sustained rate per address (default ${DEFAULT_OPTIONS.messagesPerSecondPerAddress})` },
  'message-burst-per-address': { option: 'messageBurstPerAddress', kind: 'number', value: 'N', help: `burst per address (default ${DEFAULT_OPTIONS.messageBurstPerAddress})` },
  'metrics-token': { option: 'metricsToken', kind: 'string', value: 'TOKEN', help: '/metrics needs Authorization: Bearer TOKEN (prefer the variable)' },
  'metrics-port': { option: 'metricsPort', kind: 'number', value: 'N', help: 'serve /metrics on this port instead (0: any free one)' },
  'metrics-host': { option: 'metricsHost', kind: 'string', value: 'HOST', help: `interface of --metrics-port (default ${DEFAULT_OPTIONS.metricsHost})` },
  'max-payload': { option: 'maxPayload', kind: 'number', value: 'BYTES', help: `largest frame (default ${DEFAULT_OPTIONS.maxPayload})` },
  'max-connections': { option: 'maxConnections', kind: 'number', value: 'N', help: `open connections at most (default ${DEFAULT_OPTIONS.maxConnections})` },
  'max-topics-per-connection': { option: 'maxTopicsPerConnection', kind: 'number', value: 'N', help: `subscriptions per connection (default ${DEFAULT_OPTIONS.maxTopicsPerConnection})` },
  'max-topic-length': { option: 'maxTopicLength', kind: 'number', value: 'N', help: `longest topic name (default ${DEFAULT_OPTIONS.maxTopicLength})` },
  'messages-per-second': { option: 'messagesPerSecond', kind: 'number', value: 'N', help: `sustained rate per connection (default ${DEFAULT_OPTIONS.messagesPerSecond})` },
  'message-burst': { option: 'messageBurst', kind: 'number', value: 'N', help: `burst per connection (default ${DEFAULT_OPTIONS.messageBurst})` },
  'max-buffered-bytes': { option: 'maxBufferedBytes', kind: 'number', value: 'BYTES', help: `unsent bytes before a receiver is dropped (default ${DEFAULT_OPTIONS.maxBufferedBytes})` },
  'heartbeat-interval': { option: 'heartbeatInterval', kind: 'number', value: 'MS', help: `ping interval (default ${DEFAULT_OPTIONS.heartbeatInterval})` },
  'close-timeout': { option: 'closeTimeout', kind: 'number', value: 'MS', help: `wait for close handshakes (default ${DEFAULT_OPTIONS.closeTimeout})` },
  'auth-secret': { option: 'authSecret', kind: 'string', value: 'SECRET', help: 'require HS256 tokens signed with SECRET (prefer the variable)' },
  'sender-secret': { option: 'senderSecret', kind: 'string', value: 'SECRET', help: 'key of the sender handles in relayed publishes, the same for every instance on one Redis (default random; prefer the variable)' },
  'issuer-key': { option: 'issuerKey', kind: 'issuer', value: 'JWK|URL', help: 'require tokens, and accept room tokens of this issuer: its public JWK as JSON, or a JWKS URL' },
  'dev-tokens': { option: 'devTokens', kind: 'boolean', value: '', help: 'DEVELOPMENT ONLY: hand out room tokens on POST /dev/token (the demo\'s), and accept them' },
  static: { option: 'staticDir', kind: 'string', value: 'DIR', help: 'serve files from DIR on the same port' },
  'redis-url': { option: 'redisUrl', kind: 'string', value: 'URL', help: 'share rooms with every instance on this Redis, redis://[:password@]host:port' },
  'redis-prefix': { option: 'redisPrefix', kind: 'string', value: 'PREFIX', help: `prefix of the Redis channels and keys (default ${DEFAULT_OPTIONS.redisPrefix})` },
  'redis-ttl': { option: 'redisTtl', kind: 'number', value: 'MS', help: `a crashed instance's clients stop counting this long after its last heartbeat (default ${DEFAULT_OPTIONS.redisTtl})` },
  'lock-key': { option: 'lockKey', kind: 'string', value: 'JWK', help: 'private Ed25519 JWK (JSON) that signs lock grants, the same for every instance (prefer the variable)' },
  'lock-grace': { option: 'lockGrace', kind: 'number', value: 'MS', help: `no lock is granted this long after start, so leases of before a restart have run out (default ${DEFAULT_OPTIONS.lockGrace})` }
} as const satisfies Record<string, Flag>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** `--max-connections` → `MAX_CONNECTIONS`. */
export const envName = (flag: string): string => flag.toUpperCase().replaceAll('-', '_')

/** The TURN credentials' flags (one nested option, `turn`). */
const TURN_FLAGS = {
  'turn-secret': { value: 'SECRET', help: 'hand clients TURN credentials for coturn\'s static-auth-secret SECRET (prefer the variable)' },
  'turn-urls': { value: 'URLS', help: 'the TURN URLs of those credentials, comma-separated (or repeat the flag)' },
  'turn-ttl': { value: 'SECONDS', help: `lifetime of a TURN credential (default ${DEFAULT_TURN_TTL})` }
} as const

/** Every environment variable the CLI reads. */
export const ENV_NAMES = [...Object.keys(FLAGS), ...Object.keys(TURN_FLAGS), 'log-level', 'exit-with-parent'].map(envName)

const usageLine = (flag: string, value: string, help: string): string =>
  `  ${`--${flag} ${value}`.trimEnd().padEnd(42)} ${help} [${envName(flag)}${value === '' ? '=1|0' : ''}]`

export const USAGE = `Usage: y-session-store-signaling [options]

Every option can also be set by the environment variable in brackets; a flag wins over it.

Options:
${Object.entries(FLAGS).map(([flag, { value, help }]) => usageLine(flag, value, help)).join('\n')}
${Object.entries(TURN_FLAGS).map(([flag, { value, help }]) => usageLine(flag, value, help)).join('\n')}
${usageLine('log-level', 'LEVEL', 'fatal, error, warn, info, debug, trace or silent (default info)')}
  ${'--exit-with-parent, --no-exit-with-parent'.padEnd(42)} exit when the parent process dies (default: on under npm/npx) [EXIT_WITH_PARENT=1|0]
  ${'-h, --help'.padEnd(42)} show this help
`

export class UsageError extends Error {}

export interface CommandLine {
  help: boolean
  logLevel: string
  /** Shut down when the parent process dies (see cli.ts). */
  exitWithParent: boolean
  options: SignalingServerOptions
}

const toNumber = (flag: string, text: string): number => {
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} needs a number, got '${text}'`)
  return value
}

const toList = (text: string): string[] => text.split(',').map((item) => item.trim()).filter((item) => item !== '')

const toBoolean = (name: string, text: string): boolean => {
  if (['1', 'true', 'yes', 'on'].includes(text.toLowerCase())) return true
  if (['0', 'false', 'no', 'off'].includes(text.toLowerCase())) return false
  throw new UsageError(`${name} must be 1 or 0, got '${text}'`)
}

/** `{"kty":"OKP",...}` is a JWK; `https://...` a JWKS to fetch. The server checks the key itself. */
const toIssuerKey = (flag: string, text: string): unknown => {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed) as unknown
    } catch {
      throw new UsageError(`--${flag} is not valid JSON: give the issuer's public JWK, or a JWKS URL`)
    }
  }
  if (/^https?:\/\//i.test(trimmed) && URL.canParse(trimmed)) return { jwksUrl: trimmed }
  throw new UsageError(`--${flag} needs the issuer's public JWK (JSON) or an http(s) JWKS URL`)
}

const toValue = (flag: string, kind: Kind, text: string): unknown => {
  switch (kind) {
    case 'number': return toNumber(flag, text)
    case 'string': return text
    case 'list': return toList(text)
    case 'trust': return /^\d+$/.test(text.trim()) ? Number(text) : toList(text)
    case 'issuer': return toIssuerKey(flag, text)
    case 'boolean': return toBoolean(envName(flag), text)
  }
}

/**
 * Flags and environment to options. Throws a `UsageError` for an unknown flag, a stray argument or
 * a value that is not a number where one is needed; the server validates the rest.
 */
export const parseCommandLine = (argv: string[], environment: NodeJS.ProcessEnv): CommandLine => {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      help: { type: 'boolean', short: 'h' },
      'log-level': { type: 'string' },
      'exit-with-parent': { type: 'boolean' },
      'no-exit-with-parent': { type: 'boolean' },
      'turn-secret': { type: 'string' },
      'turn-urls': { type: 'string', multiple: true },
      'turn-ttl': { type: 'string' },
      ...Object.fromEntries((Object.entries(FLAGS) as Array<[string, Flag]>).map(([flag, { kind }]) => [flag, { type: kind === 'boolean' ? 'boolean' as const : 'string' as const }]))
    }
  })
  const flags = values as Record<string, string | boolean | undefined>
  // An empty variable (`PORT=` in a compose file) counts as unset.
  const env = (flag: string): string | undefined => environment[envName(flag)] === '' ? undefined : environment[envName(flag)]
  const text = (flag: string): string | undefined => {
    const value = flags[flag]
    // A boolean flag given on the command line reads as its variable would: '1'.
    return typeof value === 'string' ? value : value === true ? '1' : env(flag)
  }

  const options: Record<string, unknown> = {}
  for (const [flag, { option, kind }] of Object.entries(FLAGS) as Array<[string, Flag]>) {
    const value = text(flag)
    if (value !== undefined) options[option] = toValue(flag, kind, value)
  }
  const turnSecret = text('turn-secret')
  const turnUrls = (flags['turn-urls'] as unknown as string[] | undefined) ?? (env('turn-urls') === undefined ? undefined : [env('turn-urls') as string])
  const turnTtl = text('turn-ttl')
  if (turnSecret !== undefined) {
    options.turn = { secret: turnSecret, urls: (turnUrls ?? []).flatMap(toList), ...(turnTtl === undefined ? {} : { ttl: toNumber('turn-ttl', turnTtl) }) }
  } else if (turnUrls !== undefined || turnTtl !== undefined) {
    throw new UsageError('--turn-urls and --turn-ttl need --turn-secret (or TURN_SECRET)')
  }
  const logLevel = text('log-level') ?? 'info'
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  if (flags['exit-with-parent'] === true && flags['no-exit-with-parent'] === true) {
    throw new UsageError('--exit-with-parent and --no-exit-with-parent contradict each other')
  }
  const exitEnv = env('exit-with-parent')
  // npm and npx run the CLI through `sh -c` and do not pass their SIGTERM on: follow them by default.
  const exitWithParent = flags['exit-with-parent'] === true ||
    (flags['no-exit-with-parent'] !== true && (exitEnv === undefined ? environment.npm_command !== undefined : toBoolean('EXIT_WITH_PARENT', exitEnv)))
  return { help: flags.help === true, logLevel, exitWithParent, options: options as SignalingServerOptions }
}

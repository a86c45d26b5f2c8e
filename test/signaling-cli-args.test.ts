import { describe, expect, it } from 'vitest'
import { ENV_NAMES, USAGE, UsageError, envName, parseCommandLine } from '../signaling/cli-args.js'

describe('command line', () => {
  it('names each environment variable after its flag, and lists both in the usage', () => {
    expect(envName('max-connections-per-address')).toBe('MAX_CONNECTIONS_PER_ADDRESS')
    for (const name of ['PORT', 'HOST', 'AUTH_SECRET', 'REDIS_URL', 'REDIS_PREFIX', 'LOG_LEVEL', 'ALLOWED_ORIGINS', 'TRUST_PROXY', 'METRICS_TOKEN', 'METRICS_PORT', 'EXIT_WITH_PARENT']) {
      expect(ENV_NAMES).toContain(name)
    }
    for (const name of ENV_NAMES) expect(USAGE).toContain(`[${name}`)
    for (const name of ENV_NAMES) expect(USAGE).toContain(`--${name.toLowerCase().replaceAll('_', '-')}`)
  })

  it('reads flags and variables, a flag winning, an empty variable counting as unset', () => {
    const { options } = parseCommandLine(['--port', '0', '--allowed-origins', 'https://a.example, https://b.example'], {
      PORT: '9999',
      HOST: '',
      MAX_CONNECTIONS_PER_ADDRESS: '3',
      METRICS_TOKEN: 'secret-of-sixteen-bytes',
      PROXY_HEADER: 'forwarded'
    })
    expect(options).toEqual({
      port: 0,
      allowedOrigins: ['https://a.example', 'https://b.example'],
      maxConnectionsPerAddress: 3,
      metricsToken: 'secret-of-sixteen-bytes',
      proxyHeader: 'forwarded'
    })
  })

  it('reads --trust-proxy as a hop count or a list', () => {
    expect(parseCommandLine(['--trust-proxy', '2'], {}).options.trustProxy).toBe(2)
    expect(parseCommandLine(['--trust-proxy', '10.0.0.0/8, 127.0.0.1'], {}).options.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1'])
    expect(parseCommandLine([], { TRUST_PROXY: '1' }).options.trustProxy).toBe(1)
  })

  it('reads --issuer-key as a JWK in JSON or a JWKS URL', () => {
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: 'abc' }
    expect(parseCommandLine(['--issuer-key', JSON.stringify(jwk)], {}).options.issuerKey).toEqual(jwk)
    expect(parseCommandLine([], { ISSUER_KEY: ` ${JSON.stringify(jwk)}\n` }).options.issuerKey).toEqual(jwk)
    expect(parseCommandLine([], { ISSUER_KEY: 'https://app.example.com/jwks.json' }).options.issuerKey).toEqual({ jwksUrl: 'https://app.example.com/jwks.json' })
    expect(() => parseCommandLine(['--issuer-key', '{not json'], {})).toThrow(UsageError)
    expect(() => parseCommandLine(['--issuer-key', 'issuer.jwk'], {})).toThrow(UsageError)
  })

  it.each([
    [['--dev-tokens'], {}, true],
    [[], { DEV_TOKENS: '1' }, true],
    [[], { DEV_TOKENS: '0' }, false],
    [[], {}, undefined]
  ])('reads --dev-tokens %j with %j as %s', (argv, env, expected) => {
    expect(parseCommandLine(argv, env).options.devTokens).toBe(expected)
  })

  it.each([
    [[], {}, false],
    [[], { npm_command: 'exec' }, true],
    [['--no-exit-with-parent'], { npm_command: 'exec' }, false],
    [['--exit-with-parent'], {}, true],
    [[], { EXIT_WITH_PARENT: '1' }, true],
    [[], { EXIT_WITH_PARENT: '0', npm_command: 'exec' }, false],
    [['--exit-with-parent'], { EXIT_WITH_PARENT: '0' }, true]
  ])('follows the parent for %j with %j: %s', (argv, env, expected) => {
    expect(parseCommandLine(argv, env).exitWithParent).toBe(expected)
  })

  it.each([
    [['--port', 'abc'], {}],
    [['--exit-with-parent', '--no-exit-with-parent'], {}],
    [[], { EXIT_WITH_PARENT: 'maybe' }],
    [[], { MAX_PAYLOAD: 'big' }],
    [[], { DEV_TOKENS: 'maybe' }],
    [['--log-level', 'loud'], {}]
  ])('refuses %j with %j as a usage error', (argv, env) => {
    expect(() => parseCommandLine(argv, env)).toThrow(UsageError)
  })
})

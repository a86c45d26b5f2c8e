#!/usr/bin/env node
/**
 * `y-session-store-signaling`: a thin shell around `createSignalingServer`. Flags and env in
 * (cli-args.ts), one line with the URL on stdout, pino logs on stderr, graceful shutdown on
 * SIGINT/SIGTERM, and on the death of the parent process when asked to (or when run by npm/npx).
 */

import { pino } from 'pino'
import { USAGE, UsageError, parseCommandLine, type CommandLine } from './cli-args.js'
import { createSignalingServer } from './server.js'

/** How often the parent is checked for. */
const PARENT_POLL_INTERVAL = 1_000

/**
 * Calls `onGone` once the parent process has died. npx runs the CLI as `sh -c ...` and a SIGTERM to
 * npx ends npx and the shell but not the server, which lives on as an orphan; an orphan is adopted
 * by another process, so its `ppid` changes. There is no portable event for it: a poll, on a timer
 * that does not keep the process alive.
 */
const watchParent = (onGone: (ppid: number) => void): void => {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    onGone(parent)
  }, PARENT_POLL_INTERVAL)
  timer.unref()
}

const main = async (): Promise<void> => {
  let args: CommandLine
  try {
    args = parseCommandLine(process.argv.slice(2), process.env)
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof TypeError)) throw err
    process.stderr.write(`${err.message}\n\n${USAGE}`)
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
  const stop = (why: object): void => {
    if (stopping) {
      logger.warn(why, 'second signal: exiting without waiting')
      process.exit(1)
    }
    stopping = true
    logger.info(why, 'shutting down')
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      }
    )
  }
  process.on('SIGINT', (signal) => stop({ signal }))
  process.on('SIGTERM', (signal) => stop({ signal }))
  if (args.exitWithParent) watchParent((parent) => stop({ parent, reason: 'the parent process exited' }))
}

await main()

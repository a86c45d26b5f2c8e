/**
 * A child process whose output is kept, for tests that read what a program printed. The process
 * is killed when the test that started it ends (registered with onTestFinished).
 */
import { spawn, type ChildProcessWithoutNullStreams, type SpawnOptionsWithoutStdio } from 'node:child_process'
import { onTestFinished } from 'vitest'

export interface Captured {
  child: ChildProcessWithoutNullStreams
  /** Everything it printed to stdout, and to stderr, so far. */
  stdout: () => string
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Spawns `command` with `args`, keeping its output. */
export const spawnCaptured = (command: string, args: string[], options: SpawnOptionsWithoutStdio = {}): Captured => {
  const child = spawn(command, args, options)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

/**
 * Every contender runs in processes of its own (y-webrtc allows one provider per room per
 * JavaScript realm, and a benchmark must not share an event loop between the sides it compares).
 * The orchestrator drives them over IPC: `spawn` forks a child and `call`s its commands; the
 * child side `serve`s a table of commands and `emit`s events. Every call has a timeout, and
 * every child is killed, by its pid, when the run ends however it ends.
 */

import { fork, spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'
import { buildSync } from 'esbuild'
import { withTimeout } from './clock.js'

export type Commands = Record<string, (args: any) => unknown>
type ArgsOf<F> = F extends (args: infer A) => unknown ? A : never
type ResultOf<F> = F extends (...args: any[]) => infer R ? Awaited<R> : never

interface Request { id: number, cmd: string, args: unknown }
interface Reply { id: number, ok: boolean, result?: unknown, error?: string }
interface Event { event: string, payload: unknown }

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Where `plain` children's TypeScript is bundled to (ignored by git). */
const BUILD_DIR = 'bench/.build/'

/** Bundled files by source, each built once per run. */
const bundled = new Map<string, string>()

/**
 * `file` (relative to the repository) as a JavaScript file node can run: a `.ts` file is bundled
 * with esbuild into `bench/.build/`, its packages left to node (so `y-session-store/signaling`
 * is still the built package); any other file is itself.
 */
const asJavaScript = (file: string): string => {
  const source = file.replace(/^\.\//, '')
  if (!source.endsWith('.ts')) return file
  let out = bundled.get(source)
  if (out === undefined) {
    out = `${BUILD_DIR}${source.replace(/^bench\//, '').replace(/\.ts$/, '.mjs')}`
    buildSync({ entryPoints: [`${REPO_ROOT}${source}`], outfile: `${REPO_ROOT}${out}`, bundle: true, platform: 'node', format: 'esm', packages: 'external', target: 'node20', logLevel: 'warning' })
    bundled.set(source, out)
  }
  return `./${out}`
}

/** Children still running; `killAll` ends them (and only them). */
const running = new Set<ChildProcess>()

export const killAll = (): void => {
  for (const child of running) child.kill('SIGKILL')
}

/** The first line of `text` that names an error, or ''. */
const errorLine = (text: string): string => text.split('\n').find((line) => /^\w*(Error|Exception)\b/.test(line)) ?? ''

/**
 * Runs `script` (TypeScript, under tsx) with `args` until it exits and returns what it wrote to
 * stdout: for children that take their job on the command line and print one result, with no IPC
 * (bench/history-room.ts's child mode). Its stderr is passed on. It is killed, by its pid, after
 * `timeout` ms, and by `killAll` when the run ends first.
 */
export const runToEnd = async (name: string, script: string, args: string[], { execArgv = [], timeout }: { execArgv?: string[], timeout: number }): Promise<string> => {
  const child = spawn(process.execPath, ['--import', 'tsx', ...execArgv, script, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const out: Buffer[] = []
  let stderrTail = ''
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk)
    stderrTail = (stderrTail + chunk.toString()).slice(-4096)
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, timeout)
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code, signal) => resolve([code, signal]))
    })
    if (timedOut) throw new Error(`${name}: killed after ${timeout / 1000} s`)
    if (code !== 0) throw new Error(`${name} exited (${String(code ?? signal)})${errorLine(stderrTail) === '' ? '' : `: ${errorLine(stderrTail)}`}`)
    return Buffer.concat(out).toString()
  } finally {
    clearTimeout(timer)
    running.delete(child)
  }
}

export interface SpawnOptions {
  /** Arguments after the script. */
  args?: string[]
  /** Node flags; `--import tsx` is added so children can be TypeScript (unless `plain`). */
  execArgv?: string[]
  /**
   * Run under plain node, as a program's users run it: the script and any `.ts` file among
   * `execArgv` are bundled to JavaScript first, and tsx is not loaded. For servers whose memory is
   * measured: under tsx (its loader runs on a thread of its own) a server's RSS grew about 1 KB
   * less per idle connection than under plain node. Default false.
   */
  plain?: boolean
  env?: Record<string, string>
  /** The event that says the child is up; its payload is `Child.hello`. Default 'ready'. */
  readyEvent?: string
  /** Milliseconds to wait for it. Default 30000. */
  readyTimeout?: number
  /** Show the child's stdout (stderr is always shown). Default false. */
  stdout?: boolean
}

/** What @roamhq/wrtc prints for every ICE candidate it skips: not worth a line each. */
const NOISE = /^Ignoring unsupported ICE candidate\.$/

export class Child<C extends Commands> extends EventEmitter {
  hello: any = null
  readonly exited: Promise<number | string>
  #nextId = 0
  /** The end of what the child wrote to stderr (passed on to ours): why it died, if it did. */
  #stderrTail = ''
  /** Set when the child has exited: its code or signal, and the error it printed, if any. */
  #exitReason: string | null = null
  readonly #pending = new Map<number, { resolve: (value: any) => void, reject: (err: Error) => void }>()

  private constructor (readonly name: string, readonly process: ChildProcess) {
    super()
    running.add(process)
    // A send on a channel that closed meanwhile; the call that made it has already failed.
    process.on('error', () => {})
    process.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString().split('\n').filter((line) => !NOISE.test(line)).join('\n')
      if (text.trim() !== '') globalThis.process.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
      this.#stderrTail = (this.#stderrTail + text).slice(-4096)
    })
    process.on('message', (message: Reply | Event) => {
      if ('id' in message) {
        const waiter = this.#pending.get(message.id)
        this.#pending.delete(message.id)
        if (message.ok) waiter?.resolve(message.result)
        else waiter?.reject(new Error(`${name}: ${message.error ?? 'failed'}`))
      } else {
        this.emit(message.event, message.payload)
      }
    })
    this.exited = new Promise((resolve) => process.once('exit', (code, signal) => {
      running.delete(process)
      const printed = errorLine(this.#stderrTail)
      this.#exitReason = `exited (${String(code ?? signal)})${printed === '' ? '' : `: ${printed}`}`
      for (const waiter of this.#pending.values()) waiter.reject(new Error(`${name} ${this.#exitReason}`))
      this.#pending.clear()
      resolve(code ?? signal ?? 'unknown')
    }))
  }

  get pid (): number {
    return this.process.pid as number
  }

  static async spawn<C extends Commands>(name: string, script: string, options: SpawnOptions = {}): Promise<Child<C>> {
    const plain = options.plain === true
    const process = fork(plain ? asJavaScript(script) : script, options.args ?? [], {
      cwd: REPO_ROOT,
      execArgv: plain ? (options.execArgv ?? []).map(asJavaScript) : ['--import', 'tsx', ...(options.execArgv ?? [])],
      env: { ...globalThis.process.env, ...options.env },
      serialization: 'advanced',
      stdio: ['ignore', options.stdout === true ? 'inherit' : 'ignore', 'pipe', 'ipc']
    })
    const child = new Child<C>(name, process)
    const readyEvent = options.readyEvent ?? 'ready'
    const ready = new Promise((resolve, reject) => {
      child.once(readyEvent, resolve)
      void child.exited.then((code) => reject(new Error(`${name} exited (${String(code)}) before '${readyEvent}'`)))
    })
    try {
      child.hello = await withTimeout(ready, options.readyTimeout ?? 30_000, `${name} start`)
    } catch (err) {
      child.kill()
      throw err
    }
    return child
  }

  call<K extends keyof C & string>(cmd: K, args: ArgsOf<C[K]>, timeout = 60_000): Promise<ResultOf<C[K]>> {
    if (!this.process.connected) return Promise.reject(new Error(`${this.name} ${this.#exitReason ?? 'is gone'}`))
    const id = this.#nextId++
    const result = new Promise<ResultOf<C[K]>>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.process.send({ id, cmd, args } satisfies Request)
    })
    return withTimeout(result, timeout, `${this.name}.${cmd}`)
  }

  /** Sends a command without waiting for (or tolerating the absence of) an answer. */
  tell<K extends keyof C & string>(cmd: K, args: ArgsOf<C[K]>): void {
    if (this.process.connected) this.process.send({ id: -1, cmd, args } satisfies Request)
  }

  async kill (): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill('SIGKILL')
    await this.exited
  }
}

/** Child side: a message to the orchestrator. */
export const emit = (event: string, payload: unknown = null): void => {
  if (process.connected) process.send?.({ event, payload } satisfies Event)
}

/** Child side: answers the orchestrator's calls from `commands`; exits when the orchestrator goes. */
export const serve = (commands: Commands, { announce = true }: { announce?: boolean } = {}): void => {
  process.on('message', (message: Request) => {
    if (typeof message !== 'object' || message === null || typeof message.cmd !== 'string') return
    const command = commands[message.cmd]
    const reply = (body: Omit<Reply, 'id'>): void => {
      if (message.id >= 0 && process.connected) process.send?.({ id: message.id, ...body } satisfies Reply)
    }
    if (command === undefined) {
      reply({ ok: false, error: `unknown command '${message.cmd}'` })
      return
    }
    Promise.resolve()
      .then(() => command(message.args))
      .then((result) => reply({ ok: true, result: result ?? null }), (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }))
  })
  process.on('disconnect', () => process.exit(0))
  if (announce) emit('ready', { pid: process.pid })
}

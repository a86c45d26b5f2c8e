/** What the kernel says about a process (resident memory and CPU time, from /proc), and where it runs. */

import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'

/** VmRSS of `pid` in bytes, from /proc/PID/status. */
export const rssBytes = (pid: number): number => {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1]) * 1024
}

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on every Linux build that matters). */
const TICKS_PER_SECOND = 100

/** User + system CPU milliseconds in a /proc stat line (a process's or a thread's). */
const statCpuMs = (stat: string): number => {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
}

/** User + system CPU milliseconds `pid` has used, from /proc/PID/stat (10 ms resolution). */
export const cpuMs = (pid: number): number => statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'))

/** Whether `pin` can work here: two cores or more, and taskset present. */
export const canPin = (): boolean => {
  if (os.availableParallelism() < 2) return false
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Pins every thread of `pid` to CPU `cpu` (taskset), so that on a small machine a server and the
 * load generators driving it do not take each other's core. False if it could not be done.
 */
export const pin = (pid: number, cpu: number): boolean => {
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** CPU milliseconds of one process's threads, by kind. */
export interface ThreadCpu {
  /** The main thread: JavaScript, and the native calls it makes (a data channel's `send`). */
  main: number
  /**
   * Node's own helper threads, all named "node": V8's background compiler and garbage-collector
   * helpers, libuv's pool. In a ping-pong, nearly all of it is V8 compiling hot functions.
   */
  helpers: number
  /** Native threads of addons (libwebrtc's network, signaling and worker threads). */
  native: number
}

/**
 * CPU milliseconds so far of every thread of `pid`, by kind, from /proc/PID/task/TID/stat (10 ms
 * resolution). Read from outside the process, so reading it costs the process nothing.
 */
export const threadCpuMs = (pid: number): ThreadCpu => {
  const cpu: ThreadCpu = { main: 0, helpers: 0, native: 0 }
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return cpu
  }
  for (const tid of tasks) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue // the thread ended
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const ms = statCpuMs(stat)
    if (Number(tid) === pid) cpu.main += ms
    else if (name === 'node') cpu.helpers += ms
    else cpu.native += ms
  }
  return cpu
}

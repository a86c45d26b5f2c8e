/** The machine and moment a run describes: every result file carries it. */

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { REPO_ROOT } from './child.js'

export interface Machine {
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  platform: string
  /** 1, 5 and 15 minute load averages when the run started and when it ended. */
  loadBefore: number[]
  loadAfter: number[]
  openFilesLimit: number | null
}

export interface RunInfo {
  date: string
  mode: 'full' | 'quick'
  durationS: number
  commit: string | null
  versions: Record<string, string>
  machine: Machine
}

const version = (pkg: string): string => {
  try {
    return (JSON.parse(readFileSync(`${REPO_ROOT}node_modules/${pkg}/package.json`, 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export const packageVersions = (): Record<string, string> => ({
  'y-session-store': (JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as { version: string }).version,
  yjs: version('yjs'),
  'y-webrtc': version('y-webrtc'),
  'simple-peer': version('simple-peer'),
  '@roamhq/wrtc': version('@roamhq/wrtc'),
  ws: version('ws')
})

export const gitCommit = (): string | null => {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'signaling'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head} (src or signaling modified)` : head
  } catch {
    return null
  }
}

const openFilesLimit = (): number | null => {
  const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return match === null ? null : Number(match[1])
}

const round2 = (x: number): number => Math.round(x * 100) / 100

export const loadAverage = (): number[] => os.loadavg().map(round2)

export const describeMachine = (loadBefore: number[]): Machine => ({
  cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
  cores: os.availableParallelism(),
  memoryGiB: round2(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${os.platform()} ${os.release()}`,
  loadBefore,
  loadAfter: loadAverage(),
  openFilesLimit: openFilesLimit()
})

/**
 * The commands both signaling server processes answer, so the load scenario treats them alike:
 * a full garbage collection (the process runs with --expose-gc) before memory is read from /proc.
 */

import { getHeapSpaceStatistics } from 'node:v8'

export const memoryCommands = {
  gc () {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc === undefined) throw new Error('run with --expose-gc')
    gc()
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.physical_space_size ?? 0
    return { ...process.memoryUsage(), young }
  }
}

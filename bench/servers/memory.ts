/**
 * The commands both signaling server processes answer, so the load scenario treats them alike:
 * a full garbage collection (the process runs with --expose-gc) before memory is read from /proc.
 */

export const memoryCommands = {
  gc () {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc === undefined) throw new Error('run with --expose-gc')
    gc()
    return process.memoryUsage()
  }
}

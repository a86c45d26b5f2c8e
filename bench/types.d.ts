/** The slice of simple-peer the raw data-channel contender uses (the package ships no types). */
declare module 'simple-peer' {
  import type { Duplex } from 'node:stream'

  interface Options {
    initiator?: boolean
    wrtc?: unknown
    trickle?: boolean
  }

  export default class SimplePeer extends Duplex {
    constructor (options?: Options)
    signal (data: unknown): void
    send (data: Uint8Array | string): void
    destroy (): this
    on (event: 'signal', listener: (data: unknown) => void): this
    on (event: 'connect' | 'close', listener: () => void): this
    on (event: 'data', listener: (data: Buffer) => void): this
    on (event: 'error', listener: (err: Error) => void): this
    on (event: string | symbol, listener: (...args: any[]) => void): this
  }
}

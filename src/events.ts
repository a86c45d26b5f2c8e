/**
 * Events whose listeners cannot break each other (Yjs rethrows observer errors; we do not):
 * lib0's ObservableV2 with an emit that calls every listener, and reports what one throws to
 * `onListenerError` instead of propagating it into the code that emitted.
 */

import { ObservableV2 } from 'lib0/observable'

export class IsolatedObservable<Events extends { [E in keyof Events]: (payload: any) => void }> extends ObservableV2<Events> {
  /** Calls each listener of `name` with `payload`; a listener that throws is reported, never propagated. */
  protected emitIsolated<E extends keyof Events & string>(name: E, payload: Parameters<Events[E]>[0], onListenerError: (err: unknown) => void): void {
    for (const listener of Array.from(this._observers.get(name) ?? [])) {
      try {
        listener(payload)
      } catch (err) {
        try {
          onListenerError(err)
        } catch {}
      }
    }
  }
}

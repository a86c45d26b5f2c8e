/**
 * `y-session-store/react`: React bindings. A `SessionProvider` holds a room's session for the
 * components below it, and hooks read the store, the peers and the status through
 * `useSyncExternalStore`, so a component re-renders only when what it reads changes:
 * `useSessionValue('pinned')` ignores writes to every other key.
 *
 * The provider joins on mount and leaves on unmount. y-webrtc allows one session per room name per
 * JavaScript realm and `leave()` resolves only once the room can be joined again, so:
 * - providers of one room share one session (counted holds), and a release waits a microtask
 *   before leaving: React's strict mode unmounts and remounts in one go, and takes it back;
 * - a provider mounted while the room is still being left waits for that, then joins.
 *
 * React is an optional peer dependency of the package; only this entry imports it. No JSX, so the
 * library builds without a JSX transform.
 */

import { createContext, createElement, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore, type ReactNode } from 'react'
import type { SessionStoreError } from './errors.js'
import type { Json } from './store/json.js'
import { joinRoom as isomorphicJoinRoom, type JoinOptions, type Peer, type Session, type SessionStatus } from './session.js'
import type { SessionStore } from './store/store.js'

export interface SessionProviderProps {
  /** The room to join. Changing it leaves the old room and joins the new one. */
  room: string
  /** Options of `joinRoom`, read when joining (change `room`, or the provider's `key`, to rejoin). Default `{}`. */
  options?: JoinOptions | undefined
  /** How to join: `joinRoom` of `y-session-store` (the default) or of `y-session-store/node`. Pass a stable function: a new one rejoins. */
  join?: ((room: string, options: JoinOptions) => Session) | undefined
  /** Called with the session's `error` events. Default none. */
  onError?: ((error: SessionStoreError) => void) | undefined
  children?: ReactNode | undefined
}

interface SessionContextValue {
  session: Session | null
  store: SessionStore | null
}

const SessionContext = createContext<SessionContextValue>({ session: null, store: null })

interface Hold {
  session: Session
  holders: number
}

/** Sessions held by providers, by room. */
const holds = new Map<string, Hold>()
/** Rooms whose session is being left, until it can be joined again. */
const leaving = new Map<string, Promise<void>>()

const acquire = (room: string, create: () => Session): Session => {
  const hold = holds.get(room)
  if (hold !== undefined) {
    hold.holders++
    return hold.session
  }
  const session = create()
  holds.set(room, { session, holders: 1 })
  return session
}

const release = (room: string, session: Session): void => {
  const hold = holds.get(room)
  if (hold === undefined || hold.session !== session) return
  hold.holders--
  queueMicrotask(() => {
    if (hold.holders > 0 || holds.get(room) !== hold) return
    holds.delete(room)
    const left = session.leave()
    leaving.set(room, left)
    const forget = (): void => { if (leaving.get(room) === left) leaving.delete(room) }
    left.then(forget, forget)
  })
}

/** Joins `room` for the components below it, and leaves it when unmounted. */
export const SessionProvider = ({ room, options = {}, join = isomorphicJoinRoom, onError, children }: SessionProviderProps): ReactNode => {
  const [session, setSession] = useState<Session | null>(null)
  const [store, setStore] = useState<SessionStore | null>(null)
  const latest = useRef({ options, onError })
  latest.current = { options, onError }

  useEffect(() => {
    let active = true
    let held: Session | null = null
    const take = (): void => {
      if (!active) return
      held = acquire(room, () => join(room, latest.current.options))
      setSession(held)
    }
    const pending = leaving.get(room)
    if (pending === undefined) take()
    else pending.then(take, take)
    return () => {
      active = false
      if (held !== null) release(room, held)
      setSession(null)
    }
  }, [room, join])

  useEffect(() => {
    setStore(null)
    if (session === null) return
    const onStore = (available: SessionStore): void => { if (!available.closed) setStore(available) }
    const onSessionError = (error: SessionStoreError): void => latest.current.onError?.(error)
    session.on('sessionStoreAvailable', onStore)
    session.on('error', onSessionError)
    return () => {
      session.off('sessionStoreAvailable', onStore)
      session.off('error', onSessionError)
    }
  }, [session])

  const value = useMemo(() => ({ session, store }), [session, store])
  return createElement(SessionContext.Provider, { value }, children)
}

/**
 * A getter that returns the previous result while `encode` of the new one is unchanged:
 * `useSyncExternalStore` needs the same reference for the same state, and the library's reads
 * return fresh copies.
 */
const stable = <T>(read: () => T, encode: (value: T) => string | undefined = (value) => JSON.stringify(value)): () => T => {
  let cached: { value: T, text: string | undefined } | null = null
  return () => {
    const value = read()
    const text = encode(value)
    if (cached === null || cached.text !== text) cached = { value, text }
    return cached.value
  }
}

const noSubscription = (): (() => void) => () => {}

/** The session of the nearest provider: null until it has joined, and after it left. */
export const useSession = (): Session | null => useContext(SessionContext).session

/** The session store, once available (null before, and after leaving). */
export const useSessionStore = (): SessionStore | null => useContext(SessionContext).store

/** The value of `key` (undefined when absent or not yet available); re-renders only when it changes. */
export const useSessionValue = (key: string): Json | undefined => {
  const store = useSessionStore()
  const source = useMemo(() => ({
    subscribe: store === null
      ? noSubscription
      : (onChange: () => void) => {
          const observer = store.observeChanges([key], onChange)
          return () => { store.removeObserver(observer) }
        },
    read: stable(() => store === null || store.closed ? undefined : store.get(key))
  }), [store, key])
  return useSyncExternalStore(source.subscribe, source.read, source.read)
}

/** A session event as external state: re-reads on `event`, stable while unchanged. */
const useSessionState = <T>(event: 'peers' | 'status', read: (session: Session) => T, empty: T): T => {
  const session = useSession()
  const source = useMemo(() => ({
    subscribe: session === null
      ? noSubscription
      : (onChange: () => void) => {
          session.on(event, onChange)
          return () => { session.off(event, onChange) }
        },
    read: stable(() => session === null ? empty : read(session))
  }), [session])
  return useSyncExternalStore(source.subscribe, source.read, source.read)
}

const NO_PEERS: Peer[] = []

/** The peers in the room, this one included (empty before joining); re-renders when they change. */
export const usePeers = (): Peer[] => useSessionState('peers', (session) => session.peers, NO_PEERS)

/** The session's status (null before joining); re-renders when it changes. */
export const useSessionStatus = (): SessionStatus | null => useSessionState('status', (session) => session.status, null)

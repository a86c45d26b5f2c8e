/**
 * The demo page: the product page's features over one room, in plain TypeScript.
 *
 * - Pinned message: the `pinned` key holds `{ text, by }`; every peer observes it.
 * - Spotlight: the `spotlight` key holds a peer id; the stage shows that peer's name (metadata).
 * - Raised hands: each person's own key `hand/<id>`; everyone sees the list.
 * - Poll: the `poll` key holds `{ question, options }` (the host sets it); each option's count is
 *   its own key, `poll/<option>`, and each "+1" is `store.update` (read-modify-write under the
 *   key's lock), so votes from every page at once are all counted. The page shows who holds an
 *   option's lock while an update runs, and LOCKED / LOCK_UNAVAILABLE when a vote fails.
 * - Live inspector: every key and value, a form to set and delete any key, usage against limits.
 *
 * Roles: when the server that served the page hands out dev tokens (`npm start` runs it with
 * `--dev-tokens`; signaling/dev-tokens.ts), the page joins a protected room (`auth`) with a token
 * from `POST /dev/token`: the first in a room is its host (every key), the others guests (their
 * own `hand/<user>`, and the poll's counts `poll/*`). The page shows the role, disables what it cannot write, and shows who wrote
 * the pinned message and the spotlight (`updatedBy.user`, verified by every peer). Without dev
 * tokens (`GET /dev/issuer` is a 404) the room is open: everyone may write every key.
 *
 * `/?room=NAME` joins room NAME; without it the page picks a name and puts it in the address bar
 * so the link can be shared. `&name=NAME` joins with that name. The signaling server is the one
 * that served the page.
 *
 * For tests and the console the page exposes `window.demo = { session, store }`: the Session that
 * `joinRoom` returned, and its SessionStore once available (undefined until then).
 *
 * Everything another peer wrote is shown with textContent, never parsed as HTML.
 */

import { joinRoom, SessionStoreError, type AuthOptions, type IssuerKey, type Json, type Peer, type Session, type SessionStatus, type SessionStore, type StoreEntry, type SyncState } from 'y-session-store'

declare global {
  interface Window {
    demo: { session: Session, store: SessionStore | undefined }
  }
}

const PINNED = 'pinned'
const SPOTLIGHT = 'spotlight'
const HAND_PREFIX = 'hand/'
const POLL = 'poll'
const VOTE_PREFIX = 'poll/'
const MAX_POLL_OPTIONS = 8
const MAX_OPTION_LENGTH = 60
const MAX_QUESTION_LENGTH = 200

const ADJECTIVES = ['Amber', 'Brave', 'Calm', 'Clever', 'Gentle', 'Happy', 'Lucky', 'Merry', 'Quiet', 'Sunny', 'Swift', 'Witty']
const ANIMALS = ['Badger', 'Crane', 'Dolphin', 'Fox', 'Heron', 'Koala', 'Lynx', 'Otter', 'Panda', 'Robin', 'Seal', 'Wren']

const SYNC_LABELS: Record<SyncState, string> = {
  pending: 'joining…',
  alone: 'available (you opened the room)',
  synced: 'available (synced from a peer)',
  'peers-left': 'available (the others left)',
  timeout: 'available (peers did not answer)'
}

const element = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`the page has no #${id}`)
  return found as T
}

const pick = (words: readonly string[]): string =>
  words[crypto.getRandomValues(new Uint32Array(1))[0]! % words.length]!

const friendlyName = (): string => `${pick(ADJECTIVES)} ${pick(ANIMALS)}`

const roomFromAddress = (): string => {
  const url = new URL(location.href)
  const given = url.searchParams.get('room')?.trim()
  if (given !== undefined && given !== '') return given
  const room = `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${crypto.getRandomValues(new Uint16Array(1))[0]! % 10_000}`.toLowerCase()
  url.searchParams.set('room', room)
  history.replaceState(null, '', url)
  return room
}

const signalingUrl = (): string => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`

/** `&name=` of the address, else a friendly random name. */
const nameFromAddress = (): string => {
  const given = new URL(location.href).searchParams.get('name')?.trim().slice(0, 40)
  return given !== undefined && given !== '' ? given : friendlyName()
}

/** The dev issuer's public key, or null when the server hands out no dev tokens (an open room). */
const devIssuer = async (): Promise<IssuerKey | null> => {
  try {
    const answer = await fetch('/dev/issuer', { cache: 'no-store' })
    if (!answer.ok) return null
    const { keys } = await answer.json() as { keys?: IssuerKey[] }
    return keys?.[0] ?? null
  } catch {
    return null
  }
}

/**
 * Who this tab is to the dev token endpoint across reloads (a reload makes a new session key):
 * random, kept in sessionStorage, so another tab or window is another person.
 */
const devClient = (): string => {
  const fresh = (): string => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18)))).replaceAll('+', '-').replaceAll('/', '_')
  try {
    const kept = sessionStorage.getItem('y-session-store-demo:client')
    if (kept !== null && /^[A-Za-z0-9_-]{24}$/.test(kept)) return kept
    const client = fresh()
    sessionStorage.setItem('y-session-store-demo:client', client)
    return client
  } catch {
    return fresh()
  }
}

/** A room token from the dev endpoint, for this session's key. */
const devToken = (room: string, name: () => string): AuthOptions['token'] => {
  const client = devClient()
  return async (peerKey) => {
    const answer = await fetch('/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ room, peerKey, name: name(), client })
    })
    const body = await answer.json() as { token?: string, error?: string }
    if (!answer.ok || typeof body.token !== 'string') throw new Error(`the dev token endpoint answered ${answer.status}: ${body.error ?? 'no token'}`)
    return body.token
  }
}

/** The name in a peer's or writer's metadata, if it has one. */
const nameInMetadata = (metadata: Json | undefined): string | undefined =>
  metadata !== null && typeof metadata === 'object' && !Array.isArray(metadata) && typeof metadata.name === 'string' && metadata.name.trim() !== '' ? metadata.name.trim() : undefined

const nameOf = (peer: Peer | undefined): string => nameInMetadata(peer?.metadata) ?? 'Anonymous'

const initials = (name: string): string =>
  name.split(/\s+/).filter(Boolean).slice(0, 2).map((word) => word[0]?.toUpperCase() ?? '').join('')

/** A stable, calm hue per peer so a person is recognisable across windows. */
const hueOf = (id: string): number => {
  let hash = 0
  for (const char of id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return hash % 360
}

/** Who wrote an entry: the verified user in a protected room, else the name the writer gave. */
const writerOf = (entry: StoreEntry | undefined): { name: string, verified: boolean } | undefined => {
  if (entry === undefined) return undefined
  const { user, metadata } = entry.updatedBy
  if (user !== undefined) return { name: user, verified: true }
  const name = nameInMetadata(metadata)
  return name === undefined ? undefined : { name, verified: false }
}

/** `prefix` and the writer's name, with a "verified" badge when the room checked it. */
const paintWriter = (el: HTMLElement, prefix: string, writer: { name: string, verified: boolean } | undefined): void => {
  if (writer === undefined) {
    el.replaceChildren()
    return
  }
  const parts: Array<string | Node> = [`${prefix} ${writer.name}`]
  if (writer.verified) {
    const badge = document.createElement('span')
    badge.className = 'badge'
    badge.title = 'The token of the peer who wrote it names this user; every peer checked its signature.'
    badge.textContent = 'verified'
    parts.push(' ', badge)
  }
  el.replaceChildren(...parts)
}

const paintAvatar = (avatar: HTMLElement, peer: Peer | undefined, name: string): void => {
  avatar.textContent = peer === undefined ? '' : initials(name)
  avatar.style.setProperty('--hue', peer === undefined ? '210' : String(hueOf(peer.id)))
}

const formatBytes = (bytes: number): string =>
  bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`

const describeError = (err: unknown): string =>
  err instanceof SessionStoreError ? `${err.code}: ${err.message}` : String(err)

/** The value field takes JSON; anything that does not parse is taken as a plain string. */
const parseValue = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

const room = roomFromAddress()
let myName = nameFromAddress()
const issuer = await devIssuer()
const session = joinRoom(room, {
  signaling: [signalingUrl()],
  metadata: { name: myName },
  ...(issuer === null ? {} : { auth: { issuer, token: devToken(room, () => myName) } })
})
window.demo = { session, store: undefined }

let store: SessionStore | undefined
let spotlightId: string | undefined
/** An UNAUTHORIZED error arrived before any permissions: this peer is read-only. */
let tokenRefused = false

/** Whether this peer may write `key` now (false until the store is available). */
const writable = (key: string): boolean => {
  if (store === undefined || store.closed) return false
  try {
    return store.canWrite(key)
  } catch {
    // Not a valid key: let the write say why.
    return true
  }
}

/** This peer's raised-hand key: `hand/<user>` in a protected room, `hand/<peer id>` in an open one. */
const myHandKey = (): string | undefined => {
  if (issuer !== null) return session.permissions === null ? undefined : `${HAND_PREFIX}${session.permissions.user}`
  const me = session.peers.find((peer) => peer.local)
  return me === undefined ? undefined : `${HAND_PREFIX}${me.id}`
}

/** Enables what this peer may write, and says why the rest is off. */
const renderControls = (): void => {
  const available = store !== undefined && !store.closed
  const mayPin = writable(PINNED)
  for (const control of Array.from(element<HTMLFormElement>('pin-form').elements)) (control as HTMLInputElement).disabled = !mayPin
  element<HTMLButtonElement>('unpin').disabled = !mayPin
  element('pin-hint').textContent = available && !mayPin ? 'Only the host can pin a message.' : ''
  const maySpotlight = writable(SPOTLIGHT)
  element<HTMLButtonElement>('clear-spotlight').disabled = !maySpotlight
  for (const button of Array.from(document.querySelectorAll<HTMLButtonElement>('#people button'))) {
    button.disabled = !maySpotlight
    button.title = available && !maySpotlight ? 'Only the host can change the spotlight.' : ''
  }
  element('stage-hint-role').textContent = available && !maySpotlight ? 'Only the host can bring someone to the stage.' : ''

  for (const control of Array.from(element<HTMLFormElement>('entry-form').elements)) (control as HTMLInputElement).disabled = !available
  const key = element<HTMLInputElement>('entry-key').value
  const mayWriteEntry = available && (key === '' || writable(key))
  for (const id of ['entry-set', 'entry-delete']) element<HTMLButtonElement>(id).disabled = !mayWriteEntry
  element('entry-hint').textContent = available && !mayWriteEntry ? `You may not write ${key}.` : ''

  const mayPoll = writable(POLL)
  for (const control of Array.from(element<HTMLFormElement>('poll-form').elements)) (control as HTMLInputElement).disabled = !mayPoll
  element('poll-hint').textContent = available && !mayPoll ? 'Only the host can start a poll.' : ''

  const hand = myHandKey()
  const raise = element<HTMLButtonElement>('raise-hand')
  const raised = hand !== undefined && store !== undefined && !store.closed && store.has(hand)
  raise.disabled = hand === undefined || !writable(hand)
  raise.textContent = raised ? 'Lower hand' : 'Raise hand'
  raise.className = raised ? 'quiet' : 'primary'
  raise.setAttribute('aria-pressed', String(raised))
}

/** The role, the user and the keys it may write, as the verified token says. */
const renderRole = (): void => {
  const box = element('role')
  const badge = element('role-badge')
  const user = element('role-user')
  const write = element('role-write')
  const permissions = session.permissions
  if (issuer === null) {
    box.dataset.role = 'open'
    badge.textContent = 'Open room'
    user.textContent = ''
    write.textContent = 'no dev tokens on this server: everyone may write every key'
  } else if (permissions === null) {
    box.dataset.role = tokenRefused ? 'read-only' : 'pending'
    badge.textContent = tokenRefused ? 'Read-only' : 'Getting a token…'
    user.textContent = ''
    write.textContent = tokenRefused ? 'no valid token: nothing you write counts' : ''
  } else {
    const host = permissions.write.includes('*')
    box.dataset.role = host ? 'host' : 'guest'
    badge.textContent = host ? 'Host' : 'Guest'
    user.textContent = permissions.user
    write.replaceChildren(...(host
      ? ['may write every key']
      : permissions.write.length === 0
        ? ['may write nothing (read-only)']
        : ['may write ', ...permissions.write.flatMap((pattern, i) => {
            const code = document.createElement('code')
            code.textContent = pattern
            return i === 0 ? [code] : [', ', code]
          })]))
  }
}

/** Runs a store write and shows its error (code and message) in `errorEl`; true when it succeeded. */
const attempt = async (errorEl: HTMLElement, write: (store: SessionStore) => Promise<unknown>): Promise<boolean> => {
  errorEl.textContent = ''
  if (store === undefined) {
    errorEl.textContent = 'The store is not available yet.'
    return false
  }
  try {
    await write(store)
    return true
  } catch (err) {
    errorEl.textContent = describeError(err)
    return false
  }
}

// Room and link

const roomLink = element<HTMLAnchorElement>('room-link')
roomLink.textContent = room
roomLink.href = location.href

element('copy-link').addEventListener('click', () => {
  const result = element('copy-result')
  // The clipboard API exists only on secure origins (https, localhost).
  Promise.resolve().then(async () => { await navigator.clipboard.writeText(location.href) }).then(
    () => { result.textContent = 'Copied' },
    () => { result.textContent = 'Copy the address from the address bar' }
  )
})

// Connection status

const renderStatus = (status: SessionStatus): void => {
  element('status-signaling').textContent = status.left ? 'left' : status.signaling ? 'connected' : 'disconnected'
  element('dot-signaling').dataset.state = status.signaling ? 'ok' : 'off'
  element('status-webrtc').textContent = String(status.webrtcPeers)
  element('dot-webrtc').dataset.state = status.webrtcPeers > 0 ? 'ok' : 'idle'
  element('status-store').textContent = status.left ? 'left' : SYNC_LABELS[status.sync]
  element('dot-store').dataset.state = status.available && !status.left ? (status.sync === 'timeout' ? 'warn' : 'ok') : 'off'
}
renderStatus(session.status)
session.on('status', renderStatus)

const notice = element('notice')
session.on('error', (err) => {
  notice.textContent = describeError(err)
  notice.hidden = false
  if (err.code === 'UNAUTHORIZED' && session.permissions === null) {
    tokenRefused = true
    renderRole()
  }
})

// People and the spotlight

const peopleList = element<HTMLUListElement>('people')

let spotlightEntry: StoreEntry | undefined

const renderStage = (): void => {
  const peer = session.peers.find((p) => p.id === spotlightId)
  paintWriter(element('stage-by'), 'Set by', spotlightId === undefined ? undefined : writerOf(spotlightEntry))
  const stage = element('stage')
  const name = element('stage-name')
  const hint = element('stage-hint')
  stage.dataset.empty = String(spotlightId === undefined)
  element('clear-spotlight').hidden = spotlightId === undefined
  if (spotlightId === undefined) {
    name.textContent = 'Nobody in the spotlight'
    hint.textContent = 'Pick someone from the list of people.'
  } else if (peer === undefined) {
    name.textContent = 'Someone who left'
    hint.textContent = 'The spotlit peer is no longer in the room.'
  } else {
    name.textContent = nameOf(peer)
    hint.textContent = peer.local ? 'You are in the spotlight, for everyone.' : 'In the spotlight, for everyone.'
  }
  paintAvatar(element('stage-avatar'), peer, nameOf(peer))
}

const renderPeers = (): void => {
  const peers = session.peers.sort((a, b) => Number(b.local) - Number(a.local) || nameOf(a).localeCompare(nameOf(b)))
  element('people-count').textContent = String(peers.length)
  const items = peers.map((peer) => {
    const name = nameOf(peer)
    const item = document.createElement('li')
    const avatar = document.createElement('span')
    avatar.className = 'avatar'
    avatar.setAttribute('aria-hidden', 'true')
    paintAvatar(avatar, peer, name)
    const label = document.createElement('span')
    label.className = 'person'
    label.textContent = name
    if (peer.local) {
      const you = document.createElement('span')
      you.className = 'muted small'
      you.textContent = ' (you)'
      label.append(you)
    }
    if (peer.id === spotlightId) {
      const badge = document.createElement('span')
      badge.className = 'badge'
      badge.textContent = 'On stage'
      label.append(' ', badge)
    }
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'quiet small'
    button.textContent = 'Spotlight'
    button.setAttribute('aria-label', `Spotlight ${name}`)
    button.setAttribute('aria-pressed', String(peer.id === spotlightId))
    button.addEventListener('click', () => {
      void attempt(element('people-error'), async (s) => peer.id === spotlightId ? await s.delete(SPOTLIGHT) : await s.set(SPOTLIGHT, peer.id))
    })
    item.append(avatar, label, button)
    return item
  })
  peopleList.replaceChildren(...items)
  renderStage()
  renderControls()
}
renderPeers()
session.on('peers', renderPeers)

element('clear-spotlight').addEventListener('click', () => {
  void attempt(element('stage-error'), async (s) => await s.delete(SPOTLIGHT))
})

const nameInput = element<HTMLInputElement>('name-input')
nameInput.value = myName
const saveName = (): void => {
  const name = nameInput.value.trim()
  const error = element('people-error')
  error.textContent = ''
  if (name === '' || name === myName) return
  try {
    session.setMetadata({ name })
    myName = name
  } catch (err) {
    error.textContent = describeError(err)
  }
}
element('name-form').addEventListener('submit', (event) => {
  event.preventDefault()
  saveName()
})
nameInput.addEventListener('change', saveName)

// Pinned message

const renderPinned = (value: Json | undefined, entry: StoreEntry | undefined): void => {
  const text = typeof value === 'string'
    ? value
    : value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.text === 'string' ? value.text : undefined
  const by = value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.by === 'string' ? value.by : undefined
  element('pinned').dataset.empty = String(value === undefined)
  element('unpin').hidden = value === undefined
  element('pinned-text').textContent = text ?? (value === undefined ? 'Nothing pinned yet.' : JSON.stringify(value))
  // In a protected room the verified user, not the `by` the writer typed into the value.
  const writer = writerOf(entry)
  paintWriter(element('pinned-by'), 'Pinned by', writer?.verified === true ? writer : by === undefined ? undefined : { name: by, verified: false })
}
renderPinned(undefined, undefined)

element('pin-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = element<HTMLInputElement>('pin-input')
  const text = input.value.trim()
  if (text === '') return
  void attempt(element('pin-error'), async (s) => await s.set(PINNED, { text, by: myName })).then((ok) => {
    if (ok) input.value = ''
  })
})
element('unpin').addEventListener('click', () => {
  void attempt(element('pin-error'), async (s) => await s.delete(PINNED))
})

// Raised hands

const renderHands = (): void => {
  if (store === undefined || store.closed) return
  const mine = myHandKey()
  const hands = store.keys()
    .filter((key) => key.startsWith(HAND_PREFIX))
    .map((key) => ({ key, entry: store?.entry(key) }))
    .sort((a, b) => (a.entry?.updatedAt ?? 0) - (b.entry?.updatedAt ?? 0))
  const items = hands.map(({ key, entry }) => {
    const writer = writerOf(entry)
    const name = writer?.name ?? key.slice(HAND_PREFIX.length)
    const item = document.createElement('li')
    const avatar = document.createElement('span')
    avatar.className = 'avatar'
    avatar.setAttribute('aria-hidden', 'true')
    avatar.textContent = initials(name)
    avatar.style.setProperty('--hue', String(hueOf(entry?.updatedBy.id ?? name)))
    const label = document.createElement('span')
    label.className = 'person'
    label.textContent = name
    if (key === mine) {
      const you = document.createElement('span')
      you.className = 'muted small'
      you.textContent = ' (you)'
      label.append(you)
    }
    item.append(avatar, label)
    if (key !== mine && writable(key)) {
      const lower = document.createElement('button')
      lower.type = 'button'
      lower.className = 'quiet small'
      lower.textContent = 'Lower'
      lower.setAttribute('aria-label', `Lower the hand of ${name}`)
      lower.addEventListener('click', () => {
        void attempt(element('hands-error'), async (s) => await s.delete(key))
      })
      item.append(lower)
    }
    return item
  })
  element('hands').replaceChildren(...items)
  element('hands-empty').hidden = items.length > 0
  element('hands-count').textContent = String(items.length)
  renderControls()
}

element('raise-hand').addEventListener('click', () => {
  const key = myHandKey()
  if (key === undefined) return
  void attempt(element('hands-error'), async (s) => s.has(key) ? await s.delete(key) : await s.set(key, true))
})

// Poll

interface Poll { question: string, options: string[] }

/** The `poll` key as a poll, or undefined; another peer wrote it, so anything else is ignored. */
const readPoll = (value: Json | undefined): Poll | undefined => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const { question, options } = value
  if (typeof question !== 'string' || !Array.isArray(options)) return undefined
  const clean = cleanOptions(options.filter((option): option is string => typeof option === 'string'))
  return clean.length === 0 ? undefined : { question: question.slice(0, MAX_QUESTION_LENGTH), options: clean }
}

/** Trimmed, non-empty, each once, at most MAX_POLL_OPTIONS of at most MAX_OPTION_LENGTH. */
const cleanOptions = (options: readonly string[]): string[] =>
  [...new Set(options.map((option) => option.trim().slice(0, MAX_OPTION_LENGTH).trim()).filter((option) => option !== ''))].slice(0, MAX_POLL_OPTIONS)

const voteKey = (option: string): string => `${VOTE_PREFIX}${option}`

/** A count as stored: anything but a non-negative safe integer counts as 0. */
const countOf = (value: Json | undefined): number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : 0

/** One more vote: the function `store.update` runs under the option's lock. */
const plusOne = (current: Json | undefined): number => countOf(current) + 1

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** Per vote key, this page's +1s that have not finished yet. */
const pendingVotes = new Map<string, number>()

interface OptionRow { count: HTMLElement, state: HTMLElement, bar: HTMLElement, button: HTMLButtonElement }

/** The rows of the options shown, kept across renders so that a click never lands on a replaced button. */
const optionRows = new Map<string, OptionRow>()
let shownOptions = ''

const pollError = element('poll-error')

/** Why a vote failed, with what to do about it. */
const describeVoteError = (option: string, err: unknown): string => {
  const why = err instanceof SessionStoreError && err.code === 'LOCK_UNAVAILABLE'
    ? ' A signaling server grants no locks for a while after it starts (its --lock-grace), or none answered.'
    : err instanceof SessionStoreError && err.code === 'LOCKED'
      ? ' Another peer held the lock for longer than the vote waits.'
      : ''
  return `Your +1 for ${option} was not counted: ${describeError(err)}${why}`
}

const vote = (option: string): void => {
  if (store === undefined || store.closed) return
  const key = voteKey(option)
  pollError.textContent = ''
  pendingVotes.set(key, (pendingVotes.get(key) ?? 0) + 1)
  renderPoll()
  store.update(key, plusOne).catch((err: unknown) => {
    pollError.textContent = describeVoteError(option, err)
  }).finally(() => {
    const left = (pendingVotes.get(key) ?? 1) - 1
    if (left > 0) pendingVotes.set(key, left)
    else pendingVotes.delete(key)
    renderPoll()
  })
}

const makeOptionRow = (option: string): HTMLLIElement => {
  const item = document.createElement('li')
  const label = document.createElement('span')
  label.className = 'option-label'
  label.textContent = option
  const count = document.createElement('strong')
  count.className = 'option-count'
  const state = document.createElement('span')
  state.className = 'muted small option-state'
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'primary small'
  button.textContent = '+1'
  button.setAttribute('aria-label', `+1 for ${option}`)
  button.addEventListener('click', () => { vote(option) })
  const bar = document.createElement('div')
  bar.className = 'bar option-bar'
  bar.setAttribute('aria-hidden', 'true')
  bar.append(document.createElement('span'))
  item.append(label, count, state, button, bar)
  optionRows.set(option, { count, state, bar, button })
  return item
}

/** Who holds `key`'s lock now, as this page says it, or undefined. */
const lockHolderName = (key: string): string | undefined => {
  const holder = store === undefined || store.closed ? null : store.lockHolder(key)
  return holder === null ? undefined : holder.local ? 'you' : nameOf(holder)
}

const renderPoll = (): void => {
  if (store === undefined || store.closed) return
  const poll = readPoll(store.get(POLL))
  const question = element('poll-question')
  question.dataset.empty = String(poll === undefined)
  question.textContent = poll === undefined ? 'No poll yet.' : poll.question === '' ? 'Untitled poll' : poll.question
  const options = poll?.options ?? []
  if (JSON.stringify(options) !== shownOptions) {
    shownOptions = JSON.stringify(options)
    optionRows.clear()
    element('poll-options').replaceChildren(...options.map(makeOptionRow))
  }
  const counts = options.map((option) => countOf(store?.get(voteKey(option))))
  const total = counts.reduce((sum, n) => sum + n, 0)
  element('poll-total').textContent = String(total)
  options.forEach((option, i) => {
    const row = optionRows.get(option)
    if (row === undefined) return
    const key = voteKey(option)
    const votes = counts[i] ?? 0
    row.count.textContent = plural(votes, 'vote')
    row.bar.style.setProperty('--fill', `${total === 0 ? 0 : (votes / total) * 100}%`)
    const holder = lockHolderName(key)
    const pending = pendingVotes.get(key) ?? 0
    row.state.textContent = [
      ...(holder === undefined ? [] : [`locked by ${holder}`]),
      ...(pending === 0 ? [] : [`${plural(pending, 'vote')} of yours pending`])
    ].join(' · ')
    const mayVote = writable(key)
    row.button.disabled = !mayVote
    row.button.title = mayVote ? '' : 'You may not vote in this room.'
  })
}

element('poll-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const questionInput = element<HTMLInputElement>('poll-question-input')
  const optionsInput = element<HTMLInputElement>('poll-options-input')
  const question = questionInput.value.trim().slice(0, MAX_QUESTION_LENGTH)
  const options = cleanOptions(optionsInput.value.split(','))
  if (options.length < 2) {
    pollError.textContent = `A poll needs 2 to ${MAX_POLL_OPTIONS} different options, separated by commas.`
    return
  }
  void attempt(pollError, async (s) => {
    // A new poll starts from zero. Each old count is deleted under its lock, as a vote writes
    // it, so a vote that is under way is never lost into the reset nor half undone by it.
    await Promise.all(s.keys().filter((key) => key.startsWith(VOTE_PREFIX)).map(async (key) => await s.update(key, () => undefined)))
    await s.set(POLL, { question, options })
  }).then((ok) => {
    if (ok) {
      questionInput.value = ''
      optionsInput.value = ''
    }
  })
})

session.on('lock', ({ key }) => {
  if (key.startsWith(VOTE_PREFIX)) queueRender()
})

// Live inspector

const renderEntries = (): void => {
  if (store === undefined || store.closed) return
  const json = store.toJSON()
  const keys = Object.keys(json).sort()
  const rows = keys.map((key) => {
    const row = document.createElement('tr')
    const keyCell = document.createElement('th')
    keyCell.scope = 'row'
    keyCell.textContent = key
    const valueCell = document.createElement('td')
    const code = document.createElement('code')
    code.textContent = JSON.stringify(json[key])
    valueCell.append(code)
    const actions = document.createElement('td')
    const edit = document.createElement('button')
    edit.type = 'button'
    edit.className = 'quiet small'
    edit.textContent = 'Edit'
    edit.setAttribute('aria-label', `Edit ${key}`)
    edit.addEventListener('click', () => {
      element<HTMLInputElement>('entry-key').value = key
      element<HTMLTextAreaElement>('entry-value').value = JSON.stringify(json[key], null, 2)
      element<HTMLTextAreaElement>('entry-value').focus()
      renderControls()
    })
    actions.append(edit)
    row.append(keyCell, valueCell, actions)
    return row
  })
  element('entries-body').replaceChildren(...rows)
  element('entries').hidden = keys.length === 0
  element('entries-empty').hidden = keys.length > 0
  element('entries-empty').textContent = 'The store is empty.'

  const { keys: keyCount, bytes, limits } = store.usage()
  renderBar('usage-keys', keyCount, limits.maxKeys, `${keyCount} of ${limits.maxKeys}`)
  renderBar('usage-bytes', bytes, limits.maxTotalBytes, `${formatBytes(bytes)} of ${formatBytes(limits.maxTotalBytes)}`)
}

const renderBar = (id: string, value: number, max: number, text: string): void => {
  const bar = element(id)
  bar.setAttribute('aria-valuenow', String(value))
  bar.setAttribute('aria-valuemax', String(max))
  bar.setAttribute('aria-valuetext', text)
  bar.style.setProperty('--fill', `${Math.min(100, (value / max) * 100)}%`)
  bar.dataset.level = value / max >= 0.9 ? 'high' : value / max >= 0.6 ? 'mid' : 'low'
  element(`${id}-text`).textContent = text
}

/** Coalesces the renders of one burst of transactions (a sync brings many at once). */
let renderQueued = false
const queueRender = (): void => {
  if (renderQueued) return
  renderQueued = true
  queueMicrotask(() => {
    renderQueued = false
    renderEntries()
    renderHands()
    renderPoll()
  })
}

const entryResult = element('entry-result')
const entryError = element('entry-error')

element('entry-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const key = element<HTMLInputElement>('entry-key').value
  const value = parseValue(element<HTMLTextAreaElement>('entry-value').value)
  entryResult.textContent = ''
  void attempt(entryError, async (s) => await s.set(key, value)).then((ok) => {
    if (ok) entryResult.textContent = `Set ${key}.`
  })
})

element('entry-key').addEventListener('input', renderControls)

element('entry-delete').addEventListener('click', () => {
  const key = element<HTMLInputElement>('entry-key').value
  entryResult.textContent = ''
  void attempt(entryError, async (s) => await s.delete(key)).then((ok) => {
    if (ok) entryResult.textContent = `Deleted ${key}.`
  })
})

// Roles

renderRole()
session.on('permissions', () => {
  tokenRefused = false
  renderRole()
  renderControls()
  renderHands()
  renderPoll()
})

// The store

renderControls()
session.on('sessionStoreAvailable', (available) => {
  store = available
  window.demo.store = available
  available.observeChanges([PINNED, SPOTLIGHT], (key, value, entry) => {
    if (key === PINNED) renderPinned(value, entry)
    else {
      spotlightId = typeof value === 'string' ? value : undefined
      spotlightEntry = entry
      renderPeers()
    }
  })
  // The inspector and the hands show every key: one render per burst of changes.
  available.observeAllChanges(queueRender)
  renderEntries()
  renderHands()
  renderPoll()
  renderControls()
})

/**
 * The demo page: the product page's three features over one room, in plain TypeScript.
 *
 * - Pinned message: the `pinned` key holds `{ text, by }`; every peer observes it.
 * - Spotlight: the `spotlight` key holds a peer id; the stage shows that peer's name (metadata).
 * - Live inspector: every key and value, a form to set and delete any key, usage against limits.
 *
 * `/?room=NAME` joins room NAME; without it the page picks a name and puts it in the address bar
 * so the link can be shared. The signaling server is the one that served the page.
 *
 * For tests and the console the page exposes `window.demo = { session, store }`: the Session that
 * `joinRoom` returned, and its SessionStore once available (undefined until then).
 *
 * Everything another peer wrote is shown with textContent, never parsed as HTML.
 */

import { joinRoom, SessionStoreError, type Json, type Peer, type Session, type SessionStatus, type SessionStore, type SyncState } from 'y-session-store'

declare global {
  interface Window {
    demo: { session: Session, store: SessionStore | undefined }
  }
}

const PINNED = 'pinned'
const SPOTLIGHT = 'spotlight'

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

const nameOf = (peer: Peer | undefined): string => {
  const metadata = peer?.metadata
  if (metadata !== null && typeof metadata === 'object' && !Array.isArray(metadata) && typeof metadata.name === 'string' && metadata.name.trim() !== '') {
    return metadata.name.trim()
  }
  return 'Anonymous'
}

const initials = (name: string): string =>
  name.split(/\s+/).filter(Boolean).slice(0, 2).map((word) => word[0]?.toUpperCase() ?? '').join('')

/** A stable, calm hue per peer so a person is recognisable across windows. */
const hueOf = (id: string): number => {
  let hash = 0
  for (const char of id) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return hash % 360
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
let myName = friendlyName()
const session = joinRoom(room, { signaling: [signalingUrl()], metadata: { name: myName } })
window.demo = { session, store: undefined }

let store: SessionStore | undefined
let spotlightId: string | undefined

const forms = [element<HTMLFormElement>('pin-form'), element<HTMLFormElement>('entry-form')]
const storeButtons = [element<HTMLButtonElement>('unpin'), element<HTMLButtonElement>('clear-spotlight'), element<HTMLButtonElement>('entry-delete')]

const setStoreControlsEnabled = (enabled: boolean): void => {
  for (const form of forms) {
    for (const control of Array.from(form.elements)) (control as HTMLInputElement).disabled = !enabled
  }
  for (const button of storeButtons) button.disabled = !enabled
  for (const button of Array.from(document.querySelectorAll<HTMLButtonElement>('#people button'))) button.disabled = !enabled
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
})

// People and the spotlight

const peopleList = element<HTMLUListElement>('people')

const renderStage = (): void => {
  const peer = session.peers.find((p) => p.id === spotlightId)
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
    button.disabled = store === undefined
    button.addEventListener('click', () => {
      void attempt(element('people-error'), async (s) => peer.id === spotlightId ? await s.delete(SPOTLIGHT) : await s.set(SPOTLIGHT, peer.id))
    })
    item.append(avatar, label, button)
    return item
  })
  peopleList.replaceChildren(...items)
  renderStage()
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

const renderPinned = (value: Json | undefined): void => {
  const text = typeof value === 'string'
    ? value
    : value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.text === 'string' ? value.text : undefined
  const by = value !== null && typeof value === 'object' && !Array.isArray(value) && typeof value.by === 'string' ? value.by : undefined
  element('pinned').dataset.empty = String(value === undefined)
  element('unpin').hidden = value === undefined
  element('pinned-text').textContent = text ?? (value === undefined ? 'Nothing pinned yet.' : JSON.stringify(value))
  element('pinned-by').textContent = by === undefined ? '' : `Pinned by ${by}`
}
renderPinned(undefined)

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

element('entry-delete').addEventListener('click', () => {
  const key = element<HTMLInputElement>('entry-key').value
  entryResult.textContent = ''
  void attempt(entryError, async (s) => await s.delete(key)).then((ok) => {
    if (ok) entryResult.textContent = `Deleted ${key}.`
  })
})

// The store

setStoreControlsEnabled(false)
session.on('sessionStoreAvailable', (available) => {
  store = available
  window.demo.store = available
  setStoreControlsEnabled(true)
  available.observeChanges([PINNED, SPOTLIGHT], (key, value) => {
    if (key === PINNED) renderPinned(value)
    else {
      spotlightId = typeof value === 'string' ? value : undefined
      renderPeers()
    }
  })
  // The inspector shows every key: one render per burst of changes.
  available.observeAllChanges(queueRender)
  renderEntries()
})

// React, in a page (bundled with the app): npm i y-session-store yjs react react-dom
import { createElement as h } from 'react'
import { createRoot } from 'react-dom/client'
import { SessionProvider, useSessionStore, useSessionValue, usePeers, useSessionStatus } from 'y-session-store/react'

const Pinned = () => {
  const pinned = useSessionValue('pinned')   // re-renders for 'pinned' only; undefined until available
  const store = useSessionStore()             // null until the store is available
  return h('button', { disabled: store === null, onClick: () => store?.set('pinned', { text: 'Retro at 4pm' }) },
    pinned?.text ?? 'Pin the retro')
}
const People = () => h('p', null, `${usePeers().length} here, ${useSessionStatus()?.webrtcPeers ?? 0} connected`)

const App = () => h(SessionProvider, { room: 'standup-42', options: { signaling: ['ws://localhost:4444'] } },
  h(Pinned), h(People))

createRoot(document.body.appendChild(document.createElement('div'))).render(h(App))

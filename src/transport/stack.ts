/**
 * The transport stack of one room, assembled in one place: the link (y-webrtc by default, or the
 * runtime's), the connection handshake over it, and the replication of the document with its
 * message hooks, in the order they must run: who speaks for whom in awareness, then admission
 * control (which judges who speaks for whom in an update in the same pass over its structs as
 * its bounds: a relay's early copy of a connected peer's writes is left out of them, and
 * stripped), then the reply budgets.
 */

import type * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import { SessionStoreError, ErrorCodes } from '../errors.js'
import type { Limits } from '../store/limits.js'
import type { Identity } from '../trust/identity.js'
import { admissionControl, maxMessageBytes } from './admission.js'
import { AuthenticatedLink, type VerifiedConnection } from './authenticated-link.js'
import { replyBudgets } from './budgets.js'
import type { WrtcImplementation } from './framed-wrtc.js'
import { impersonationRules, updateClaims } from './impersonation.js'
import type { EpochView } from './epoch-link.js'
import type { Link, LinkFactory, LinkOptions } from './link.js'
import { Replication } from './replication.js'
import { browserWrtc, yWebrtcLink } from './y-webrtc-adapter.js'

export interface StackOptions extends Omit<LinkOptions, 'identity' | 'maxMessageBytes'> {
  room: string
  identity: Promise<Identity>
  /** This peer's Yjs client id, the same in every epoch's document (the handshake binds it). */
  clientId: number
  awareness: Awareness
  /** The root map the store lives in: the only root type updates may touch. */
  root: string
  limits: Limits
  /** The link factory to use instead of y-webrtc's (tests: the memory link). */
  link?: LinkFactory | undefined
  /** The WebRTC implementation for y-webrtc's link, when no `link` is given. */
  wrtc?: WrtcImplementation | undefined
  /** Counts what the hooks drop, by reason. */
  onDrop: (reason: string) => void
}

export interface Stack {
  link: AuthenticatedLink
  /** The replication of one epoch's document over that epoch's view of the link (epoch-link.ts), with its hooks. */
  replicate: (doc: Y.Doc, view: EpochView) => Replication
}

/** Builds the stack; throws INVALID_OPTION when there is no WebRTC implementation to use. */
export const createStack = ({ room, identity, clientId, awareness, root, limits, link, wrtc, onDrop, ...linkOptions }: StackOptions): Stack => {
  let factory = link
  if (factory === undefined) {
    const implementation = (linkOptions.peerOpts.wrtc as WrtcImplementation | undefined) ?? wrtc ?? browserWrtc()
    if (implementation === undefined) throw new SessionStoreError(ErrorCodes.INVALID_OPTION, 'no WebRTC implementation: pass peerOpts.wrtc, or use y-session-store/node in Node')
    factory = yWebrtcLink(implementation)
  }
  const authenticated = new AuthenticatedLink(factory(room, { ...linkOptions, identity, maxMessageBytes: maxMessageBytes(limits) }), { room, identity, clientId: () => clientId })
  const replicate = (doc: Y.Doc, view: EpochView): Replication => {
    // Who is bound to a client, as this epoch's view sees it: a peer not in the epoch delivers none of its structs.
    const speakers = { doc, connectionOfClient: (client: number) => view.viewOf(authenticated.connectionOfClient(client)) as VerifiedConnection | undefined, onDrop }
    const replication: Replication = new Replication(doc, awareness, view as unknown as Link, {
      hooks: [
        impersonationRules(speakers),
        admissionControl({ doc, root, limits, onStalePending: () => replication.resync(), claims: (connection) => updateClaims(connection, speakers), onDrop }),
        replyBudgets(onDrop)
      ],
      maxBatchUnits: 2 * limits.maxKeys,
      // One bridge for the room (epochs.ts), not one per epoch.
      bridge: false
    })
    return replication
  }
  return { link: authenticated, replicate }
}

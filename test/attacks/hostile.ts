/**
 * The hostile-peer corpus: one row per thing a peer can send that no honest peer would, with
 * the refusal an honest peer must record. test/hostile-peers.test.ts runs every row over real
 * WebRTC against two honest peers in their own processes, and checks the guarantees of each:
 * the visible store unchanged and within the limits, the honest peer's heap growth under
 * 64 MiB, honest writes arriving within 1 s during the attack, the hostile connection closed
 * with its reason, and a late joiner getting the honest state. Adding a case is adding a row
 * here and, when it needs new bytes, an attack in test/fixtures/hostile-peer.mjs.
 */

export interface HostileCase {
  name: string
  /** The attack of test/fixtures/hostile-peer.mjs to run against the victim. */
  attack: string
  /** What the victim records (`session.stats().dropped`); null when it is not a refusal. */
  refusal: RegExp | null
}

export const HOSTILE_CASES: HostileCase[] = [
  { name: 'one update with 200,000 small valid entries (7 MB)', attack: 'manyEntries', refusal: /more than 400 entries in one update/ },
  { name: 'a 60 MiB framed junk message', attack: 'hugeFramed', refusal: /framed message over/ },
  { name: 'malformed frames', attack: 'malformedFrames', refusal: /malformed frame/ },
  { name: '300,000 empty frames', attack: 'emptyFrames', refusal: /a frame of 0 bytes/ },
  // Refused at the peer's next ordinary message (awareness renews every 15 s), or after 30 s.
  { name: 'a framed message that never ends', attack: 'unfinishedFramed', refusal: /not finished within|whole message inside a framed message/ },
  { name: 'undecodable Yjs binary', attack: 'undecodable', refusal: /undecodable Yjs binary/ },
  { name: 'an update with a missing dependency, then 10,000 more', attack: 'missingDependency', refusal: /dependencies are missing|missing dependencies/ },
  { name: '100 MiB of awareness states in 1 MiB pieces', attack: 'awarenessFlood', refusal: /awareness state over/ },
  { name: '20,000 valid small updates per second for 10 s', attack: 'updateFlood', refusal: /messages at a rate over/ },
  { name: 'entries for other root types', attack: 'otherRoot', refusal: /another root type/ },
  { name: 'non-string values written straight into the document', attack: 'nonStringValues', refusal: null }
]

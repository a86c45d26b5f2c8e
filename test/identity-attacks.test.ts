/**
 * Peer identity and an honest join, attacked: every row of test/attacks/identity.ts over real
 * WebRTC, honest peers in their own processes, each attacker as its row describes.
 */
import { describe, it } from 'vitest'
import { IDENTITY_ATTACKS } from './attacks/identity.js'
import { startSignaling, uniqueRoom } from './helpers/server.js'

describe('identity attacks: honest peers keep their guarantees', () => {
  for (const attack of IDENTITY_ATTACKS) {
    it(attack.name, { timeout: 90_000 }, async () => {
      const server = await startSignaling()
      await attack.run({ server, room: uniqueRoom('attack') })
    })
  }
})

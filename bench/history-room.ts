/**
 * `npm run bench:history` (`-- --quick`: to 10^5): issue 15's live room of 3 peers on its own,
 * the same scenario as `npm run bench -- --only rooms` (bench/scenarios/rooms.ts says what it
 * measures), writing bench/results/history-room.md and .json.
 *
 * `history-room.ts child <contender> <checkpoints>` measures one contender's room in this process
 * and prints its points as JSON: what the scenario runs, in a fresh process per contender.
 */

import { writeFileSync } from 'node:fs'
import { killAll } from './lib/child.js'
import { roomsTable } from './lib/report.js'
import { measureRoom, runRooms, type RoomContender } from './scenarios/rooms.js'

const [, , mode, contender, checkpoints] = process.argv
if (mode === 'child') {
  const points = await measureRoom(contender as RoomContender, (checkpoints as string).split(',').map(Number))
  process.stdout.write(JSON.stringify(points))
  process.exit(0)
} else {
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130))
  const result = await runRooms({ quick: process.argv.includes('--quick'), log: (message) => process.stderr.write(`${message}\n`) })
  const table = roomsTable(result)
  process.stdout.write(table)
  writeFileSync(new URL('./results/history-room.md', import.meta.url), `# A live room of 3 peers, overwrites taken in turns (bench/history-room.ts)\n\n${table}`)
  writeFileSync(new URL('./results/history-room.json', import.meta.url), JSON.stringify(result, null, 2))
}

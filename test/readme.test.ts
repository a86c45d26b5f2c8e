/**
 * The README cannot drift from the code: each block marked `<!-- example: examples/NAME -->` is
 * that file, character for character (test/examples.test.ts runs the files), every file in
 * examples/ is shown, and every public member and event of Session and SessionStore is mentioned.
 */
import { readFileSync, readdirSync } from 'node:fs'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const READMES = ['README.md', 'signaling/README.md']
const MARKED = /<!-- example: (examples\/[^ ]+) -->\n```[a-z]*\n([\s\S]*?)```\n/g

/** The marked blocks of every README: which file each shows, and its text. */
const markedBlocks = (): Array<{ readme: string, file: string, text: string }> =>
  READMES.flatMap((readme) => [...readFileSync(readme, 'utf8').matchAll(MARKED)].map(([, file, text]) => ({ readme, file: file as string, text: text as string })))

/** The public members of `className` declared in `path` (not inherited), and the members of `eventsInterface`. */
const publicApi = (path: string, className: string, eventsInterface?: string): { members: string[], events: string[] } => {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest)
  const members = new Set<string>()
  const events: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node) && node.name?.text === className) {
      for (const member of node.members) {
        const hidden = ts.getModifiers(member as ts.HasModifiers)?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword) ?? false
        if (member.name !== undefined && ts.isIdentifier(member.name) && !hidden) members.add(member.name.text)
      }
    }
    if (ts.isInterfaceDeclaration(node) && node.name.text === eventsInterface) {
      for (const member of node.members) if (member.name !== undefined && ts.isIdentifier(member.name)) events.push(member.name.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return { members: [...members], events }
}

describe('README', () => {
  it('shows every file of examples/, each exactly as the file holds it', () => {
    const blocks = markedBlocks()
    expect(blocks.map((block) => block.file).sort()).toEqual(readdirSync('examples').map((name) => `examples/${name}`).sort())
    for (const { readme, file, text } of blocks) expect(text, `${readme}: the block marked ${file}`).toBe(readFileSync(file, 'utf8'))
  })

  it('mentions every public member and event of Session and SessionStore', () => {
    const readme = readFileSync('README.md', 'utf8')
    const session = publicApi('src/session.ts', 'Session', 'SessionEvents')
    const store = publicApi('src/store/store.ts', 'SessionStore')
    expect(session.members).toEqual(expect.arrayContaining(['on', 'leave', 'stats', 'connections']))
    expect(store.members).toEqual(expect.arrayContaining(['set', 'has', 'observeChanges']))
    expect(session.events).toEqual(expect.arrayContaining(['sessionStoreAvailable', 'error']))
    // `off` is lib0's, inherited, and the one way to remove a listener.
    const members = [...session.members, ...store.members, 'off']
    expect(members.filter((name) => !new RegExp(`\\.${name}\\b`).test(readme))).toEqual([])
    expect(session.events.filter((name) => !readme.includes(`'${name}'`))).toEqual([])
  })
})

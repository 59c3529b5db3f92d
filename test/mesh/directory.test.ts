/**
 * Directory sync: a node that joins late, connected only to the bootstrap node, learns the
 * records of agents on nodes it has never talked to from that peer's directory, without a
 * DHT lookup.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode, type MeshNodeImpl } from '../../src/index.ts'

describe('directory sync', { timeout: 60_000 }, () => {
  const nodes: MeshNodeImpl[] = []
  const dirs: string[] = []
  const start = async (bootstrap: string[]): Promise<MeshNodeImpl> => {
    const dir = mkdtempSync(join(tmpdir(), 'fedmesh-dir-'))
    dirs.push(dir)
    const n = await createNode({ dir, listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap, network: 'dirnet' })
    nodes.push(n)
    return n
  }
  after(async () => {
    await Promise.allSettled(nodes.map(n => n.stop()))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('a late node learns agents of nodes it never met from its first peer', async () => {
    const a = await start([])
    const b = await start([a.multiaddrs()[0]])
    const alice = await b.agent('alice')
    // a hears about alice through b's announcement.
    for (let i = 0; i < 100 && a.router.knownAgent(alice.id) == null; i++) {
      await b.router.announceAll()
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.ok(a.router.knownAgent(alice.id) != null, 'a knows alice')
    // b goes away, so nothing announces alice again: only a's directory holds her record.
    await b.stop()
    const late = await start([a.multiaddrs()[0]])
    for (let i = 0; i < 100 && late.router.knownAgent(alice.id) == null; i++) await new Promise(resolve => setTimeout(resolve, 50))
    const rec = late.router.knownAgent(alice.id)
    assert.ok(rec != null, 'learnt from the directory of its first peer')
    assert.equal(rec.home[0].id, b.peerId)
  })
})

/**
 * Directory sync: a node that joins late, connected only to the bootstrap node, learns the
 * records of agents on nodes it has never talked to from that peer's directory, without a
 * DHT lookup.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MeshNodeImpl } from '../../src/index.ts'
import { Nodes } from '../helpers/api.ts'

describe('directory sync', { timeout: 60_000 }, () => {
  const nodes = new Nodes()
  const start = async (bootstrap: string[]): Promise<MeshNodeImpl> => await nodes.start({ bootstrap, network: 'dirnet' })
  after(async () => { await nodes.stopAll() })

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
    for (let i = 0; i < 400 && late.router.knownAgent(alice.id) == null; i++) await new Promise(resolve => setTimeout(resolve, 50))
    const rec = late.router.knownAgent(alice.id)
    assert.ok(rec != null, 'learnt from the directory of its first peer')
    assert.equal(rec.home[0].id, b.peerId)
  })
})

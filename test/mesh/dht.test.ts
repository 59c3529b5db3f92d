/**
 * Agent records in the Kad-DHT: a node that never saw the gossip announcement finds the
 * record by a DHT lookup alone, and the DHT refuses records that are not validly signed.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateAgentKey, type MeshNodeImpl } from '../../src/index.ts'
import { Nodes } from '../helpers/api.ts'
import { agentRecordKey, decodeAgentRecord, encodeAgentRecord } from '../../src/net/records.ts'

describe('agent records in the DHT', { timeout: 60_000 }, () => {
  const nodes = new Nodes()
  const start = async (bootstrap: string[]): Promise<MeshNodeImpl> => await nodes.start({ bootstrap, network: 'dhtnet' })
  after(async () => { await nodes.stopAll() })

  it('any node finds a record by DHT lookup, and forged records are refused', async () => {
    const a = await start([])
    const b = await start([a.multiaddrs()[0]])
    const c = await start([a.multiaddrs()[0]])
    const alice = await b.agent('alice')
    const key = agentRecordKey('dhtnet', alice.id)
    let bytes: Uint8Array | undefined
    for (let i = 0; i < 100 && bytes == null; i++) {
      await b.router.publishAgentRecord(alice.id)
      bytes = await c.net.contentRouting.get(key, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
      if (bytes == null) await new Promise(resolve => setTimeout(resolve, 200))
    }
    assert.ok(bytes != null, 'record found through the DHT')
    const rec = decodeAgentRecord(bytes)
    assert.equal(rec.agent, alice.id)
    assert.equal(rec.home[0].id, b.peerId)
    assert.ok(rec.home[0].addrs.length > 0)

    // A record for alice signed by someone else does not pass the DHT validator.
    const mallory = generateAgentKey()
    const { sig: _sig, ...fields } = rec
    const forged = encodeAgentRecord({ ...fields, home: [{ id: c.peerId, addrs: [] }], seq: rec.seq + 1 }, mallory.sign(new Uint8Array(8)))
    assert.throws(() => decodeAgentRecord(forged), /bad signature/)
    // Whether or not the put reports failure, no node may store or serve the forgery.
    await c.net.contentRouting.put(key, forged, { signal: AbortSignal.timeout(5000) }).catch(() => {})
    for (const n of [a, b, c]) {
      const again = decodeAgentRecord(await n.net.contentRouting.get(key, { signal: AbortSignal.timeout(5000) }))
      assert.equal(again.home[0].id, b.peerId, 'the genuine record still wins')
    }
  })
})

/**
 * Who may pull: a `pull` makes a storage node hand the copies it holds for an agent to the
 * node that asks, so it is served only to a node the agent's newest signed record names as
 * its home (the record the storage node knows, or a newer one the pull carries).
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { NetworkId } from '../../src/core/ids.ts'
import { generateAgentKey, type AgentKey } from '../../src/core/keys.ts'
import { agentRecordSigningInput, encodeAgentRecord, type AgentRecordFields } from '../../src/net/records.ts'
import { loadAgentKey } from '../../src/node/datadir.ts'
import { DurableClient, durableProtocol } from '../../src/delivery/wire.ts'
import { Nodes } from '../helpers/api.ts'

/** A record of `key`'s agent, signed by `signer` (the agent itself unless given). */
function signedRecord (key: AgentKey, fields: Omit<AgentRecordFields, 'v' | 'agent' | 'caps'>, signer: AgentKey = key): Uint8Array {
  const f: AgentRecordFields = { v: 1, agent: key.id, caps: [], ...fields }
  return encodeAgentRecord(f, signer.sign(agentRecordSigningInput(f)))
}

describe('pull from a node that is not the agent\'s home', () => {
  const nodes = new Nodes()
  let peer: Libp2p | undefined
  after(async () => { await peer?.stop(); await nodes.stopAll() })

  test('refused (UnauthorizedError) unless the agent\'s newest record names the asking node', async () => {
    const net = 'pullnet' as NetworkId
    const s1 = await nodes.start({ network: net, roles: ['full', 'storage'] })
    const home = await nodes.start({ network: net, bootstrap: [s1.multiaddrs()[0]] })
    const hana = await home.agent('hana')
    const key = await loadAgentKey(home.dir, 'hana', { create: false })
    assert.ok(key != null)
    const known = await s1.waitForAgent(hana.id)
    assert.equal(known.home[0].id, home.peerId)

    peer = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const me = peer.peerId.toString()
    const client = new DurableClient(await peer.dialProtocol(multiaddr(s1.multiaddrs()[0]), durableProtocol(net)))
    const pull = async (rec?: Uint8Array): Promise<{ ok: boolean, code?: string }> => {
      const res = await client.request({ op: 'pull', to: hana.id, ...(rec != null ? { rec } : {}) }, { timeoutMs: 10_000 })
      return { ok: res.ok, ...(res.ok ? {} : { code: res.code }) }
    }
    const exp = Date.now() + 3_600_000

    // No record, or the agent's own current one (it names the home, not us).
    assert.deepEqual(await pull(), { ok: false, code: 'UnauthorizedError' })
    assert.deepEqual(await pull(signedRecord(key, { net, home: [{ id: home.peerId, addrs: [] }], seq: known.seq, exp })), { ok: false, code: 'UnauthorizedError' })
    // A record naming us, signed by the agent, but older than the one s1 knows.
    assert.deepEqual(await pull(signedRecord(key, { net, home: [{ id: me, addrs: [] }], seq: known.seq - 1, exp })), { ok: false, code: 'UnauthorizedError' })
    // A record naming us that the agent did not sign, one of another agent, one of another network.
    const other = generateAgentKey()
    // Newer than any record the home may announce meanwhile (its seq is the time of issue).
    const newer = { net, home: [{ id: me, addrs: [] }], seq: Date.now() + 600_000, exp }
    assert.deepEqual(await pull(signedRecord(key, newer, other)), { ok: false, code: 'InvalidArgumentError' })
    assert.deepEqual(await pull(signedRecord(other, newer)), { ok: false, code: 'InvalidArgumentError' })
    assert.deepEqual(await pull(signedRecord(key, { ...newer, net: 'elsewhere' as NetworkId })), { ok: false, code: 'InvalidArgumentError' })

    // The agent moved to us: its newer record, which it signed, names us, and the pull is served.
    assert.deepEqual(await pull(signedRecord(key, newer)), { ok: true })
  })
})

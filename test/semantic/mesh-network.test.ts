/**
 * The mesh RegistryNetwork (src/node/semantic.ts: control-topic announcements, the node's
 * record store, storage-role nodes and the Kad-DHT) passes the same compliance suite as the
 * in-memory hub, on real in-process nodes over loopback.
 */
import { Nodes } from '../helpers/api.ts'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { RegistryNetwork } from '../../src/semantic/index.ts'
import { controlTopic } from '../../src/net/libp2p.ts'
import { registryNetworkCompliance } from './registry-network.compliance.ts'

async function until (pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  for (let i = 0; i < 10_000 && !pred(); i++) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

registryNetworkCompliance('mesh (control topic, record stores, storage nodes, DHT)', async (n) => {
  const nodes = new Nodes()
  const started: MeshNodeImpl[] = []
  const network = `regnet${Math.floor(Math.random() * 1e9)}`
  for (let i = 0; i < n; i++) {
    // Every node bootstraps from all before it: the mesh stays connected when some go down.
    started.push(await nodes.start({ network, roles: ['full', 'storage'], bootstrap: started.map(s => s.multiaddrs()[0]) }))
  }
  const live = new Set(started.map((_s, i) => i))
  const ready = (): boolean => started.every(s =>
    s.net.getPeers().length === n - 1 &&
    s.net.services.pubsub.getSubscribers(controlTopic(network)).length === n - 1 &&
    s.nodeRecords().filter(r => r.roles.includes('storage')).length >= n)
  await until(ready, `${n} nodes connected, subscribed and known`)
  // settle(): every live member has heard every announcement the others made.
  let sent = 0
  const heard = started.map(() => 0)
  const sentBy = started.map(() => 0)
  started.forEach((s, i) => s.semantics.network.onAnnounce(() => { heard[i]++; return undefined }))
  const members: RegistryNetwork[] = started.map((s, i) => ({
    ...s.semantics.network,
    announce: async (bytes, options) => { sent++; sentBy[i]++; await s.semantics.network.announce(bytes, options) }
  }))
  return {
    members,
    down: async (i) => { live.delete(i); await started[i].stop() },
    settle: async () => { await until(() => [...live].every(i => heard[i] >= sent - sentBy[i]), 'announcements delivered') },
    close: async () => { await nodes.stopAll() }
  }
})

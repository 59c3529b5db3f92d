/**
 * Test doubles around an agent or a node: an agent transport that accepts everything and
 * routes nothing, and a plain libp2p peer (TCP, Noise, yamux; no fedmesh) speaking a node's
 * durable protocol.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import type { NetworkId } from '../../src/core/ids.ts'
import type { AgentTransport } from '../../src/routing/types.ts'
import { DurableClient, durableProtocol } from '../../src/delivery/wire.ts'

/** Submits succeed unconfirmed; subscriptions and attachments do nothing; no streams. */
export const inertTransport: AgentTransport = {
  submit: async (env) => ({ id: env.id, confirmed: [] }),
  subscribe: async () => {},
  unsubscribe: async () => {},
  openStream: async () => { throw new Error('no streams here') },
  attach: async () => {},
  detach: async () => {}
}

/** A plain libp2p peer on loopback and a durable-protocol client of the node at `addr`; stop the peer after. */
export async function plainDurablePeer (addr: string, net: NetworkId): Promise<{ peer: Libp2p, client: DurableClient }> {
  const peer = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  return { peer, client: new DurableClient(await peer.dialProtocol(multiaddr(addr), durableProtocol(net))) }
}

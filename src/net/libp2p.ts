/**
 * Assembles the libp2p node: TCP + WebSockets, Noise, Yamux, identify, ping, Kad-DHT,
 * gossipsub, circuit relay v2 (client always, server on relay-capable roles), DCUtR,
 * bootstrap (only the addresses the operator gave) and mDNS (opt-in).
 * Protocol ids carry the network id, so nodes of different networks do not even
 * share a DHT or a gossip mesh.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub } from '@libp2p/gossipsub'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { createHash } from 'node:crypto'
import type { PrivateKey, PeerInfo } from '@libp2p/interface'
import type { NetworkId } from '../core/ids.ts'
import { MAX_FRAME_BYTES } from './frames.ts'
import { coalesceWrites } from './coalesce.ts'
import { halfWindowUpdates } from './yamux-window.ts'
import { quietLengthPrefixReads } from './noise-reads.ts'
import { sodiumNoiseCrypto } from './noise-crypto.ts'
import { directMessageStreams } from './message-streams.ts'

export interface NetInit {
  privateKey: PrivateKey
  network: NetworkId
  listen: string[]
  announce?: string[]
  bootstrap: string[]
  mdns: boolean
  relayServer: boolean
  /** DHT record validators and selectors, keyed by namespace (first key segment). */
  dhtValidators: Record<string, (key: Uint8Array, value: Uint8Array) => Promise<void>>
  dhtSelectors: Record<string, (key: Uint8Array, values: Uint8Array[]) => number>
}

// Kad-DHT's default mapper strips private addresses, which would leave a LAN or loopback
// network with an empty DHT. The network rule is kept by what we dial, not by this filter.
const keepAllAddresses = (peer: PeerInfo): PeerInfo => peer

export function controlTopic (network: string): string { return `/fedmesh/${network}/control/1` }

export async function createNet (init: NetInit) {
  // A window update per half window, not per data frame (yamux-window.ts).
  halfWindowUpdates()
  // Noise reads without an exception per socket read (noise-reads.ts).
  quietLengthPrefixReads()
  // A chunk read or written through each libp2p stream layer without list copies when nothing waits (message-streams.ts).
  directMessageStreams()
  const services = {
    identify: identify({ protocolPrefix: `fedmesh/${init.network}` }),
    ping: ping(),
    dht: kadDHT({
      protocol: `/fedmesh/${init.network}/kad/1.0.0`,
      clientMode: false,
      peerInfoMapper: keepAllAddresses,
      validators: init.dhtValidators,
      selectors: init.dhtSelectors
    }),
    pubsub: gossipsub({
      // Envelopes carry their own Ed25519 signatures; gossipsub's per-message signing
      // would halve throughput for no gain.
      globalSignaturePolicy: 'StrictNoSign',
      emitSelf: false,
      allowPublishToZeroTopicPeers: true,
      floodPublish: true,
      maxInboundDataLength: MAX_FRAME_BYTES,
      // gossipsub keeps every message id it saw or published in three caches for seenTTL
      // (default 2 min: 240k ids each at 2,000 msgs/s). Duplicates are caught by fedmesh's own
      // ingress dedup anyway (the topic validator ignores them, so they are not forwarded);
      // these caches only need to outlive gossip's IHAVE/IWANT window (mcache: 5 heartbeats).
      seenTTL: 30_000,
      msgIdFn: (msg) => createHash('sha256').update(msg.data ?? new Uint8Array(0)).digest(),
      fastMsgIdFn: (msg) => createHash('sha1').update(msg.data ?? new Uint8Array(0)).digest("base64")
    }),
    dcutr: dcutr(),
    ...(init.relayServer ? { relay: circuitRelayServer() } : {})
  }
  // Loaded only when configured: a node without bootstrap addresses or mDNS (opt-in) does
  // not pay for their modules (mDNS brings a DNS packet codec and a multicast socket).
  const peerDiscovery = []
  if (init.bootstrap.length > 0) {
    const { bootstrap } = await import('@libp2p/bootstrap')
    peerDiscovery.push(bootstrap({ list: init.bootstrap, timeout: 100 }))
  }
  if (init.mdns) {
    const { mdns } = await import('@libp2p/mdns')
    peerDiscovery.push(mdns({ serviceTag: `fedmesh-${init.network}.local`, interval: 2000 }))
  }

  return await createLibp2p({
    privateKey: init.privateKey,
    addresses: { listen: init.listen, announce: init.announce ?? [] },
    // What a callback and its promise jobs write to a TCP connection leaves in one syscall (coalesce.ts).
    transports: [coalesceWrites(tcp()), webSockets(), circuitRelayTransport()],
    // Noise's AEAD on libsodium instead of WebAssembly (noise-crypto.ts).
    connectionEncrypters: [noise({ crypto: sodiumNoiseCrypto })],
    // A bounded per-stream window: a paused (slow) reader holds at most this much from one
    // stream, well under libp2p's 4 MiB read-buffer limit that would otherwise reset it.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 2 * 1024 * 1024 } })],
    peerDiscovery,
    services
  })
}

export type Net = Awaited<ReturnType<typeof createNet>>
export type NetServices = Net extends Libp2p<infer S> ? S : never
export type Dht = KadDHT

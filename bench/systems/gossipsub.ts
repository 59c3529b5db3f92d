/**
 * Raw js-libp2p 3 gossipsub 17: TCP + Noise + Yamux + identify, two processes, the second
 * dialing the first on 127.0.0.1. Two variants: signed (StrictSign, the default) and
 * unsigned (StrictNoSign). Request–reply is emulated over two topics (lib/rpc.ts).
 *
 * Flow control: gossipsub's publish() does not wait for the network (its outbound stream
 * has a "TODO: backpressure" and aborts past a buffer limit), so after each publish we
 * wait for the outbound meshsub stream to drain whenever its muxer says it must.
 */
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import type { Endpoint, System, TopicName } from '../lib/types.ts'

const topicOf = (t: TopicName): string => `bench/${t}`
const DRAIN_TIMEOUT_MS = 10_000

function gossipsubSystem (signed: boolean): System {
  return {
    name: signed ? 'gossipsub-signed' : 'gossipsub-unsigned',
    description: `js-libp2p 3 + gossipsub 17 (TCP, Noise, Yamux), ${signed ? 'StrictSign (default)' : 'StrictNoSign'}, request–reply over two topics`,

    async connect (opts): Promise<Endpoint> {
      const node = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        services: {
          identify: identify(),
          // emitSelf: subscribers on the publisher's own node (fan-out) get its messages too.
          pubsub: gossipsub({ globalSignaturePolicy: signed ? 'StrictSign' : 'StrictNoSign', emitSelf: true })
        }
      })
      const pubsub = node.services.pubsub
      if (opts.peer?.multiaddrs?.[0] != null) await node.dial(multiaddr(opts.peer.multiaddrs[0]), { signal: AbortSignal.timeout(10_000) })

      // Local subscribers per topic: gossipsub delivers once per node; the application fans out.
      const handlers = new Map<string, Array<(payload: Uint8Array) => void>>()
      pubsub.addEventListener('message', (evt) => {
        const list = handlers.get(evt.detail.topic)
        if (list != null) for (const h of list) h(evt.detail.data)
      })
      const subscribe = async (topic: TopicName, onMessage: (payload: Uint8Array) => void): Promise<void> => {
        const list = handlers.get(topicOf(topic))
        if (list != null) { list.push(onMessage); return }
        handlers.set(topicOf(topic), [onMessage])
        pubsub.subscribe(topicOf(topic))
      }

      // Our outbound gossipsub streams (one per peer), looked up again once one closes.
      let outbound: Stream[] = []
      const outboundStreams = (): Stream[] => {
        if (outbound.length === 0 || outbound.some(s => s.status !== 'open')) {
          outbound = node.getConnections().flatMap(c => c.streams)
            .filter(s => s.direction === 'outbound' && s.protocol.startsWith('/meshsub/'))
        }
        return outbound
      }

      return {
        contact: { multiaddrs: node.getMultiaddrs().map(String) },
        subscribe,
        addSubscriber: subscribe,
        async publish (topic, payload) {
          await pubsub.publish(topicOf(topic), payload)
          for (const s of outboundStreams()) {
            if (s.writableNeedsDrain) await s.onDrain({ signal: AbortSignal.timeout(DRAIN_TIMEOUT_MS) })
          }
        },
        async flush () {
          const deadline = Date.now() + 5000
          while (outboundStreams().some(s => s.writeBufferLength > 0) && Date.now() < deadline) {
            await new Promise(resolve => setTimeout(resolve, 5))
          }
        },
        async close () { await node.stop() }
      }
    }
  }
}

export const gossipsubUnsigned = gossipsubSystem(false)
export const gossipsubSigned = gossipsubSystem(true)

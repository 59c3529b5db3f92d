/**
 * fedmesh, through its SDK: one node per process (TCP on 127.0.0.1, no HTTP API), one
 * agent per node. The second node bootstraps from the first. Pub/sub is agent.publish /
 * agent.subscribe (with an `onMessage` callback) on `bench/data`; request–reply is the SDK's own agent.request /
 * agent.handle. Publishing uses `publishBuffered()` (no promise per message, batch-signed)
 * and waits on `drain()` only when it reports backpressure, like nats.js `publish` + `flush`.
 */
import { createNode, type Agent, type MeshNode } from '../../src/index.ts'
import type { Endpoint, System, TopicName } from '../lib/types.ts'

const topicOf = (t: TopicName): string => `bench/${t}`
const FIND_AGENT_TIMEOUT_MS = 30_000

export const fedmesh: System = {
  name: 'fedmesh',
  description: 'fedmesh SDK (src/): node + agent per process, agent.publishBuffered / callback subscribe, agent.request/handle',

  async connect (opts): Promise<Endpoint> {
    const node: MeshNode = await createNode({
      dir: opts.dir,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: opts.peer?.multiaddrs ?? [],
      api: false
    })
    let agent: Agent
    try {
      agent = await node.agent(opts.role)
    } catch (err) {
      await node.stop()
      throw err
    }
    const subscriptions: Array<{ unsubscribe: () => void }> = []
    let target: string | undefined
    let agents = 0
    // A callback subscription, as the nats.js adapter uses: no promise per message.
    const subscribeAs = (who: Agent, topic: TopicName, onMessage: (payload: Uint8Array) => void): void => {
      subscriptions.push(who.subscribe(topicOf(topic), { onMessage: (msg) => { onMessage(msg.payload) } }))
    }

    return {
      contact: { multiaddrs: node.multiaddrs(), agentId: agent.id },
      async subscribe (topic, onMessage) { subscribeAs(agent, topic, onMessage) },
      // Fan-out: each further subscriber is an agent of its own on this node.
      async addSubscriber (topic, onMessage) { subscribeAs(await node.agent(`sub-${agents++}`), topic, onMessage) },
      publish (topic, payload) {
        return agent.publishBuffered(topicOf(topic), payload) ? undefined : agent.drain()
      },
      async flush () { await agent.drain() },
      rpc: {
        async serve (handler) {
          agent.handle((msg) => handler(msg.payload))
        },
        async request (payload, timeoutMs) {
          if (target == null) {
            const id = opts.peer?.agentId
            if (id == null) throw new Error('requester has no responder agent id')
            await node.waitForAgent(id, { signal: AbortSignal.timeout(FIND_AGENT_TIMEOUT_MS) })
            target = id
          }
          return (await agent.request(target, payload, { timeout: timeoutMs })).payload
        }
      },
      async close () {
        for (const s of subscriptions) s.unsubscribe()
        await node.stop()
      }
    }
  }
}

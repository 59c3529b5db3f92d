/**
 * fedmesh, through its SDK: one node per process (TCP on 127.0.0.1, no HTTP API), one
 * agent per node. The second node bootstraps from the first. Pub/sub is agent.publish /
 * agent.subscribe on `bench/data`; request–reply is the SDK's own agent.request /
 * agent.handle. Publishing uses `publishBuffered()` (no promise per message, batch-signed)
 * and waits on `drain()` only when it reports backpressure, like nats.js `publish` + `flush`.
 */
import { createNode, type Agent, type MeshNode } from '../../src/index.ts'
import type { Endpoint, System, TopicName } from '../lib/types.ts'

const topicOf = (t: TopicName): string => `bench/${t}`
const FIND_AGENT_TIMEOUT_MS = 30_000

export const fedmesh: System = {
  name: 'fedmesh',
  description: 'fedmesh SDK (src/): node + agent per process, agent.publishBuffered/subscribe, agent.request/handle',

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

    return {
      contact: { multiaddrs: node.multiaddrs(), agentId: agent.id },
      async subscribe (topic, onMessage) {
        const sub = agent.subscribe(topicOf(topic))
        subscriptions.push(sub)
        void (async () => { for await (const msg of sub) onMessage(msg.payload) })().catch(() => {})
      },
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

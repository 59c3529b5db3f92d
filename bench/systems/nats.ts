/**
 * nats-server (core NATS, no JetStream) and nats.js v2. Publishing is synchronous into the
 * client's buffer; flow control is a PING/PONG `flush()` every window, with at most two
 * windows in flight. Request–reply is NATS's own (`request`, muxed reply inbox).
 */
import { connect, type NatsConnection } from 'nats'
import { freePort, HOST } from '../lib/net.ts'
import { brokerWhenListening, spawnProcess } from '../lib/proc.ts'
import type { Endpoint, System, TopicName } from '../lib/types.ts'

const NATS_SERVER = '/usr/sbin/nats-server'
const FLUSH_WINDOW = 1024

const subjectOf = (t: TopicName): string => `bench.${t}`

export const nats: System = {
  name: 'nats',
  description: `nats-server (${NATS_SERVER}) + nats.js 2`,

  async start () {
    const port = await freePort()
    const proc = spawnProcess('nats-server', NATS_SERVER, ['-a', HOST, '-p', String(port)])
    return await brokerWhenListening(proc, port, 10_000)
  },

  async connect (opts): Promise<Endpoint> {
    if (opts.broker == null) throw new Error('NATS needs a server')
    const nc: NatsConnection = await connect({ servers: `${opts.broker.host}:${opts.broker.port}`, reconnect: false })
    let published = 0
    let inFlight: Promise<void> | undefined

    return {
      contact: {},
      async subscribe (topic, onMessage) {
        nc.subscribe(subjectOf(topic), { callback: (err, msg) => { if (err == null) onMessage(msg.data) } })
        await nc.flush() // the server has registered the subscription
      },
      publish (topic, payload) {
        nc.publish(subjectOf(topic), payload)
        if (++published % FLUSH_WINDOW !== 0) return undefined
        const previous = inFlight
        inFlight = nc.flush()
        return previous
      },
      async flush () { await nc.flush() },
      rpc: {
        async serve (handler) {
          nc.subscribe(subjectOf('req'), { callback: (err, msg) => { if (err == null) msg.respond(handler(msg.data)) } })
          await nc.flush()
        },
        async request (payload, timeoutMs) {
          return (await nc.request(subjectOf('req'), payload, { timeout: timeoutMs })).data
        }
      },
      async close () { await nc.close() }
    }
  }
}

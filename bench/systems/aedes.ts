/**
 * aedes 1 (a Node MQTT broker) in its own process (workers/aedes-broker.ts) + mqtt.js,
 * QoS 0, request–reply over two topics.
 */
import { freePort, HOST } from '../lib/net.ts'
import { brokerWhenListening, forkScript } from '../lib/proc.ts'
import type { System } from '../lib/types.ts'
import { mqttEndpoint } from './mqtt-client.ts'

const BROKER_SCRIPT = new URL('../workers/aedes-broker.ts', import.meta.url)

export const aedes: System = {
  name: 'aedes',
  description: 'aedes 1 broker (own process) + mqtt.js 5, QoS 0, request–reply over two topics',

  async start () {
    const port = await freePort()
    const proc = forkScript('aedes broker', BROKER_SCRIPT, [HOST, String(port)])
    return await brokerWhenListening(proc, port, 15_000)
  },

  connect: mqttEndpoint
}

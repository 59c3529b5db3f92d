/**
 * The mqtt.js client side shared by the MQTT brokers (mosquitto, aedes): QoS 0, clean
 * session, no reconnects. Flow control: mqtt.js calls a publish callback synchronously
 * while the socket accepts data and only on 'drain' once it does not — the publisher
 * waits exactly then.
 */
import { connectAsync, type MqttClient } from 'mqtt'
import type { ConnectOptions, Endpoint, TopicName } from '../lib/types.ts'

const topicOf = (t: TopicName): string => `bench/${t}`
/** Clients of one process (fan-out runs several) need distinct client ids. */
let clients = 0

export async function mqttEndpoint (opts: ConnectOptions): Promise<Endpoint> {
  if (opts.broker == null) throw new Error('MQTT needs a broker')
  const client: MqttClient = await connectAsync(`mqtt://${opts.broker.host}:${opts.broker.port}`, {
    clientId: `bench-${opts.role}-${process.pid}-${clients++}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 10_000
  })
  const handlers = new Map<string, (payload: Uint8Array) => void>()
  client.on('message', (topic, payload) => { handlers.get(topic)?.(payload) })

  return {
    contact: {},
    async subscribe (topic, onMessage) {
      handlers.set(topicOf(topic), onMessage)
      await client.subscribeAsync(topicOf(topic), { qos: 0 }) // resolves on SUBACK
    },
    publish (topic, payload) {
      let settled = false
      let error: Error | undefined
      let onSettled: ((err?: Error) => void) | undefined
      const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
      client.publish(topicOf(topic), body, { qos: 0 }, (err) => {
        settled = true
        error = err ?? undefined
        onSettled?.(error)
      })
      if (!settled) return new Promise<void>((resolve, reject) => { onSettled = (err) => { if (err != null) reject(err); else resolve() } })
      if (error != null) throw error
      return undefined
    },
    async flush () {
      // QoS 0 has no acknowledgement: flushed means the socket buffer is empty.
      const deadline = Date.now() + 5000
      while (client.stream.writableLength > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
    },
    async close () {
      await client.endAsync(true)
    }
  }
}

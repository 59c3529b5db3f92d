/** Eclipse Mosquitto 2 (its own binary, a temp config on a free loopback port) + mqtt.js, QoS 0. */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { freePort, HOST } from '../lib/net.ts'
import { brokerWhenListening, spawnProcess } from '../lib/proc.ts'
import type { System } from '../lib/types.ts'
import { mqttEndpoint } from './mqtt-client.ts'

const MOSQUITTO = '/usr/sbin/mosquitto'

export const mosquitto: System = {
  name: 'mosquitto',
  description: `mosquitto (${MOSQUITTO}) + mqtt.js 5, QoS 0, request–reply over two topics`,

  async start (ctx) {
    const port = await freePort()
    const config = join(ctx.dir, 'mosquitto.conf')
    await writeFile(config, [
      `listener ${port} ${HOST}`,
      'allow_anonymous true',
      'persistence false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ''
    ].join('\n'))
    const proc = spawnProcess('mosquitto', MOSQUITTO, ['-c', config])
    return await brokerWhenListening(proc, port, 10_000)
  },

  connect: mqttEndpoint
}

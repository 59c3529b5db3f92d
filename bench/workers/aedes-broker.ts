/** An aedes MQTT broker on `argv[2]:argv[3]`, in its own process; ends on 'stop', SIGTERM or disconnect. */
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const [host = '127.0.0.1', port = '0'] = process.argv.slice(2)
const broker = await Aedes.createBroker()
const server = createServer(broker.handle)
server.listen(Number(port), host)

function shutdown (): void {
  server.close()
  broker.close(() => { process.exit(0) })
  setTimeout(() => { process.exit(0) }, 1000).unref()
}
process.on('message', (m: { type?: string }) => { if (m.type === 'stop') shutdown() })
process.on('disconnect', shutdown)
process.on('SIGTERM', shutdown)

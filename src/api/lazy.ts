/**
 * The node's API, loaded on first use. The port is bound at start (so the `ready` line
 * carries the URL and a port conflict fails the start), but Fastify, Ajv, the WebSocket
 * server, prom-client and the route schemas — about 350 modules, 10–15 MB of an idle node's
 * RSS and 150–300 ms of its start — load when the first client connects. Requests and
 * WebSocket upgrades that arrive meanwhile wait for the load and are then served as usual;
 * from then on every request goes straight to Fastify's router. Metrics lose nothing by
 * this: they are read from the node's counters at scrape time.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { InvalidArgumentError } from '../core/errors.ts'
import { errorBody } from './errors.ts'
import type { ApiHandle, ApiNode, ApiOptions } from './types.ts'

export async function startLazyApi (node: ApiNode, opts: ApiOptions): Promise<ApiHandle> {
  // buildApi checks this too; checked here so that a bad token still fails the start.
  if (typeof opts.token !== 'string' || opts.token.length < 16) throw new InvalidArgumentError('the API token must be at least 16 characters')
  const server = createServer()
  let app: FastifyInstance | undefined
  let loading: Promise<FastifyInstance> | undefined
  let closed = false

  const load = async (): Promise<FastifyInstance> => {
    loading ??= (async () => {
      const { buildApi } = await import('./server.ts')
      const built = await buildApi(node, opts)
      await built.ready()
      if (closed) { await built.close(); throw new Error('API closed while loading') }
      app = built
      opts.logger?.debug({}, 'api loaded')
      return built
    })()
    return await loading
  }

  const failed = (err: unknown): void => {
    opts.logger?.error({ err: (err as Error).message }, 'api failed to load')
  }

  server.on('connection', () => { if (loading == null) load().catch(failed) })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (app != null) { app.routing(req, res); return }
    load().then(a => { a.routing(req, res) }, (err: unknown) => {
      failed(err)
      const { status, body } = errorBody(err)
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // @fastify/websocket listens for upgrades on the app's own (never listening) server.
    if (app != null) { app.server.emit('upgrade', req, socket, head); return }
    const drop = (): void => { socket.destroy() }
    socket.on('error', drop)
    load().then(a => {
      socket.off('error', drop)
      a.server.emit('upgrade', req, socket, head)
    }, (err: unknown) => { failed(err); socket.destroy() })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr != null ? addr.port : opts.port
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  const url = `http://${host}:${port}`
  opts.logger?.info({ url }, 'api listening')

  return {
    url,
    close: async () => {
      closed = true
      const stopped = new Promise<void>(resolve => { server.close(() => { resolve() }) })
      server.closeIdleConnections()
      // Closes WebSocket clients (with a reason) and waits for in-flight requests.
      if (loading != null) await loading.then(async a => { await a.close() }, () => {})
      server.closeAllConnections()
      await stopped
    }
  }
}

/**
 * One side of a benchmark, in its own process, driven over IPC by bench/run.ts.
 * Roles: `sub` (subscribes, counts, answers requests) and `pub` (publishes, requests).
 * Systems: fedmesh, nats (nats.js), mqtt (mqtt.js against mosquitto).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

const [system, role, arg] = process.argv.slice(2)
const send = (m: unknown): void => { process.send?.(m) }
const payload = (size: number): Uint8Array => new Uint8Array(size).fill(120)

interface Side {
  subscribe: (onMsg: () => void) => Promise<void>
  serve: () => Promise<void>
  publish: (data: Uint8Array) => Promise<void> | void
  flush: () => Promise<void>
  request: (data: Uint8Array) => Promise<void>
  info: Record<string, unknown>
  close: () => Promise<void>
}

async function fedmesh (): Promise<Side> {
  const { createNode } = await import('../src/index.ts')
  const opts = JSON.parse(arg)
  const node = await createNode({ dir: mkdtempSync(join(tmpdir(), 'fm-bench-')), listen: ['/ip4/127.0.0.1/tcp/0'], api: false, bootstrap: opts.bootstrap ?? [] })
  const agent = await node.agent(role)
  let target = opts.target as string | undefined
  return {
    info: { addr: node.multiaddrs()[0], agent: agent.id },
    subscribe: async (onMsg) => { void (async () => { for await (const _m of agent.subscribe('bench/#')) onMsg() })() },
    serve: async () => { agent.handle((m) => m.payload) },
    publish: (data) => agent.publish('bench/x', data, { contentType: 'application/octet-stream' }).then(() => {}),
    flush: async () => {},
    request: async (data) => {
      if (target == null) throw new Error('no target')
      await agent.request(target, data, { timeout: 5000 })
    },
    close: async () => { await node.stop() }
  }
}

async function nats (): Promise<Side> {
  const { connect } = await import('nats')
  const nc = await connect({ servers: arg })
  return {
    info: {},
    subscribe: async (onMsg) => { nc.subscribe('bench.x', { callback: () => { onMsg() } }); await nc.flush() },
    serve: async () => { nc.subscribe('bench.req', { callback: (_e, m) => { m.respond(m.data) } }); await nc.flush() },
    publish: (data) => { nc.publish('bench.x', data) },
    flush: async () => { await nc.flush() },
    request: async (data) => { await nc.request('bench.req', data, { timeout: 5000 }) },
    close: async () => { await nc.drain() }
  }
}

async function mqttSide (): Promise<Side> {
  const mqtt = await import('mqtt')
  const c = await mqtt.connectAsync(arg, { clientId: `${role}-${process.pid}` })
  const waiting = new Map<string, () => void>()
  let n = 0
  return {
    info: {},
    subscribe: async (onMsg) => { c.on('message', (t) => { if (t === 'bench/x') onMsg() }); await c.subscribeAsync('bench/x', { qos: 0 }) },
    serve: async () => {
      c.on('message', (t, m) => { if (t === 'bench/req') { const id = m.subarray(0, 12).toString(); void c.publishAsync(`bench/rep/${id.trim()}`, m) } })
      await c.subscribeAsync('bench/req', { qos: 0 })
    },
    publish: (data) => new Promise<void>((resolve) => { c.publish('bench/x', Buffer.from(data), { qos: 0 }, () => { resolve() }) }),
    flush: async () => {},
    request: async (data) => {
      if (n === 0) {
        c.on('message', (t) => { const w = waiting.get(t); if (w != null) { waiting.delete(t); w() } })
        await c.subscribeAsync(`bench/rep/${role}${process.pid}/#`, { qos: 0 })
      }
      const id = `${role}${process.pid}/${n++}`
      const buf = Buffer.alloc(Math.max(data.length, 12))
      buf.write(id.padEnd(12).slice(0, 12))
      const done = new Promise<void>((resolve) => waiting.set(`bench/rep/${id.padEnd(12).slice(0, 12).trim()}`, resolve))
      await c.publishAsync('bench/req', buf, { qos: 0 })
      await done
    },
    close: async () => { await c.endAsync() }
  }
}

const side = system === 'fedmesh' ? await fedmesh() : system === 'nats' ? await nats() : await mqttSide()
let received = 0
let first = 0
let last = 0

process.on('message', (c: any) => {
  void (async () => {
    try {
      if (c.op === 'subscribe') {
        await side.subscribe(() => { const t = performance.now(); if (received++ === 0) first = t; last = t })
        await side.serve()
        send({ rid: c.rid, ok: true })
      } else if (c.op === 'count') {
        send({ rid: c.rid, ok: true, result: { received, seconds: (last - first) / 1000 } })
      } else if (c.op === 'reset') {
        received = 0
        send({ rid: c.rid, ok: true })
      } else if (c.op === 'publish') {
        const data = payload(c.size)
        const deadline = performance.now() + c.seconds * 1000
        let sent = 0
        while (sent < c.count && performance.now() < deadline) {
          const batch = []
          for (let i = 0; i < 256 && sent < c.count; i++, sent++) batch.push(side.publish(data))
          await Promise.all(batch)
          if (sent % 4096 === 0) await side.flush()
        }
        await side.flush()
        send({ rid: c.rid, ok: true, result: { sent } })
      } else if (c.op === 'latency') {
        const data = payload(c.size)
        const rtts: number[] = []
        const deadline = performance.now() + c.seconds * 1000
        for (let i = 0; i < c.count && performance.now() < deadline; i++) {
          const t = performance.now()
          await side.request(data)
          rtts.push(performance.now() - t)
        }
        send({ rid: c.rid, ok: true, result: { rtts } })
      } else if (c.op === 'close') {
        await side.close()
        send({ rid: c.rid, ok: true })
        setImmediate(() => process.exit(0))
      }
    } catch (err) {
      send({ rid: c.rid, ok: false, error: String((err as Error).stack ?? err) })
    }
  })()
})
send({ event: 'ready', info: side.info })

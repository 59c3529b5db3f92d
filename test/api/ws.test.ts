/**
 * The WebSocket API over real sockets: auth on upgrade, subscriptions and inboxes, bad
 * input answered with typed errors, per-connection limits, a slow consumer dropped with a
 * reason, and connections closed when the node stops.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Logger } from '../../src/node/types.ts'
import { startApi } from '../../src/api/server.ts'
import { Nodes, WsClient, within } from '../helpers/api.ts'

describe('WebSocket API', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  const clients: WsClient[] = []
  let node: MeshNodeImpl
  let url: string
  let token: string
  const open = async (opts: { token?: string, query?: string } = { token }): Promise<WsClient> => {
    const c = await WsClient.open(url, opts)
    clients.push(c)
    return c
  }

  before(async () => {
    node = await nodes.start({ api: '127.0.0.1:0' })
    url = node.status().api as string
    token = node.apiToken
  })
  after(async () => {
    for (const c of clients) c.close()
    await nodes.stopAll()
  })

  describe('auth', () => {
    it('refuses an upgrade without the token or with a wrong one (401, typed body)', async () => {
      for (const opts of [{}, { token: 'wrong-token-wrong-token' }, { query: '?token=wrong' }]) {
        await assert.rejects(WsClient.open(url, opts), (err: Error & { status?: number, body?: { error: { code: string } } }) => {
          assert.equal(err.status, 401)
          assert.equal(err.body?.error.code, 'UnauthorizedError')
          return true
        })
      }
    })

    it('accepts the token as a header or as ?token=, and says hello', async () => {
      const a = await open()
      const b = await open({ query: `?token=${encodeURIComponent(token)}` })
      for (const c of [a, b]) {
        const hello = c.received[0]
        assert.deepEqual(hello, { op: 'hello', v: 1, network: 'fedmesh', peerId: node.peerId })
      }
    })
  })

  describe('subscriptions', () => {
    it('streams matching messages until unsubscribed', async () => {
      const c = await open()
      const pubber = await node.agent('pubber')
      c.send({ op: 'subscribe', id: 's1', pattern: 'news/*/today', agent: 'reader' })
      c.send({ op: 'subscribe', id: 'end', pattern: 'end/#', agent: 'reader' })
      await c.next(m => m.op === 'subscribed' && m.id === 's1', 'subscribed s1')
      await c.next(m => m.op === 'subscribed' && m.id === 'end', 'subscribed end')
      const { id } = await pubber.publish('news/paris/today', { temp: 21 })
      await pubber.publish('news/paris/yesterday', { temp: 20 })
      const m = await c.next(x => x.op === 'message' && x.sub === 's1', 'message on s1')
      assert.equal(m.message.id, id)
      assert.equal(m.message.topic, 'news/paris/today')
      assert.equal(m.message.from, pubber.id)
      assert.deepEqual(m.message.payload, { temp: 21 })
      c.send({ op: 'unsubscribe', id: 's1' })
      await c.next(x => x.op === 'unsubscribed' && x.id === 's1', 'unsubscribed')
      await pubber.publish('news/rome/today', { temp: 25 })
      await pubber.publish('end/now', 'end')
      await c.next(x => x.op === 'message' && x.sub === 'end', 'sentinel')
      assert.equal(c.received.filter(x => x.op === 'message' && x.sub === 's1').length, 1)
      assert.ok(node.agents().find(a => a.name === 'reader')?.subscriptions.includes('end/#'))
    })

    it('streams an agent\'s inbox with op "messages"', async () => {
      const c = await open()
      const carol = await node.agent('carol')
      const sender = await node.agent('sender')
      c.send({ op: 'messages', id: 'in', agent: 'carol' })
      await c.next(m => m.op === 'subscribed' && m.id === 'in', 'subscribed')
      await sender.send(carol.id, Buffer.from([1, 2, 3]))
      const m = await c.next(x => x.op === 'message' && x.sub === 'in', 'inbox message')
      assert.equal(m.message.mode, 'direct')
      assert.equal(m.message.payloadBase64, Buffer.from([1, 2, 3]).toString('base64'))
    })

    it('op "messages" with ack "manual": durable messages are acknowledged with op "ack"; others take none; bad acks are refused', async () => {
      const c = await open()
      const dora = await node.agent('dora')
      const sender = await node.agent('sender')
      c.send({ op: 'messages', id: 'm', agent: 'dora', ack: 'manual' })
      await c.next(m => m.op === 'subscribed' && m.id === 'm', 'subscribed')
      const durable = await sender.send(dora.id, { n: 1 }, { durable: true })
      const plain = await sender.send(dora.id, { n: 2 })
      await c.next(x => x.op === 'message' && x.sub === 'm' && x.message.id === durable.id, 'durable message')
      await c.next(x => x.op === 'message' && x.sub === 'm' && x.message.id === plain.id, 'plain message')
      let from = c.received.length
      c.send({ op: 'ack', id: 'm', message: plain.id })
      assert.match((await c.next(x => x.op === 'error' && x.id === 'm', 'plain ack refused', 5000, from)).error.message, /not sent on subscription|acknowledged already/)
      c.send({ op: 'ack', id: 'm', message: durable.id })
      await c.next(x => x.op === 'acked' && x.id === 'm' && x.message === durable.id, 'acked')
      assert.equal(await node.store.isProcessed(dora.id, durable.id), true)
      from = c.received.length
      c.send({ op: 'ack', id: 'm', message: durable.id })
      assert.equal((await c.next(x => x.op === 'error' && x.id === 'm', 'second ack refused', 5000, from)).error.code, 'InvalidArgumentError')
      from = c.received.length
      c.send({ op: 'ack', id: 'nope', message: durable.id })
      assert.equal((await c.next(x => x.op === 'error' && x.id === 'nope', 'unknown subscription', 5000, from)).error.code, 'InvalidArgumentError')
      from = c.received.length
      c.send({ op: 'subscribe', id: 'bad', pattern: 'a/b', ack: 'manual' })
      assert.equal((await c.next(x => x.op === 'error' && x.id === 'bad', 'ack on a topic subscription', 5000, from)).error.code, 'InvalidArgumentError')
    })
  })

  describe('bad input is answered, the connection stays usable', () => {
    it('not JSON, not an object, unknown op, binary frames', async () => {
      const c = await open()
      for (const [raw, re] of [['{nope', /not JSON/], ['[1,2]', /JSON object/], [JSON.stringify({ op: 'frobnicate' }), /unknown op/]] as const) {
        const from = c.received.length
        c.send(raw)
        const e = await c.next(m => m.op === 'error', `error for ${raw}`, 5000, from)
        assert.equal(e.error.code, 'InvalidArgumentError')
        assert.match(e.error.message, re)
      }
      const from = c.received.length
      c.ws.send(Buffer.from([1, 2, 3]), { binary: true })
      assert.match((await c.next(m => m.op === 'error', 'binary', 5000, from)).error.message, /JSON text/)
    })

    it('bad patterns, ids and agent names; duplicate ids; requests without rid; submit before attach', async () => {
      const c = await open()
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ op: 'subscribe', id: 'p', pattern: 'a/#/b' }, 'InvalidTopicError'],
        [{ op: 'subscribe', id: '', pattern: 'a' }, 'InvalidArgumentError'],
        [{ op: 'subscribe', id: 'x'.repeat(65), pattern: 'a' }, 'InvalidArgumentError'],
        [{ op: 'subscribe', id: 'n', pattern: 'a', agent: '../../etc' }, 'InvalidArgumentError']
      ]
      for (const [msg, code] of cases) {
        const from = c.received.length
        c.send(msg)
        const e = await c.next(m => m.op === 'error', JSON.stringify(msg), 5000, from)
        assert.equal(e.error.code, code, JSON.stringify(msg))
      }
      c.send({ op: 'subscribe', id: 'dup', pattern: 'a' })
      await c.next(m => m.op === 'subscribed' && m.id === 'dup', 'first dup')
      let from = c.received.length
      c.send({ op: 'subscribe', id: 'dup', pattern: 'b' })
      assert.match((await c.next(m => m.op === 'error' && m.id === 'dup', 'second dup', 5000, from)).error.message, /in use/)
      from = c.received.length
      c.send({ op: 'submit', env: 'AAAA' })
      assert.match((await c.next(m => m.op === 'error', 'no rid', 5000, from)).error.message, /rid/)
      const r = await c.call({ op: 'submit', rid: 1, env: 'AAAA' })
      assert.equal(r.ok, false)
      assert.equal(r.error.code, 'InvalidArgumentError')
      assert.match(r.error.message, /attach/)
      const s = await c.call({ op: 'open-stream', rid: 2, env: 'AAAA' })
      assert.equal(s.error.code, 'InvalidArgumentError')
      assert.match(s.error.message, /attach/)
    })
  })

  describe('limits', () => {
    it('caps subscriptions per connection', async () => {
      const api = await startApi(node, { host: '127.0.0.1', port: 0, token, limits: { maxSubscriptions: 3 } })
      try {
        const c = await WsClient.open(api.url, { token })
        clients.push(c)
        for (let i = 0; i < 3; i++) c.send({ op: 'subscribe', id: `s${i}`, pattern: `t/${i}` })
        for (let i = 0; i < 3; i++) await c.next(m => m.op === 'subscribed' && m.id === `s${i}`, `s${i}`)
        c.send({ op: 'subscribe', id: 's3', pattern: 't/3' })
        const e = await c.next(m => m.op === 'error' && m.id === 's3', 'fourth subscription')
        assert.equal(e.error.code, 'TooManyRequestsError')
        // Freed by unsubscribing.
        c.send({ op: 'unsubscribe', id: 's0' })
        c.send({ op: 'subscribe', id: 's4', pattern: 't/4' })
        await c.next(m => m.op === 'subscribed' && m.id === 's4', 's4 after unsubscribe')
      } finally {
        await api.close()
      }
    })

    it('closes the connection on a message over the size limit (1009)', async () => {
      const api = await startApi(node, { host: '127.0.0.1', port: 0, token, limits: { maxMessageBytes: 64 * 1024 } })
      try {
        const c = await WsClient.open(api.url, { token })
        clients.push(c)
        c.send({ op: 'subscribe', id: 'big', pattern: 'x'.repeat(70 * 1024) })
        const closed = await within(c.closed, 10_000, 'close on an oversized message')
        assert.equal(closed.code, 1009)
      } finally {
        await api.close()
      }
    })

    it('drops a client that does not read, with a reason, instead of buffering for it', async () => {
      const dropped = Promise.withResolvers<unknown>()
      const logger: Logger = { info () {}, debug () {}, error () {}, warn (obj, msg) { if (msg === 'dropping api websocket') dropped.resolve(obj) } }
      const api = await startApi(node, { host: '127.0.0.1', port: 0, token, logger, limits: { maxBufferedBytes: 256 * 1024 } })
      try {
        const c = await WsClient.open(api.url, { token })
        clients.push(c)
        c.send({ op: 'subscribe', id: 'flood', pattern: 'flood/#', agent: 'sink' })
        await c.next(m => m.op === 'subscribed', 'subscribed')
        const socket = (c.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
        socket.pause()
        const pub = await node.agent('flooder')
        const chunk = 'x'.repeat(64 * 1024)
        let isDropped = false
        void dropped.promise.then(() => { isDropped = true })
        // Bounded: 64 MiB at most, far more than loopback socket buffers hold.
        for (let i = 0; i < 1024 && !isDropped; i++) {
          await pub.publish('flood/x', chunk)
          if (i % 16 === 15) await new Promise(resolve => setImmediate(resolve))
        }
        const info = await within(dropped.promise, 10_000, 'server drops the slow consumer') as { reason: string }
        assert.match(info.reason, /slow consumer/)
        socket.resume()
        const closed = await within(c.closed, 10_000, 'client sees the close')
        assert.ok([1013, 1006].includes(closed.code), `close code ${closed.code}`)
        const metrics = await (await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
        assert.match(metrics, /^fedmesh_api_ws_dropped_total\{reason="slow consumer"\} 1$/m)
        // The node is fine: the agent's subscription was released.
        assert.deepEqual(node.agents().find(a => a.name === 'sink')?.subscriptions, [])
      } finally {
        await api.close()
      }
    })
  })

  it('closes connections with 1001 when the node stops', async () => {
    const other = await nodes.start({ api: '127.0.0.1:0' })
    const c = await WsClient.open(other.status().api as string, { token: other.apiToken })
    clients.push(c)
    await other.stop()
    const closed = await within(c.closed, 10_000, 'close on stop')
    assert.ok([1001, 1006].includes(closed.code), `close code ${closed.code}`)
  })
})

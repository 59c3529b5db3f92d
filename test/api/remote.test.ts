/**
 * Remote agents over the WebSocket API: attach with proof of key possession (and refusal
 * of forged proofs, foreign envelopes and conflicts), then a remote agent publishing,
 * receiving and answering requests across two nodes, exactly like an in-process agent.
 * Also: the SDK refuses to sign anything but its own record for a node that asks.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { WebSocketServer } from 'ws'
import { connect, type RemoteAgent } from '../../src/sdk/remote.ts'
import { generateAgentKey, verifyByDid, type AgentKey } from '../../src/core/keys.ts'
import { signEnvelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import * as errors from '../../src/core/errors.ts'
import { attachSigningInput } from '../../src/api/protocol.ts'
import { ConflictError } from '../../src/api/errors.ts'
import { agentRecordSigningInput } from '../../src/net/records.ts'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, Message, Subscription } from '../../src/node/types.ts'
import { Nodes, WsClient, within } from '../helpers/api.ts'

function fields (key: AgentKey, over: Partial<EnvelopeFields> = {}): EnvelopeFields {
  return { v: 1, net: 'fedmesh' as EnvelopeFields['net'], mode: 'topic', type: 'inform', from: key.id, topic: 'remote/test' as EnvelopeFields['topic'], ts: Date.now(), ttl: 60, hops: 8, prio: 1, ct: 'application/json', body: new TextEncoder().encode('1'), ...over }
}

async function next (sub: Subscription, what: string, ms = 10_000): Promise<Message> {
  const it = sub[Symbol.asyncIterator]()
  const r = await within(it.next(), ms, what)
  if (r.done === true) throw new Error(`subscription ended waiting for ${what}`)
  return r.value
}

/** Waits (bounded) until `node` routes messages on `topic` to the node `peer` (its interest arrived). */
async function interestReached (node: MeshNodeImpl, topic: string, peer: string): Promise<void> {
  for (let i = 0; i < 200 && !node.topicInterest(topic).includes(peer); i++) await new Promise(resolve => setTimeout(resolve, 50))
  assert.ok(node.topicInterest(topic).includes(peer), `interest in ${topic} reached the publisher`)
}

async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise(resolve => srv.close(resolve))
  return port
}

describe('remote agents', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  const remotes: RemoteAgent[] = []
  const raws: WsClient[] = []
  let a: MeshNodeImpl
  let b: MeshNodeImpl
  let url: string

  before(async () => {
    a = await nodes.start({ api: '127.0.0.1:0' })
    url = a.status().api as string
    b = await nodes.start({ bootstrap: [a.multiaddrs()[0]] })
  })
  after(async () => {
    for (const r of remotes) await r.close().catch(() => {})
    for (const c of raws) c.close()
    await nodes.stopAll()
  })

  describe('attach', () => {
    it('attaches with a proof of key possession; the node lists it as remote', async () => {
      const key = generateAgentKey()
      const r = await connect({ url, token: a.apiToken, key, name: 'rem1', capabilities: ['echo'] })
      remotes.push(r)
      assert.equal(r.id, key.id)
      assert.equal(r.network, 'fedmesh')
      assert.equal(r.nodePeerId, a.peerId)
      const info = a.agents().find(x => x.id === key.id)
      assert.deepEqual({ kind: info?.kind, name: info?.name }, { kind: 'remote', name: 'rem1' })
      // Its record was signed by the agent (through the node's sign request) and verifies.
      const rec = await a.findAgent(key.id)
      assert.equal(rec.home[0].id, a.peerId)
      assert.deepEqual(rec.caps, ['echo'])
    })

    it('refuses a forged proof: wrong key, or the nonce signed without the domain', async () => {
      const victim = generateAgentKey()
      const forger = generateAgentKey()
      for (const sign of [(n: Uint8Array) => forger.sign(attachSigningInput(n)), (n: Uint8Array) => victim.sign(n)]) {
        const c = await WsClient.open(url, { token: a.apiToken })
        raws.push(c)
        c.send({ op: 'attach', rid: 7, agent: victim.id })
        const ch = await c.next(m => m.op === 'challenge' && m.rid === 7, 'challenge')
        const nonce = new Uint8Array(Buffer.from(ch.nonce, 'base64'))
        assert.equal(nonce.length, 32)
        const r = await c.call({ op: 'prove', rid: 7, sig: Buffer.from(sign(nonce)).toString('base64') })
        assert.equal(r.ok, false)
        assert.equal(r.error.code, 'UnauthorizedError')
        const closed = await within(c.closed, 10_000, 'connection closed after a failed proof')
        assert.equal(closed.code, 1008)
        assert.equal(a.agents().some(x => x.id === victim.id), false)
      }
    })

    it('refuses a second attach of the same agent, a bad token, and reports an unreachable node', async () => {
      const key = generateAgentKey()
      const first = await connect({ url, token: a.apiToken, key })
      remotes.push(first)
      await assert.rejects(connect({ url, token: a.apiToken, key }), ConflictError)
      await assert.rejects(connect({ url, token: 'wrong-token-wrong-token', key: generateAgentKey() }), errors.UnauthorizedError)
      await assert.rejects(connect({ url: `http://127.0.0.1:${await freePort()}`, token: a.apiToken, key: generateAgentKey() }), errors.UnreachableError)
      // A closed agent frees its id for a new attach.
      await first.close()
      assert.equal(a.agents().some(x => x.id === key.id), false)
      const again = await connect({ url, token: a.apiToken, key })
      remotes.push(again)
      assert.ok(a.agents().some(x => x.id === key.id))
    })

    it('refuses envelopes that are not the attached agent\'s, or not valid, and counts them', async () => {
      const key = generateAgentKey()
      const c = await WsClient.open(url, { token: a.apiToken })
      raws.push(c)
      c.send({ op: 'attach', rid: 1, agent: key.id })
      const ch = await c.next(m => m.op === 'challenge', 'challenge')
      const proof = key.sign(attachSigningInput(new Uint8Array(Buffer.from(ch.nonce, 'base64'))))
      c.send({ op: 'prove', rid: 1, sig: Buffer.from(proof).toString('base64') })
      // The node asks the agent to sign its record before the attach completes.
      const sign = await c.next(m => m.op === 'sign', 'sign request')
      c.send({ op: 'signed', rid: sign.rid, sig: Buffer.from(key.sign(new Uint8Array(Buffer.from(sign.input, 'base64')))).toString('base64') })
      const attached = await c.next(m => m.op === 'result' && m.rid === 1, 'attach result')
      assert.equal(attached.ok, true)

      const published = a.status().counters.published
      const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64')
      const other = generateAgentKey()
      const foreign = await c.call({ op: 'submit', rid: 2, env: b64(signEnvelope(fields(other), other).bytes) })
      assert.equal(foreign.error.code, 'UnauthorizedError')
      const garbage = await c.call({ op: 'submit', rid: 3, env: b64(new Uint8Array([1, 2, 3, 4])) })
      assert.equal(garbage.error.code, 'InvalidEnvelopeError')
      assert.equal(garbage.error.details.reason, 'malformed')
      const tampered = signEnvelope(fields(key), key).bytes.slice()
      tampered[tampered.length - 1] ^= 1
      const bad = await c.call({ op: 'submit', rid: 4, env: b64(tampered) })
      assert.equal(bad.error.code, 'InvalidEnvelopeError')
      const wrongNet = await c.call({ op: 'submit', rid: 5, env: b64(signEnvelope(fields(key, { net: 'othernet' as EnvelopeFields['net'] }), key).bytes) })
      assert.equal(wrongNet.error.details.reason, 'wrong-network')
      const expired = await c.call({ op: 'submit', rid: 6, env: b64(signEnvelope(fields(key, { ts: Date.now() - 3_600_000, ttl: 1 }), key).bytes) })
      assert.equal(expired.error.details.reason, 'expired')
      assert.equal(a.status().counters.published, published, 'nothing was routed')
      const ok = await c.call({ op: 'submit', rid: 8, env: b64(signEnvelope(fields(key), key).bytes) })
      assert.equal(ok.ok, true)
      assert.match(ok.result.id, /^b/)
      const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${a.apiToken}` } })).text()
      assert.match(metrics, /^fedmesh_api_rejections_total\{reason="foreign-sender"\} 1$/m)
      assert.match(metrics, /^fedmesh_api_rejections_total\{reason="malformed"\} 1$/m)
    })
  })

  describe('messaging across nodes', () => {
    let remote: RemoteAgent
    let onB: Agent
    let onA: Agent

    before(async () => {
      remote = await connect({ url, token: a.apiToken, key: generateAgentKey(), name: 'remote' })
      remotes.push(remote)
      onB = await b.agent('bee')
      onA = await a.agent('ay')
      await b.waitForAgent(remote.id, { signal: AbortSignal.timeout(30_000) })
      await a.waitForAgent(onB.id, { signal: AbortSignal.timeout(30_000) })
      // The link between the two nodes is up once a probe gets across.
      const probe = onB.subscribe('probe/#')
      // One pending read across attempts: a read abandoned at each timeout would swallow
      // the probe that finally arrives.
      const first = probe[Symbol.asyncIterator]().next()
      let got = false
      for (let i = 0; i < 100 && !got; i++) {
        await remote.publish('probe/x', i)
        got = await within(first, 200, 'probe').then(() => true, () => false)
      }
      probe.unsubscribe()
      assert.ok(got, 'gossip mesh formed')
    })

    it('a remote agent publishes; agents on both nodes receive it', async () => {
      const subB = onB.subscribe('weather/#')
      const subA = onA.subscribe('weather/*')
      await interestReached(a, 'weather/paris', b.peerId)
      const { id } = await remote.publish('weather/paris', { tempC: 21 })
      for (const [sub, where] of [[subB, 'node B'], [subA, 'node A']] as const) {
        const m = await next(sub, `publication on ${where}`)
        assert.equal(m.id, id)
        assert.equal(m.from, remote.id)
        assert.deepEqual(m.data(), { tempC: 21 })
      }
      subA.unsubscribe()
      subB.unsubscribe()
    })

    it('a remote agent publishes buffered batches: every envelope accepted and delivered in order', async () => {
      const sub = onB.subscribe('batch/#')
      await interestReached(a, 'batch/x', b.peerId)
      // More than the node accepts in flight per connection (256): publishBuffered says when to drain.
      const n = 400
      let drains = 0
      for (let i = 0; i < n; i++) if (!remote.publishBuffered('batch/x', { i })) { drains++; await remote.drain() }
      await remote.drain()
      const got: Message[] = []
      for (let i = 0; i < n; i++) got.push(await next(sub, `batch message ${i}`))
      assert.deepEqual(got.map(m => (m.data() as { i: number }).i), Array.from({ length: n }, (_, i) => i))
      assert.ok(drains > 0)
      assert.ok(got.every(m => (m.envelope.bp?.n ?? 0) > 1), 'batch-signed')
      sub.unsubscribe()
    })

    it('a remote agent receives publications and direct messages', async () => {
      const sub = remote.subscribe('alerts/#')
      const inbox = remote.messages()
      await remote.synced()
      assert.ok(a.agents().find(x => x.id === remote.id)?.subscriptions.includes('alerts/#'))
      await interestReached(b, 'alerts/fire', a.peerId)
      const { id } = await onB.publish('alerts/fire', { level: 3 })
      const m = await next(sub, 'publication from node B')
      assert.equal(m.id, id)
      assert.deepEqual(m.data(), { level: 3 })
      const sent = await onB.send(remote.id, { hello: 'remote' }, { confirm: true })
      assert.deepEqual(sent.confirmed, [remote.id])
      const d = await next(inbox, 'direct message')
      assert.equal(d.from, onB.id)
      assert.deepEqual(d.data(), { hello: 'remote' })
      sub.unsubscribe()
      inbox.unsubscribe()
      await remote.synced()
      assert.deepEqual(a.agents().find(x => x.id === remote.id)?.subscriptions, [])
    })

    it('a remote agent answers requests from both nodes, and makes its own', async () => {
      await assert.rejects(onB.request(remote.id, 1, { timeout: 5000 }), errors.NoRespondersError)
      const off = remote.handle(async (m) => ({ echo: m.data(), by: 'remote' }))
      await remote.synced()
      assert.equal(a.agents().find(x => x.id === remote.id)?.handlesRequests, true)
      const fromB = await onB.request(remote.id, { q: 'b' }, { timeout: 10_000 })
      assert.deepEqual(fromB.data(), { echo: { q: 'b' }, by: 'remote' })
      assert.equal(fromB.from, remote.id)
      const fromA = await onA.request(remote.id, { q: 'a' }, { timeout: 10_000 })
      assert.deepEqual(fromA.data(), { echo: { q: 'a' }, by: 'remote' })

      onB.handle(async (m) => ({ answer: (m.data() as number) * 2 }))
      const reply = await remote.request(onB.id, 21, { timeout: 10_000 })
      assert.deepEqual(reply.data(), { answer: 42 })
      await assert.rejects(remote.request(onA.id, 1, { timeout: 5000 }), errors.NoRespondersError)

      off()
      await remote.synced()
      await assert.rejects(onB.request(remote.id, 1, { timeout: 5000 }), errors.NoRespondersError)
    })

    it('a remote handler that throws gives the requester a RemoteError', async () => {
      const off = remote.handle(() => { throw Object.assign(new Error('remote says no'), { code: 'Nope' }) })
      await remote.synced()
      await assert.rejects(onB.request(remote.id, 1, { timeout: 10_000 }), (err: errors.FedmeshError) => {
        assert.ok(err instanceof errors.RemoteError)
        assert.equal(err.message, 'remote says no')
        return true
      })
      off()
    })

    it('streams work both ways across the WebSocket and the mesh, chunks larger than a WS frame included', async () => {
      // remote (on node A) → in-process agent on node B, which echoes
      const offB = onB.onStream(async (s) => { for await (const c of s) await s.write(c); await s.close() })
      const st = await remote.openStream(onB.id, 'echo')
      const chunk = new Uint8Array(300 * 1024).map((_, i) => i & 0xff)
      const writing = (async () => { for (let i = 0; i < 8; i++) await st.write(chunk); await st.close() })()
      let echoed = 0
      let sum = 0
      for await (const c of st) { echoed += c.length; for (let i = 0; i < c.length; i += 4096) sum += c[i] }
      await writing
      assert.equal(echoed, 8 * 300 * 1024)
      let want = 0
      for (let k = 0; k < 8; k++) for (let i = 0; i < chunk.length; i += 4096) want += chunk[i]
      assert.equal(sum, want, 'bytes arrive intact and in order')
      offB()
      // an agent on node B → the remote agent, which counts and answers
      const offR = remote.onStream(async (s, open) => {
        let n = 0
        for await (const c of s) n += c.length
        await s.write(new TextEncoder().encode(JSON.stringify({ n, from: open.from })))
        await s.close()
      })
      await remote.synced()
      const s2 = await onB.openStream(remote.id, 'count')
      for (let i = 0; i < 16; i++) await s2.write(new Uint8Array(64 * 1024))
      await s2.close()
      let reply = ''
      for await (const c of s2) reply += new TextDecoder().decode(c)
      assert.deepEqual(JSON.parse(reply), { n: 16 * 64 * 1024, from: onB.id })
      offR()
      await remote.synced()
      await assert.rejects(onB.openStream(remote.id, 'again'), errors.NoRespondersError)
    })

    it('a remote reader that does not read holds the writer back (credit), then everything arrives', async () => {
      let release!: () => void
      const gate = new Promise<void>(resolve => { release = resolve })
      let got = 0
      const done = Promise.withResolvers<void>()
      const off = remote.onStream(async (s) => {
        await gate
        for await (const c of s) got += c.length
        done.resolve()
      })
      await remote.synced()
      const s = await onB.openStream(remote.id, 'slow')
      const CHUNKS = 256
      const SIZE = 64 * 1024 // 16 MiB in all: far more than every buffer on the way together
      let written = 0
      const writing = (async () => { for (let i = 0; i < CHUNKS; i++) { await s.write(new Uint8Array(SIZE)); written++ } await s.close() })()
      // Wait until the writer stops making progress, then check it stopped well short.
      let last = -1
      for (let i = 0; i < 50 && written !== last; i++) { last = written; await new Promise(resolve => setTimeout(resolve, 100)) }
      assert.ok(written < CHUNKS / 2, `writer held back by the reader (${written} of ${CHUNKS} chunks written)`)
      release()
      await within(writing, 30_000, 'all writes')
      await within(done.promise, 30_000, 'all reads')
      assert.equal(got, CHUNKS * SIZE)
      off()
    })

    it('when the node goes away, the remote agent sees it: disconnected resolves, subscriptions end', async () => {
      const c = await nodes.start({ api: '127.0.0.1:0' })
      const r = await connect({ url: c.status().api as string, token: c.apiToken, key: generateAgentKey() })
      const sub = r.subscribe('x/#')
      await r.synced()
      await c.stop()
      const info = await within(r.disconnected, 10_000, 'disconnected')
      assert.ok([1001, 1006].includes(info.code))
      const it = sub[Symbol.asyncIterator]()
      assert.equal((await within(it.next(), 20_000, 'subscription ends')).done, true)
      await assert.rejects(r.publish('x/y', 1), (err: errors.FedmeshError) => err.code === 'ClosedError')
    })
  })

  describe('what the SDK signs for a node', () => {
    it('signs its own record for the node\'s network, and refuses anything else', async () => {
      const key = generateAgentKey()
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
      await new Promise(resolve => wss.once('listening', resolve))
      const signed = new Map<number, { sig?: string, error?: { code: string } }>()
      wss.on('connection', (ws) => {
        ws.send(JSON.stringify({ op: 'hello', v: 1, network: 'fedmesh', peerId: 'fake' }))
        ws.on('message', (raw) => {
          const m = JSON.parse(raw.toString())
          if (m.op === 'detach') ws.send(JSON.stringify({ op: 'result', rid: m.rid, ok: true, result: null }))
          else if (m.op === 'attach') ws.send(JSON.stringify({ op: 'challenge', rid: m.rid, nonce: Buffer.alloc(32, 1).toString('base64') }))
          else if (m.op === 'prove') {
            const record = { v: 1 as const, net: 'fedmesh' as never, agent: key.id, home: [{ id: 'fake', addrs: [] }], caps: [], seq: 1, exp: Date.now() + 60_000 }
            const asks = [
              // An envelope signing input: a node must never get the agent to sign messages.
              new Uint8Array(Buffer.concat([Buffer.from('fedmesh/envelope/v1'), Buffer.alloc(34, 7)])),
              agentRecordSigningInput({ ...record, agent: generateAgentKey().id }),
              agentRecordSigningInput({ ...record, net: 'elsewhere' as never }),
              agentRecordSigningInput(record)
            ]
            asks.forEach((input, i) => { ws.send(JSON.stringify({ op: 'sign', rid: i + 1, input: Buffer.from(input).toString('base64') })) })
            ws.on('message', (raw2) => {
              const s = JSON.parse(raw2.toString())
              if (s.op !== 'signed') return
              signed.set(s.rid, s)
              if (signed.size === asks.length) {
                const sig = new Uint8Array(Buffer.from(signed.get(4)?.sig ?? '', 'base64'))
                assert.ok(verifyByDid(key.id, asks[3], sig), 'own record signed correctly')
                ws.send(JSON.stringify({ op: 'result', rid: m.rid, ok: true, result: {} }))
              }
            })
          }
        })
      })
      try {
        const port = (wss.address() as { port: number }).port
        const r = await connect({ url: `http://127.0.0.1:${port}`, token: 'irrelevant-token-here', key })
        assert.equal(signed.get(1)?.error?.code, 'InvalidArgumentError')
        assert.equal(signed.get(2)?.error?.code, 'InvalidArgumentError')
        assert.equal(signed.get(3)?.error?.code, 'InvalidArgumentError')
        assert.equal(typeof signed.get(4)?.sig, 'string')
        await r.close()
      } finally {
        for (const c of wss.clients) c.terminate()
        await new Promise(resolve => wss.close(resolve))
      }
    })
  })
})

/**
 * An adversarial peer — a plain js-libp2p node, no fedmesh code on its side of the wire
 * except the envelope signer it uses to craft near-valid messages — sends forged,
 * tampered, expired, future-dated, oversized, wrong-network, hop-exceeded, duplicate and
 * garbage frames on the direct-message protocol, and forged, tampered, misrouted and
 * replayed topic data frames, forged, re-rooted, truncated, mixed-signer and oversized batch
 * frames, and forged interest records on the dissemination frames.
 * Each is rejected with its reason; the node keeps serving honest traffic.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import * as lp from 'it-length-prefixed'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import { base58btc } from 'multiformats/bases/base58'
import type { Stream } from '@libp2p/interface'
import { generateAgentKey, signEnvelope, signEnvelopes, type AgentId, type EnvelopeFields, type NetworkId } from '../../src/index.ts'
import { Mesh, type NodeProc } from '../helpers/mesh.ts'
import { createHash } from 'node:crypto'

const leafHash = (unsigned: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(unsigned).digest())

const NET = 'advnet' as NetworkId
const MAX = 64 * 1024

describe('adversarial peer', { timeout: 120_000 }, () => {
  const mesh = new Mesh()
  let target: NodeProc
  let honest: NodeProc
  let victim: AgentId
  let adversary: Libp2p<any>
  let stream: Stream
  const mallory = generateAgentKey()
  const alice = generateAgentKey()

  const fields = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => ({
    v: 1, net: NET, mode: 'direct', type: 'inform', from: mallory.id, to: [victim], ts: Date.now(), ttl: 60, hops: 4, prio: 1,
    ct: 'application/json', body: new TextEncoder().encode('{"evil":true}'), ...over
  })
  const frame = (e: Uint8Array, h = 1): Uint8Array => lp.encode.single(dagCbor.encode({ t: 1, h, e })).subarray()
  const rejections = async (): Promise<Record<string, number>> => (await target.call('rejections')).counts

  async function expectRejection (reason: string, send: () => void | Promise<void>): Promise<void> {
    const before = (await rejections())[reason]
    await send()
    const deadline = Date.now() + 10_000
    while ((await rejections())[reason] <= before) {
      if (Date.now() > deadline) assert.fail(`no ${reason} rejection counted`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  before(async () => {
    target = await mesh.start({ network: NET, maxMessageBytes: MAX })
    honest = await mesh.start({ network: NET })
    victim = await target.call('agent', { name: 'victim' })
    await target.call('inbox', { agent: 'victim', sub: 'inbox' })
    await target.call('subscribe', { agent: 'victim', pattern: '#', sub: 'all' })
    await honest.call('agent', { name: 'alice' })
    await honest.call('waitForAgent', { id: victim })
    adversary = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify({ protocolPrefix: `fedmesh/${NET}` }), pubsub: gossipsub({ globalSignaturePolicy: 'StrictNoSign', allowPublishToZeroTopicPeers: true }) }
    })
    stream = await adversary.dialProtocol(multiaddr(target.addresses[0]), `/fedmesh/${NET}/msg/1.0.0`)
  })

  after(async () => {
    await adversary?.stop()
    await mesh.stopAll()
  })

  it('rejects a forged envelope (signed by another key than `from`)', async () => {
    const env = signEnvelope(fields(), mallory)
    const { sig, bytes: _b, id: _i, ...rest } = env
    const forged = dagCbor.encode({ ...rest, from: alice.id, sig })
    await expectRejection('bad-signature', () => { stream.send(frame(forged)) })
  })

  it('rejects a tampered envelope', async () => {
    const env = signEnvelope(fields(), mallory)
    const tampered = new Uint8Array(env.bytes)
    const at = Buffer.from(tampered).indexOf(Buffer.from('evil'))
    tampered[at] = 'E'.charCodeAt(0)
    await expectRejection('bad-signature', () => { stream.send(frame(tampered)) })
  })

  it('rejects expired, future-dated, wrong-network and hop-exceeded envelopes', async () => {
    const expired = signEnvelope(fields({ ts: Date.now() - 3_600_000, ttl: 60 }), mallory)
    await expectRejection('expired', () => { stream.send(frame(expired.bytes)) })
    const future = signEnvelope(fields({ ts: Date.now() + 3_600_000 }), mallory)
    await expectRejection('from-future', () => { stream.send(frame(future.bytes)) })
    const other = signEnvelope(fields({ net: 'othernet' as NetworkId }), mallory)
    await expectRejection('wrong-network', () => { stream.send(frame(other.bytes)) })
    const hops = signEnvelope(fields({ hops: 2 }), mallory)
    await expectRejection('hop-limit', () => { stream.send(frame(hops.bytes, 3)) })
  })

  it('rejects oversized envelopes and non-canonical encodings', async () => {
    const big = signEnvelope(fields({ ct: 'application/octet-stream', body: new Uint8Array(MAX + 1024) }), mallory)
    await expectRejection('too-large', () => { stream.send(frame(big.bytes)) })
    const env = signEnvelope(fields(), mallory)
    // Same content with a non-minimal integer encoding of `v` (0x18 0x01 instead of 0x01).
    const hex = Buffer.from(env.bytes).toString('hex').replace('617601', '61761801')
    await expectRejection('non-canonical', () => { stream.send(frame(Buffer.from(hex, 'hex'))) })
  })

  it('rejects replays as duplicates and garbage frames as malformed', async () => {
    const env = signEnvelope(fields({ body: new TextEncoder().encode('{"once":true}') }), mallory)
    await expectRejection('duplicate', async () => {
      stream.send(frame(env.bytes))
      stream.send(frame(env.bytes))
    })
    await expectRejection('malformed', () => { stream.send(lp.encode.single(new Uint8Array([0xff, 0x00, 0x13, 0x37])).subarray()) })
    await expectRejection('malformed', () => { stream.send(frame(new Uint8Array([0xa1, 0x61, 0x78]))) })
  })

  it('rejects forged, tampered, misrouted and hop-exceeded topic data frames, and never delivers them', async () => {
    const data = (e: Uint8Array, h = 1): Uint8Array => lp.encode.single(dagCbor.encode({ t: 6, h, e })).subarray()
    const topicFields = (over: Partial<EnvelopeFields> = {}): EnvelopeFields => fields({ mode: 'topic', to: undefined, topic: 'news/x' as EnvelopeFields['topic'], ...over })
    const forged = signEnvelope(topicFields(), mallory)
    const { sig, bytes: _b, id: _i, ...rest } = forged
    await expectRejection('bad-signature', () => { stream.send(data(dagCbor.encode({ ...rest, from: alice.id, sig }))) })
    const tampered = new Uint8Array(signEnvelope(topicFields(), mallory).bytes)
    tampered[Buffer.from(tampered).indexOf(Buffer.from('evil'))] = 'E'.charCodeAt(0)
    await expectRejection('bad-signature', () => { stream.send(data(tampered)) })
    // A batch-signed envelope whose proof was altered: the root it leads to was never signed.
    const [, second] = signEnvelopes([topicFields(), topicFields({ body: new TextEncoder().encode('{"evil":2}') })], mallory)
    const { sig: bsig, bp, bytes: _bb, id: _bi, ...brest } = second
    const badPath = (bp?.path ?? []).map(h => new Uint8Array(h))
    badPath[0][0] ^= 1
    await expectRejection('bad-signature', () => { stream.send(data(dagCbor.encode({ ...brest, sig: bsig, bp: [bp?.n, bp?.i, badPath] }))) })
    // A direct envelope belongs in a message frame, not a data frame.
    await expectRejection('bad-field', () => { stream.send(data(signEnvelope(fields(), mallory).bytes)) })
    await expectRejection('hop-limit', () => { stream.send(data(signEnvelope(topicFields({ hops: 1 }), mallory).bytes, 2)) })
    await expectRejection('malformed', () => { stream.send(lp.encode.single(dagCbor.encode({ t: 6, h: 'x', e: 1 })).subarray()) })
    assert.ok(!target.received('all').some(m => m.from === alice.id || m.data?.evil === 'E'), 'forged or tampered topic message never delivered')
  })

  it('rejects forged, wrong-root, truncated, mixed-signer and oversized batch frames; delivers a valid one once', async () => {
    const topicFields = (body: string, over: Partial<EnvelopeFields> = {}): EnvelopeFields =>
      fields({ mode: 'topic', to: undefined, topic: 'news/batch' as EnvelopeFields['topic'], body: new TextEncoder().encode(body), ...over })
    const unsignedOf = (e: { sig: unknown, bp?: unknown, bytes: unknown, id: unknown }): Uint8Array => {
      const { sig: _s, bp: _p, bytes: _b, id: _i, ...f } = e as Record<string, unknown>
      return dagCbor.encode(f)
    }
    const batchFrame = (s: Uint8Array, l: Uint8Array[], h = 1): Uint8Array => lp.encode.single(dagCbor.encode({ t: 7, h, s, l })).subarray()
    const envs = signEnvelopes([0, 1, 2, 3].map(i => topicFields(`{"b":${i}}`)), mallory)
    const leaves = envs.map(unsignedOf)
    const sig = envs[0].sig
    // A leaf changed after signing: the root differs, the signature does not verify.
    const forged = leaves.map(l => new Uint8Array(l))
    forged[2][Buffer.from(forged[2]).indexOf(Buffer.from('"b":2')) + 4] = '9'.charCodeAt(0)
    await expectRejection('bad-signature', () => { stream.send(batchFrame(sig, forged)) })
    // The leaves of one batch under the signature of another.
    const other = signEnvelopes([topicFields('{"o":1}'), topicFields('{"o":2}')], mallory)
    await expectRejection('bad-signature', () => { stream.send(batchFrame(other[0].sig, leaves)) })
    // Truncated: a leaf left out (neither carried nor given by its hash).
    await expectRejection('bad-signature', () => { stream.send(batchFrame(sig, leaves.slice(0, 3))) })
    // Only hashes, or a single leaf: not a batch frame.
    await expectRejection('malformed', () => { stream.send(batchFrame(sig, leaves.map(() => new Uint8Array(32)))) })
    await expectRejection('malformed', () => { stream.send(batchFrame(sig, leaves.slice(0, 1))) })
    // Envelopes of two signers under one signature.
    const aliceLeaf = unsignedOf(signEnvelope(topicFields('{"a":1}', { from: alice.id }), alice))
    await expectRejection('bad-field', () => { stream.send(batchFrame(sig, [leaves[0], aliceLeaf])) })
    // An envelope above the node's limit inside a batch, and a leaf carrying its own signature.
    const big = signEnvelopes([topicFields(JSON.stringify({ pad: 'x'.repeat(MAX) })), topicFields('{"s":1}')], mallory)
    await expectRejection('too-large', () => { stream.send(batchFrame(big[0].sig, big.map(unsignedOf))) })
    await expectRejection('bad-field', () => { stream.send(batchFrame(sig, [envs[0].bytes, ...leaves.slice(1)])) })
    // The valid frame, sent twice, with leaf 1 given by its hash only: 3 envelopes delivered once each.
    const partial = leaves.map((l, i) => i === 1 ? leafHash(l) : l)
    stream.send(batchFrame(sig, partial)); stream.send(batchFrame(sig, partial))
    const sentinel = signEnvelope(topicFields('{"end":1}'), mallory)
    stream.send(lp.encode.single(dagCbor.encode({ t: 6, h: 1, e: sentinel.bytes })).subarray())
    await target.until(() => target.received('all').some(m => m.id === sentinel.id), 'the sentinel')
    const got = target.received('all').filter(m => envs.some(e => e.id === m.id)).map(m => m.id)
    assert.deepEqual(got, [envs[0].id, envs[2].id, envs[3].id], 'the carried envelopes, once each, in order')
    assert.ok(!target.received('all').some(m => m.data?.b === 9), 'the forged leaf never delivered')
  })

  it('delivers a replayed topic data frame once (copies are dropped as duplicates)', async () => {
    const env = signEnvelope(fields({ mode: 'topic', to: undefined, topic: 'news/replay' as EnvelopeFields['topic'] }), mallory)
    const data = lp.encode.single(dagCbor.encode({ t: 6, h: 1, e: env.bytes })).subarray()
    stream.send(data); stream.send(data); stream.send(data)
    // Frames on one stream arrive in order: once this one is delivered, the copies were handled.
    const sentinel = signEnvelope(fields({ mode: 'topic', to: undefined, topic: 'news/sentinel' as EnvelopeFields['topic'] }), mallory)
    stream.send(lp.encode.single(dagCbor.encode({ t: 6, h: 1, e: sentinel.bytes })).subarray())
    await target.until(() => target.received('all').some(m => m.id === sentinel.id), 'the sentinel')
    assert.equal(target.received('all').filter(m => m.id === env.id).length, 1)
  })

  it('refuses interest records not signed by their origin, and malformed dissemination frames', async () => {
    const honestPeer = (await honest.call('status')).peerId as string
    // Claims that the honest node wants everything, signed by a key that is not its own.
    const origin = base58btc.decode(`z${honestPeer}`)
    const fake = mallory.sign(new TextEncoder().encode('not the record'))
    const record = [origin, Date.now(), ['#'], 0, 0, fake]
    await expectRejection('bad-signature', () => { stream.send(lp.encode.single(dagCbor.encode({ t: 3, r: [record] })).subarray()) })
    assert.ok(!(await target.call('interest', { topic: 'evil/topic' })).includes(honestPeer), 'forged interest never routed')
    await expectRejection('malformed', () => { stream.send(lp.encode.single(dagCbor.encode({ t: 3, r: 'nope' })).subarray()) })
    await expectRejection('malformed', () => { stream.send(lp.encode.single(dagCbor.encode({ t: 4, l: [[origin, -1, 0]] })).subarray()) })
    await expectRejection('malformed', () => { stream.send(lp.encode.single(dagCbor.encode({ t: 5, q: [['x']] })).subarray()) })
  })

  it('ignores gossip on the old topic-message gossipsub topic', async () => {
    // Topic traffic no longer uses gossipsub: a gossiped envelope reaches no subscriber.
    await adversary.dial(multiaddr(target.addresses[0]))
    const pubsub = adversary.services.pubsub
    const topic = `/fedmesh/${NET}/mesh/1`
    pubsub.subscribe(topic)
    const env = signEnvelope(fields({ mode: 'topic', to: undefined, topic: 'news/gossip' as EnvelopeFields['topic'] }), mallory)
    for (let i = 0; i < 5; i++) {
      await pubsub.publish(topic, env.bytes).catch(() => {})
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.ok(!target.received('all').some(m => m.id === env.id), 'gossiped topic message not delivered')
  })

  it('keeps serving honest traffic and records every rejection with its reason', async () => {
    assert.equal(target.received('inbox').filter(m => m.from === mallory.id).length, 1, 'only the one valid mallory message was delivered')
    await honest.call('send', { agent: 'alice', to: victim, data: { honest: true }, options: { confirm: true } })
    await target.until(() => target.received('inbox').some(m => m.data?.honest === true), 'honest message')
    const { counts, recent } = await target.call('rejections')
    for (const reason of ['bad-signature', 'bad-field', 'expired', 'from-future', 'wrong-network', 'hop-limit', 'too-large', 'non-canonical', 'duplicate', 'malformed']) {
      assert.ok(counts[reason] > 0, `${reason} counted`)
    }
    assert.ok(recent.length > 0 && recent.every((r: any) => typeof r.reason === 'string' && typeof r.detail === 'string'))
  })
})

/**
 * The dissemination frames on a FrameLink (PROTOCOL.md section 8.2): control frames map to
 * core frames and back, bounds are enforced at decode, interest records carry the origin
 * node's signature and nothing else passes.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { agentKeyFromSeed } from '../../src/core/keys.ts'
import {
  RecordSignatureCache, decodeControlFrame, ed25519KeyOfNode, encodeControlFrame, interestSigningInput, nodeIdFromBytes,
  nodeIdToBytes, verifyInterestRecord
} from '../../src/dissemination/wire.ts'
import { decodeFrame, type ControlFrame } from '../../src/net/frames.ts'
import type { InterestRecord, NodeId } from '../../src/dissemination/index.ts'
import type { TopicPattern } from '../../src/core/topics.ts'

const limits = { maxRecordsPerFrame: 4, maxPatternsPerRecord: 3 }
const nodeKey = (n: number) => {
  const key = agentKeyFromSeed(new Uint8Array(32).fill(n))
  const id = nodeIdFromBytes(new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...key.publicKey]))
  return { key, id }
}
const signed = (n: number, seq: number, patterns: string[]): InterestRecord => {
  const { key, id } = nodeKey(n)
  const unsigned = { origin: id, seq, patterns: patterns as TopicPattern[] }
  return { ...unsigned, hops: 2, slot: 7, sig: key.sign(interestSigningInput(unsigned)) }
}
const roundTrip = (bytes: Uint8Array) => decodeControlFrame(decodeFrame(bytes) as ControlFrame, limits)

describe('dissemination wire frames', () => {
  test('node ids are peer-id bytes; Ed25519 ids yield their key', () => {
    const { key, id } = nodeKey(1)
    assert.match(id, /^12D3KooW/)
    assert.equal(nodeIdFromBytes(nodeIdToBytes(id)), id)
    assert.deepEqual(ed25519KeyOfNode(id), key.publicKey)
    assert.equal(ed25519KeyOfNode('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N' as NodeId), undefined)
  })

  test('interest, lost and request frames round-trip', () => {
    const r = signed(1, 42, ['a/#', 'b/*'])
    assert.deepEqual(roundTrip(encodeControlFrame({ kind: 'interest', records: [r] })), { kind: 'interest', records: [r] })
    assert.deepEqual(roundTrip(encodeControlFrame({ kind: 'interest', records: [] })), { kind: 'interest', records: [] })
    const routes = [{ origin: nodeKey(2).id, seq: 5, fd: 3 }, { origin: nodeKey(3).id, seq: 6, fd: 0 }]
    assert.deepEqual(roundTrip(encodeControlFrame({ kind: 'lost', routes })), { kind: 'lost', routes })
    const reqs = routes.map(({ origin, seq }) => ({ origin, seq }))
    assert.deepEqual(roundTrip(encodeControlFrame({ kind: 'request', routes: reqs })), { kind: 'request', routes: reqs })
  })

  test('malformed or oversized control frames are refused', () => {
    const origin = nodeIdToBytes(nodeKey(1).id)
    const sig = new Uint8Array(64)
    const bad: Array<[string, unknown]> = [
      ['records not a list', { t: 3, r: 'x' }],
      ['too many records', { t: 3, r: Array.from({ length: 5 }, () => [origin, 1, [], 0, 0, sig]) }],
      ['too many patterns', { t: 3, r: [[origin, 1, ['a', 'b', 'c', 'd'], 0, 0, sig]] }],
      ['pattern not text', { t: 3, r: [[origin, 1, [1], 0, 0, sig]] }],
      ['record too short', { t: 3, r: [[origin, 1, [], 0, 0]] }],
      ['origin not bytes', { t: 3, r: [['x', 1, [], 0, 0, sig]] }],
      ['origin too long', { t: 3, r: [[new Uint8Array(65), 1, [], 0, 0, sig]] }],
      ['negative seq', { t: 4, l: [[origin, -1, 0]] }],
      ['lost without fd', { t: 4, l: [[origin, 1]] }],
      ['request with extra', { t: 5, q: [[origin, 1, 2]] }],
      ['request not a list', { t: 5, q: 7 }]
    ]
    for (const [name, f] of bad) {
      const frame = decodeFrame(dagCbor.encode(f as Record<string, unknown>))
      assert.ok(frame == null || decodeControlFrame(frame as ControlFrame, limits) === undefined, name)
    }
    assert.equal(decodeFrame(dagCbor.encode({ t: 3 })), undefined, 'no body')
  })

  test('interest records verify only under their origin\'s key, and the cache keeps only successes', () => {
    const r = signed(1, 42, ['a/#'])
    assert.ok(verifyInterestRecord(r))
    assert.ok(!verifyInterestRecord({ ...r, patterns: ['#'] as TopicPattern[] }), 'patterns changed')
    assert.ok(!verifyInterestRecord({ ...r, seq: 43 }), 'seq changed')
    assert.ok(!verifyInterestRecord({ ...r, origin: nodeKey(2).id }), 'claimed by another node')
    assert.ok(!verifyInterestRecord({ ...r, sig: undefined }), 'unsigned')
    // hops and slot are per link, not signed
    assert.ok(verifyInterestRecord({ ...r, hops: 9, slot: 1 }))
    const cache = new RecordSignatureCache(2)
    assert.ok(cache.verify(r))
    assert.ok(cache.verify(r))
    const forged = { ...r, sig: new Uint8Array(64) }
    assert.ok(!cache.verify(forged), 'same origin and seq, another signature')
    assert.ok(cache.verify(signed(2, 1, [])))
    assert.ok(cache.verify(signed(3, 1, [])), 'bounded: evicts the oldest')
  })
})

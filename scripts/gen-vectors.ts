/**
 * Writes test/vectors/envelopes.json: envelopes built from fixed seeds and timestamps.
 * Ed25519 is deterministic, so the bytes, ids and signatures are stable; the unit tests
 * re-derive every vector and docs/PROTOCOL.md quotes them.
 *   node scripts/gen-vectors.ts
 */
import { writeFileSync } from 'node:fs'
import * as dagCbor from '@ipld/dag-cbor'
import { agentKeyFromSeed, signEnvelope, type EnvelopeFields, type AgentId, type NetworkId, type Topic } from '../src/index.ts'

export const SEED_A = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
export const SEED_B = Uint8Array.from({ length: 32 }, (_, i) => i + 0x21)
const a = agentKeyFromSeed(SEED_A)
const b = agentKeyFromSeed(SEED_B)
const TS = 1_767_225_600_000 // 2026-01-01T00:00:00Z
const net = 'fedmesh' as NetworkId
const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))

export function vectorInputs (): Array<{ name: string, fields: EnvelopeFields }> {
  return [
    { name: 'topic publish, JSON body', fields: { v: 1, net, mode: 'topic', type: 'inform', from: a.id, topic: 'weather/paris' as Topic, ts: TS, ttl: 300, hops: 8, prio: 1, ct: 'application/json', body: json({ tempC: 21 }) } },
    { name: 'direct with delivery options', fields: { v: 1, net, mode: 'direct', type: 'request', from: a.id, to: [b.id], replyTo: a.id, conv: 'c-1', schema: 'market/rfp@1.0.0', ts: TS, ttl: 60, hops: 4, prio: 3, dlv: { ack: true, retries: 3, seq: 1 }, ct: 'application/json', body: json({ q: 'price?' }) } },
    { name: 'multicast, binary body', fields: { v: 1, net, mode: 'multicast', type: 'inform', from: b.id, to: [a.id, b.id], ts: TS, ttl: 30, hops: 8, prio: 0, ct: 'application/octet-stream', body: Uint8Array.from([0, 1, 2, 3, 255]) } },
    { name: 'broadcast', fields: { v: 1, net, mode: 'broadcast', type: 'inform', from: b.id, ts: TS, ttl: 10, hops: 8, prio: 2, ct: 'text/plain', body: new TextEncoder().encode('hello mesh') } }
  ]
}

const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex')

export function buildVectors () {
  const keys: Record<string, typeof a> = { [a.id]: a, [b.id]: b }
  return {
    seeds: { A: hex(SEED_A), B: hex(SEED_B) },
    agents: { A: a.id, B: b.id } as Record<string, AgentId>,
    vectors: vectorInputs().map(({ name, fields }) => {
      const env = signEnvelope(fields, keys[fields.from])
      const { bytes, sig, id, ...rest } = env
      return {
        name,
        fields: { ...rest, body: hex(rest.body) },
        unsigned: hex(dagCbor.encode(rest)),
        id,
        sig: hex(sig),
        wire: hex(bytes)
      }
    })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL('../test/vectors/envelopes.json', import.meta.url), JSON.stringify(buildVectors(), null, 2) + '\n')
  process.stdout.write('wrote test/vectors/envelopes.json\n')
}

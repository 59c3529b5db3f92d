/**
 * Writes test/vectors/envelopes.json — envelopes built from fixed seeds, timestamps and
 * bodies — and the generated test-vector section of docs/PROTOCOL.md (between the
 * `BEGIN GENERATED VECTORS` / `END GENERATED VECTORS` markers). Ed25519 is deterministic,
 * so the bytes, ids and signatures are stable; test/unit/envelope.test.ts re-derives every
 * vector and checks that PROTOCOL.md quotes the current values.
 *
 *   node scripts/gen-vectors.ts          # rewrite both files
 *   node scripts/gen-vectors.ts --check  # exit 1 if either file is out of date
 */
import { readFileSync, writeFileSync } from 'node:fs'
import * as dagCbor from '@ipld/dag-cbor'
import { agentKeyFromSeed, type AgentKey } from '../src/core/keys.ts'
import { signEnvelope, signEnvelopes, envelopePayload, messageIdFromBytes, SIGNATURE_DOMAIN, type EnvelopeFields } from '../src/core/envelope.ts'
import { batchSigningInput, leafOf, merkleTree } from '../src/core/batch.ts'
import { interestSigningInput, nodeIdFromBytes } from '../src/dissemination/wire.ts'
import { encodeBatchFrame, encodeDataFrame } from '../src/net/frames.ts'
import type { AgentId, NetworkId, Topic } from '../src/core/ids.ts'

export const SEED_A = Uint8Array.from({ length: 32 }, (_, i) => i + 0x01)
export const SEED_B = Uint8Array.from({ length: 32 }, (_, i) => i + 0x21)
/** The node key of the interest-record vector. */
export const SEED_NODE = Uint8Array.from({ length: 32 }, (_, i) => i + 0x41)
/** 2026-01-01T00:00:00Z */
export const TS = 1_767_225_600_000

const a = agentKeyFromSeed(SEED_A)
const b = agentKeyFromSeed(SEED_B)
const net = 'fedmesh' as NetworkId
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex')
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

/**
 * gzip (zlib level 9) of GZIP_PLAIN. Hard-coded rather than compressed here, so the vector
 * does not depend on the zlib build that runs this script: any gzip member is a valid body.
 */
const GZIP_PLAIN = '{"price":42,"currency":"EUR","lines":[{"sku":"item-0","qty":1},{"sku":"item-1","qty":1},{"sku":"item-2","qty":1},{"sku":"item-3","qty":1},{"sku":"item-4","qty":1},{"sku":"item-5","qty":1},{"sku":"item-6","qty":1},{"sku":"item-7","qty":1}]}'
const GZIP_BODY = '1f8b080000000000020375c9b10a80201405d07fb9b3419a15bcbd1f089aa2491ca492321d44fcf7c66878673d055770c682b412302904eb4d06615a66081ccedb07b4163c7b02c1457b362d04ee9841b28a5f482e14171d179a8b9e8b818bf18badbed9b656dfef000000'

export interface VectorInput { name: string, fields: EnvelopeFields }

export function vectorInputs (): VectorInput[] {
  const direct: EnvelopeFields = {
    v: 1, net, mode: 'direct', type: 'request', from: a.id, to: [b.id], replyTo: a.id, conv: 'c-1', schema: 'market/rfp@1.0.0',
    ts: TS, ttl: 60, hops: 4, prio: 3, dlv: { ack: true, retries: 3, seq: 1 }, ct: 'application/json', body: utf8('{"q":"price?"}')
  }
  const directId = signEnvelope(direct, a).id
  const durable: EnvelopeFields = {
    v: 1, net, mode: 'direct', type: 'inform', from: a.id, to: [b.id], conv: 'order-42',
    ts: TS, ttl: 86400, hops: 8, prio: 1, dlv: { seq: TS * 1000, durable: true }, ct: 'application/json', body: utf8('{"n":1}')
  }
  const durableId = signEnvelope(durable, a).id
  return [
    {
      name: 'topic publish, JSON body',
      fields: { v: 1, net, mode: 'topic', type: 'inform', from: a.id, topic: 'weather/paris' as Topic, ts: TS, ttl: 300, hops: 8, prio: 1, ct: 'application/json', body: utf8('{"tempC":21}') }
    },
    { name: 'direct with delivery options', fields: direct },
    {
      name: 'multicast, binary body',
      fields: { v: 1, net, mode: 'multicast', type: 'inform', from: b.id, to: [a.id, b.id], ts: TS, ttl: 30, hops: 8, prio: 0, ct: 'application/octet-stream', body: Uint8Array.from([0, 1, 2, 3, 255]) }
    },
    {
      // The reply to the direct request above: `corr` is the request's id; `nonce` 1 as on
      // the second envelope its sender created within that millisecond.
      name: 'gzip-compressed reply',
      fields: {
        v: 1, net, mode: 'direct', type: 'inform', from: b.id, to: [a.id], proto: 'fipa-request', conv: 'c-1', corr: directId,
        ts: TS + 1500, nonce: 1, ttl: 60, hops: 4, prio: 2, dlv: { maxMs: 5000, dedup: true }, ct: 'application/json', enc: 'gzip', body: unhex(GZIP_BODY)
      }
    },
    {
      // Store-and-forward: `dlv.durable`, with the sender's clock-based sequence number.
      name: 'durable direct',
      fields: durable
    },
    {
      // The recipient's signed receipt for the durable message above (its id in `ids` and `corr`;
      // `dlv.ack`: the sender's node confirms it once its log has the acknowledgement).
      name: 'delivery receipt',
      fields: {
        v: 1, net, mode: 'direct', type: 'receipt', from: b.id, to: [a.id], corr: durableId,
        ts: TS + 2000, ttl: 3600, hops: 8, prio: 1, dlv: { ack: true }, ct: 'application/json', body: utf8(`{"ids":["${durableId}"]}`)
      }
    },
    {
      name: 'broadcast',
      fields: { v: 1, net, mode: 'broadcast', type: 'inform', from: b.id, ts: TS, ttl: 10, hops: 8, prio: 2, ct: 'text/plain', body: utf8('hello mesh') }
    }
  ]
}

/** The envelope fields without sig, bp, id and bytes: what the id is computed over. */
function stripSig (e: { sig: unknown, bp?: unknown, id: unknown, bytes: unknown }): Record<string, unknown> {
  const { sig: _s, bp: _b, id: _i, bytes: _w, ...rest } = e as Record<string, unknown>
  return rest
}

function payloadText (bytes: Uint8Array): string {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    if (/^[\x20-\x7e]*$/.test(text)) return text
  } catch { /* not text */ }
  return `hex:${hex(bytes)}`
}

/** Unsigned-varint length prefix + bytes: how frames travel on `/fedmesh/<network>/msg/1.0.0`. */
function lengthPrefixed (bytes: Uint8Array): Uint8Array {
  const prefix: number[] = []
  let n = bytes.length
  while (n >= 0x80) { prefix.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  prefix.push(n)
  const out = new Uint8Array(prefix.length + bytes.length)
  out.set(prefix, 0)
  out.set(bytes, prefix.length)
  return out
}

export function buildVectors () {
  const keys: Record<string, AgentKey> = { [a.id]: a, [b.id]: b }
  const vectors = vectorInputs().map(({ name, fields }) => {
    const env = signEnvelope(fields, keys[fields.from])
    const { bytes, sig, id, ...rest } = env
    const unsigned = dagCbor.encode(rest)
    const { multihash } = messageIdFromBytes(unsigned)
    return {
      name,
      fields: { ...rest, body: hex(rest.body) },
      /** The payload after decompression: UTF-8 text, or hex when it is not text. */
      payload: payloadText(envelopePayload(env)),
      unsigned: hex(unsigned),
      multihash: hex(multihash),
      signingInput: hex(SIGNATURE_DOMAIN) + hex(multihash),
      id,
      sig: hex(sig),
      wire: hex(bytes)
    }
  })
  const direct = vectors[1]
  // Three publications by A signed as one batch (n = 3: an unbalanced tree).
  const batchFields: EnvelopeFields[] = [0, 1, 2].map(k => ({
    v: 1, net, mode: 'topic', type: 'inform', from: a.id, topic: 'weather/paris' as Topic, ts: TS + 1000, ...(k > 0 ? { nonce: k } : {}),
    ttl: 300, hops: 16, prio: 1, ct: 'application/json', body: utf8(`{"tempC":${20 + k}}`)
  }))
  const batchEnvs = signEnvelopes(batchFields, a)
  const leaves = batchEnvs.map(e => leafOf(messageIdFromBytes(dagCbor.encode(stripSig(e))).multihash))
  const { root } = merkleTree(leaves)
  const batch = {
    signer: 'A',
    leaves: leaves.map(hex),
    root: hex(root),
    signingInput: hex(batchSigningInput(root)),
    sig: hex(batchEnvs[0].sig),
    envelopes: batchEnvs.map((e, i) => ({
      fields: { ...batchFields[i], body: hex(batchFields[i].body) },
      id: e.id,
      bp: { n: e.bp?.n, i: e.bp?.i, path: (e.bp?.path ?? []).map(hex) },
      wire: hex(e.bytes)
    }))
  }
  // Envelopes 0 and 2 of the batch in one batch frame; leaf 1 by its hash (section 8.2.1).
  const batchFrame = encodeBatchFrame(1, batchEnvs[0].sig, [dagCbor.encode(stripSig(batchEnvs[0])), leaves[1], dagCbor.encode(stripSig(batchEnvs[2]))], [0])
  // Two durable sends of A to B signed together, put to B's home node as one `putb` (section 8.4.1).
  const durable = vectorInputs()[4].fields
  const durableFields: EnvelopeFields[] = [0, 1].map(k => ({ ...durable, ...(k > 0 ? { nonce: k } : {}), dlv: { seq: TS * 1000 + k, durable: true }, body: utf8(`{"n":${k + 1}}`) }))
  const durableEnvs = signEnvelopes(durableFields, a)
  const putb = { r: 1, op: 'putb', s: durableEnvs[0].sig, l: durableEnvs.map(e => dagCbor.encode(stripSig(e))) }
  // A node key and its interest record, as in an interest frame.
  const nodeKey = agentKeyFromSeed(SEED_NODE)
  const originBytes = new Uint8Array([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...nodeKey.publicKey])
  const origin = nodeIdFromBytes(originBytes)
  const record = { origin, seq: TS, patterns: ['sensors/#', 'weather/*'] as never[] }
  const recordSig = nodeKey.sign(interestSigningInput(record))
  const frame = (value: Record<string, unknown>) => {
    const cbor = dagCbor.encode(value)
    return { cbor: hex(cbor), lengthPrefixed: hex(lengthPrefixed(cbor)) }
  }
  return {
    seeds: { A: hex(SEED_A), B: hex(SEED_B) },
    agents: { A: a.id, B: b.id } as Record<string, AgentId>,
    publicKeys: { A: hex(a.publicKey), B: hex(b.publicKey) },
    vectors,
    /** Publications signed together: one signature over the Merkle root (PROTOCOL.md section 4.1). */
    batch,
    /** The node of the interest-record vector: seed, Ed25519 public key, peer id. */
    node: { seed: hex(SEED_NODE), publicKey: hex(nodeKey.publicKey), peerId: origin, peerIdBytes: hex(originBytes) },
    /** Net-layer frames carrying the direct vector (see PROTOCOL.md, "Frames"). */
    frames: {
      message: { value: `{t: 1, h: 1, e: <wire bytes of "${direct.name}">}`, ...frame({ t: 1, h: 1, e: unhex(direct.wire) }) },
      confirmOk: { value: `{t: 2, id: "${direct.id}", ok: true}`, ...frame({ t: 2, id: direct.id, ok: true }) },
      confirmFailed: {
        value: `{t: 2, id: "${direct.id}", ok: false, code: "NoRespondersError", msg: "no handler"}`,
        ...frame({ t: 2, id: direct.id, ok: false, code: 'NoRespondersError', msg: 'no handler' })
      },
      data: {
        value: '{t: 6, h: 1, e: <wire bytes of batch envelope 0>, x: [0]}',
        cbor: hex(encodeDataFrame(1, batchEnvs[0].bytes, [0])),
        lengthPrefixed: hex(lengthPrefixed(encodeDataFrame(1, batchEnvs[0].bytes, [0])))
      },
      batch: {
        value: '{t: 7, h: 1, l: [<unsigned bytes of batch envelope 0>, <leaf 1>, <unsigned bytes of batch envelope 2>], s: <batch sig>, x: [0]}',
        cbor: hex(batchFrame),
        lengthPrefixed: hex(lengthPrefixed(batchFrame))
      },
      durablePutb: {
        value: `{r: 1, op: "putb", s: <batch sig>, l: [<unsigned bytes of ${durableEnvs[0].id}>, <unsigned bytes of ${durableEnvs[1].id}>]}: "${vectors[4].name}" (vector 5) and the same with nonce 1, dlv.seq + 1 and body {"n":2}, signed together by A`,
        ...frame(putb)
      },
      durableAnswer: { value: '{r: 1, ok: true, st: "stored"}: both stored', ...frame({ r: 1, ok: true, st: 'stored' }) },
      interest: {
        value: `{t: 3, r: [[<peer id bytes of the node>, ${TS}, ["sensors/#", "weather/*"], 0, 0, <sig>]]}`,
        signingInput: hex(interestSigningInput(record)),
        sig: hex(recordSig),
        ...frame({ t: 3, r: [[originBytes, TS, ['sensors/#', 'weather/*'], 0, 0, recordSig]] })
      },
      lost: { value: `{t: 4, l: [[<peer id bytes of the node>, ${TS}, 3]]}`, ...frame({ t: 4, l: [[originBytes, TS, 3]] }) },
      request: { value: `{t: 5, q: [[<peer id bytes of the node>, ${TS}]]}`, ...frame({ t: 5, q: [[originBytes, TS]] }) }
    }
  }
}

export type Vectors = ReturnType<typeof buildVectors>

export const DOC_BEGIN = '<!-- BEGIN GENERATED VECTORS: node scripts/gen-vectors.ts -->'
export const DOC_END = '<!-- END GENERATED VECTORS -->'

/** Hex wrapped at 64 characters (32 bytes) a line. */
function block (h: string): string {
  return '```\n' + (h.match(/.{1,64}/g) ?? []).join('\n') + '\n```'
}

export function vectorsMarkdown (v: Vectors): string {
  const out: string[] = [DOC_BEGIN, '']
  out.push('Seeds (32 bytes) and the agents they give:', '')
  out.push('| agent | seed | public key | did |', '|---|---|---|---|')
  for (const k of ['A', 'B'] as const) out.push(`| ${k} | \`${v.seeds[k]}\` | \`${v.publicKeys[k]}\` | \`${v.agents[k]}\` |`)
  out.push('', `All vectors use network \`fedmesh\` and \`ts\` ${TS} (2026-01-01T00:00:00Z) or shortly after.`,
    'Hex blocks are wrapped at 32 bytes a line; join the lines to get the bytes.', '')
  v.vectors.forEach((vec, i) => {
    out.push(`### ${i + 1}. ${vec.name}`, '')
    out.push('Input fields (`body` as hex; the signer is the agent named in `from`):', '')
    out.push('```json', JSON.stringify(vec.fields, null, 2), '```', '')
    out.push(`Payload${vec.fields.enc != null ? ' after gunzip' : ''}: \`${vec.payload}\``, '')
    out.push('Unsigned canonical bytes:', '', block(vec.unsigned), '')
    out.push(`- multihash (\`0x12 0x20\` ‖ sha2-256): \`${vec.multihash}\``)
    out.push(`- id: \`${vec.id}\``)
    out.push(`- sig: \`${vec.sig}\``, '')
    out.push('Wire bytes:', '', block(vec.wire), '')
  })
  out.push(`### ${v.vectors.length + 1}. batch signature (section 4.1)`, '')
  out.push(`Agent ${v.batch.signer} signs three topic envelopes together. Their input fields differ only in \`nonce\` and \`body\`:`, '')
  out.push('```json', JSON.stringify(v.batch.envelopes.map(e => e.fields), null, 2), '```', '')
  out.push('Leaves (the sha2-256 digest in each id):', '')
  v.batch.envelopes.forEach((e, i) => out.push(`- ${i}: id \`${e.id}\`, leaf \`${v.batch.leaves[i]}\``))
  out.push('', `- root: \`${v.batch.root}\` (= sha2-256(0x01 ‖ sha2-256(0x01 ‖ leaf0 ‖ leaf1) ‖ leaf2))`)
  out.push(`- signing input (\`fedmesh/batch/v1\` ‖ root): \`${v.batch.signingInput}\``)
  out.push(`- sig (the same in all three): \`${v.batch.sig}\``, '')
  v.batch.envelopes.forEach((e, i) => {
    out.push(`Envelope ${i}: \`bp\` = [${e.bp.n}, ${e.bp.i}, [${e.bp.path.map(h => `\`${h}\``).join(', ')}]]; wire bytes:`, '', block(e.wire), '')
  })
  out.push('### Frames (net layer)', '', 'The direct vector (2) as it travels to the recipient\'s node, and the two kinds of answer; a data frame carrying',
    'batch envelope 0 to a neighbour that labelled itself 0, and a batch frame carrying envelopes 0 and 2 of the batch (leaf 1 by',
    'its hash) to it; a durable `putb` request of two envelopes signed together (section 8.4.1) and its answer; the interest, lost',
    'and request frames of one node.',
    'Each frame is shown as its DAG-CBOR map and as it appears on the stream (unsigned-varint length first).', '')
  out.push(`Node of the dissemination frames: seed \`${v.node.seed}\`, public key \`${v.node.publicKey}\`, peer id \`${v.node.peerId}\` (bytes \`${v.node.peerIdBytes}\`).`, '')
  for (const [name, f] of Object.entries(v.frames) as Array<[string, { value: string, lengthPrefixed: string, signingInput?: string, sig?: string }]>) {
    out.push(`**${name}** \`${f.value}\``, '')
    if (f.signingInput !== undefined) out.push(`record signing input (\`fedmesh/interest/v1\` ‖ DAG-CBOR [origin, seq, patterns]): \`${f.signingInput}\`; sig: \`${f.sig}\``, '')
    out.push('on the stream:', '', block(f.lengthPrefixed), '')
  }
  out.push(DOC_END)
  return out.join('\n')
}

/** Replaces the generated section of PROTOCOL.md; throws if the markers are missing. */
export function withVectorsSection (doc: string, v: Vectors): string {
  const start = doc.indexOf(DOC_BEGIN)
  const end = doc.indexOf(DOC_END)
  if (start < 0 || end < start) throw new Error('docs/PROTOCOL.md lacks the generated-vectors markers')
  return doc.slice(0, start) + vectorsMarkdown(v) + doc.slice(end + DOC_END.length)
}

export const VECTORS_FILE = new URL('../test/vectors/envelopes.json', import.meta.url)
export const PROTOCOL_FILE = new URL('../docs/PROTOCOL.md', import.meta.url)

if (import.meta.url === `file://${process.argv[1]}`) {
  const v = buildVectors()
  const json = JSON.stringify(v, null, 2) + '\n'
  const doc = withVectorsSection(readFileSync(PROTOCOL_FILE, 'utf8'), v)
  if (process.argv.includes('--check')) {
    const stale = [
      readFileSync(VECTORS_FILE, 'utf8') !== json ? 'test/vectors/envelopes.json' : '',
      readFileSync(PROTOCOL_FILE, 'utf8') !== doc ? 'docs/PROTOCOL.md' : ''
    ].filter(Boolean)
    if (stale.length > 0) { process.stderr.write(`out of date: ${stale.join(', ')}\n`); process.exit(1) }
    process.stdout.write('vectors up to date\n')
  } else {
    writeFileSync(VECTORS_FILE, json)
    writeFileSync(PROTOCOL_FILE, doc)
    process.stdout.write('wrote test/vectors/envelopes.json and the vectors section of docs/PROTOCOL.md\n')
  }
}

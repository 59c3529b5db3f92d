/**
 * The fedmesh envelope: self-describing, signed, deterministic CBOR (DAG-CBOR rules:
 * map keys sorted length-first then bytewise, shortest integer encodings, no floats for
 * integers, no undefined). See docs/PROTOCOL.md for the field table and test vectors.
 *
 *   unsigned = dagCbor(fields without `sig`)
 *   id       = multihash sha2-256(unsigned), multibase base32 ("b…")
 *   sig      = Ed25519(agent key, "fedmesh/envelope/v1" || multihash bytes)
 *   wire     = dagCbor(fields with `sig`)
 *
 * The hop count is not part of the envelope: it changes at each relay, so it travels in
 * the frame header (net/frames.ts) and is checked against the signed `hops` limit.
 */
import { gunzipSync, gzipSync } from 'node:zlib'
import * as dagCbor from '@ipld/dag-cbor'
import * as cborg from 'cborg'
import type { AgentId, MessageId, NetworkId, Topic } from './ids.ts'
import { isNetworkId } from './ids.ts'
import { isAgentId, verifyByDid, type AgentKey } from './keys.ts'
import { isTopic } from './topics.ts'
import { InvalidEnvelopeError, MessageTooLargeError } from './errors.ts'
import { CborWriter, KnownKeys, encodedText, MapLayout, decodeCanonicalMap, decodeMapLike, mapEntryEnd, type FieldStore } from './cbor-fast.ts'
import { MAX_BATCH, SignedBatch, batchSigningInput, leafOf, merkleRoot, proofLength, putDigest, sha256, sha256Latin1, verifyInclusion, type BatchProof, type VerifiedRoots } from './batch.ts'

export type { BatchProof } from './batch.ts'

export const ENVELOPE_VERSION = 1
export const SIGNATURE_DOMAIN = new TextEncoder().encode('fedmesh/envelope/v1')

/** FIPA ACL performatives; `type` may also carry an application message type. */
export const PERFORMATIVES = [
  'inform', 'request', 'query-if', 'query-ref', 'propose', 'accept-proposal', 'reject-proposal',
  'agree', 'refuse', 'failure', 'cfp', 'subscribe', 'cancel', 'not-understood'
] as const
export type Performative = typeof PERFORMATIVES[number]

/** How the envelope is routed. */
export const MODES = ['topic', 'direct', 'multicast', 'broadcast'] as const
export type Mode = typeof MODES[number]

export const COMPRESSIONS = ['gzip'] as const
export type Compression = typeof COMPRESSIONS[number]

/** Documented limits; nodes may lower them in config but never raise them above these. */
export const LIMITS = {
  maxEnvelopeBytes: 1024 * 1024,
  maxRecipients: 256,
  maxTtlSeconds: 7 * 24 * 3600,
  maxHops: 32,
  maxStringField: 256,
  maxContentType: 128,
  maxRetries: 16
} as const

export const DEFAULTS = { ttl: 300, hops: 16, prio: 1, contentType: 'application/json' } as const

/** Delivery requirements. All optional. */
export interface Delivery {
  /** Sender wants a delivery confirmation from the recipient's node. */
  ack?: boolean
  /** Give up (and report) if not delivered within this many milliseconds. */
  maxMs?: number
  /** Retransmissions with exponential backoff when no confirmation arrives. */
  retries?: number
  /** Recipient suppresses duplicates by id (default on at every node anyway). */
  dedup?: boolean
  /** Per-sender ordering: `seq` is the sender's sequence number towards this recipient. */
  seq?: number
  /**
   * Store-and-forward: the message is written to stable storage on the recipient's home
   * node (and replicas) before the sender is acknowledged, and held until the recipient
   * acknowledges it with a signed receipt (docs/PROTOCOL.md, durable delivery).
   */
  durable?: boolean
}

export interface EnvelopeFields {
  v: number
  net: NetworkId
  mode: Mode
  /** Performative or application message type. */
  type: string
  from: AgentId
  /** Recipients: exactly one for `direct`, one or more for `multicast`. */
  to?: AgentId[]
  topic?: Topic
  /** Schema URI `ns/name@semver` (free-form string until the schema layer validates it). */
  schema?: string
  proto?: string
  conv?: string
  /** Correlation id: the id of the message this one answers. */
  corr?: string
  /** Where replies go, if not to `from`. */
  replyTo?: string
  /** Origin timestamp, milliseconds since the Unix epoch. */
  ts: number
  /**
   * Distinguishes envelopes an agent creates within the same millisecond (1, 2, …);
   * absent on the first. Without it two identical sends would share one id.
   */
  nonce?: number
  /** Lifetime in seconds from `ts`. */
  ttl: number
  /** Maximum number of relay hops. */
  hops: number
  /** Priority 0 (lowest) – 3 (highest). */
  prio: number
  dlv?: Delivery
  /** Content type of `body` (after decompression). */
  ct: string
  /** Compression applied to `body`. */
  enc?: Compression
  body: Uint8Array
}

export interface Envelope extends EnvelopeFields {
  readonly id: MessageId
  /** Ed25519 signature: over the id, or over the batch root when `bp` is present. */
  readonly sig: Uint8Array
  /** Inclusion proof of this envelope's id in a batch the agent signed once (section 4.1). */
  readonly bp?: BatchProof
  /** Canonical wire bytes (with signature). */
  readonly bytes: Uint8Array
}

// The unsigned fields. `sig` is not among them: decodeEnvelope strips it before checkFields,
// and a `sig` handed to signEnvelope would be hashed into the id and never verify.
const FIELD_NAMES = new Set(['v', 'net', 'mode', 'type', 'from', 'to', 'topic', 'schema', 'proto', 'conv', 'corr', 'replyTo', 'ts', 'nonce', 'ttl', 'hops', 'prio', 'dlv', 'ct', 'enc', 'body'])
const DELIVERY_NAMES = new Set(['ack', 'maxMs', 'retries', 'dedup', 'seq', 'durable'])

export function messageIdFromBytes (unsigned: Uint8Array): { id: MessageId, multihash: Uint8Array } {
  const multihash = new Uint8Array(34)
  multihash[0] = 0x12
  multihash[1] = 0x20
  putDigest(multihash, 2, sha256Latin1(unsigned))
  return { id: idOfDigest(multihash, 2), multihash }
}

const BASE32_CODES = new TextEncoder().encode('abcdefghijklmnopqrstuvwxyz234567')
/** Written into and decoded from for every id (ids are made synchronously). */
const idOut = Buffer.alloc(56)

/**
 * The message id of a sha2-256 digest (the 32 bytes at `at`; `length` other than 32 takes
 * the general path): multibase base32 of the multihash 0x12 0x20 ‖ digest, without building
 * the multihash — five bytes (eight characters) at a time.
 */
export function idOfDigest (bytes: Uint8Array, at: number = 0, length: number = bytes.length - at): MessageId {
  if (length !== 32 || bytes.length - at < 32) return base32Multibase(Uint8Array.of(0x12, 0x20, ...bytes.subarray(at, at + length))) as MessageId
  const digest = bytes
  const out = idOut
  const C = BASE32_CODES
  out[0] = 0x62 // "b"
  let o = 1
  // 34 bytes: six groups of five (prefix and digest[0..28)), then four bytes.
  for (let g = 0; g < 6; g++) {
    const j = at + g * 5 - 2
    const b0 = g === 0 ? 0x12 : digest[j]
    const b1 = g === 0 ? 0x20 : digest[j + 1]
    const b2 = digest[j + 2]; const b3 = digest[j + 3]; const b4 = digest[j + 4]
    out[o] = C[b0 >>> 3]
    out[o + 1] = C[((b0 & 7) << 2) | (b1 >>> 6)]
    out[o + 2] = C[(b1 >>> 1) & 31]
    out[o + 3] = C[((b1 & 1) << 4) | (b2 >>> 4)]
    out[o + 4] = C[((b2 & 15) << 1) | (b3 >>> 7)]
    out[o + 5] = C[(b3 >>> 2) & 31]
    out[o + 6] = C[((b3 & 3) << 3) | (b4 >>> 5)]
    out[o + 7] = C[b4 & 31]
    o += 8
  }
  const b0 = digest[at + 28]; const b1 = digest[at + 29]; const b2 = digest[at + 30]; const b3 = digest[at + 31]
  out[o] = C[b0 >>> 3]
  out[o + 1] = C[((b0 & 7) << 2) | (b1 >>> 6)]
  out[o + 2] = C[(b1 >>> 1) & 31]
  out[o + 3] = C[((b1 & 1) << 4) | (b2 >>> 4)]
  out[o + 4] = C[((b2 & 15) << 1) | (b3 >>> 7)]
  out[o + 5] = C[(b3 >>> 2) & 31]
  out[o + 6] = C[(b3 & 3) << 3]
  return out.toString('latin1', 0, o + 7) as MessageId
}

/**
 * Multibase base32 (RFC 4648, lower case, no padding, prefix "b"): the id of every message.
 * Written into bytes and decoded once, so the id is one flat string: built with `+=` it
 * would be a rope of 56 pieces, and ids are kept by the million in the dedup caches.
 */
export function base32Multibase (bytes: Uint8Array): string {
  const out = Buffer.allocUnsafe(1 + Math.ceil(bytes.length * 8 / 5))
  let o = 0
  out[o++] = 0x62 // "b"
  let bits = 0
  let value = 0
  for (let i = 0; i < bytes.length; i++) {
    value = ((value << 8) | bytes[i]) & 0xfff
    bits += 8
    while (bits >= 5) {
      out[o++] = BASE32_CODES[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out[o++] = BASE32_CODES[(value << (5 - bits)) & 31]
  return out.toString('latin1', 0, o)
}

function signingInput (multihash: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNATURE_DOMAIN.length + multihash.length)
  out.set(SIGNATURE_DOMAIN, 0)
  out.set(multihash, SIGNATURE_DOMAIN.length)
  return out
}

/** signingInput of the multihash 0x12 0x20 ‖ `leaf` (a sha2-256 digest), without building the multihash. */
function leafSigningInput (leaf: Uint8Array): Uint8Array {
  const d = SIGNATURE_DOMAIN.length
  const out = new Uint8Array(d + 2 + leaf.length)
  out.set(SIGNATURE_DOMAIN, 0)
  out[d] = 0x12
  out[d + 1] = 0x20
  out.set(leaf, d + 2)
  return out
}

/** Drops undefined members so the object is encodable and canonical. */
export function compact<T extends object> (obj: T): T {
  const out: Record<string, unknown> = {}
  for (const k in obj) {
    const v = (obj as Record<string, unknown>)[k]
    if (v !== undefined && Object.hasOwn(obj, k)) out[k] = v
  }
  return out as T
}

/**
 * Canonical DAG-CBOR of checked envelope fields (and `sig`, `bp`), written directly in the
 * fixed canonical key order (section 3): byte-identical to `dagCbor.encode` of the same
 * map (tested), without walking and sorting a generic value. `f` must have passed
 * checkFields.
 */
export function encodeEnvelopeFields (f: EnvelopeFields, sig?: Uint8Array, bp?: BatchProof, marks?: { v: number, net: number }, spots?: Int32Array): Uint8Array {
  let n = encodableCount(f)
  if (n < 0) {
    // A field this encoder does not lay out (one added to FIELD_NAMES or DELIVERY_NAMES
    // later): the generic encoder is always right. No marks: the wire is encoded anew.
    if (marks !== undefined) { marks.v = -1; marks.net = -1 }
    if (spots !== undefined) spots[0] = -1
    return dagCbor.encode(sig === undefined ? f : bp === undefined ? { ...f, sig } : { ...f, sig, bp: [bp.n, bp.i, bp.path] })
  }
  if (sig !== undefined) n++
  if (bp !== undefined) n++
  const w = scratch.reset()
  w.head(5, n)
  w.small(K_V); w.uint(f.v)
  if (marks !== undefined) marks.v = w.length
  if (bp !== undefined) {
    w.small(K_BP); w.head(4, 3); w.uint(bp.n); w.uint(bp.i); w.head(4, bp.path.length)
    for (const h of bp.path) w.bytes(h)
  }
  w.small(K_CT); w.text(f.ct)
  if (f.to !== undefined) { w.small(K_TO); w.head(4, f.to.length); for (const a of f.to) w.text(a) }
  if (spots !== undefined) spots[0] = w.length
  w.small(K_TS); w.uint(f.ts)
  if (spots !== undefined) { spots[1] = w.length; spots[2] = w.length; spots[3] = w.length }
  if (f.dlv !== undefined) {
    const d = f.dlv
    w.small(K_DLV)
    w.head(5, (d.ack !== undefined ? 1 : 0) + (d.seq !== undefined ? 1 : 0) + (d.dedup !== undefined ? 1 : 0) + (d.maxMs !== undefined ? 1 : 0) + (d.durable !== undefined ? 1 : 0) + (d.retries !== undefined ? 1 : 0))
    if (d.ack !== undefined) { w.small(K_ACK); w.bool(d.ack) }
    if (d.seq !== undefined) {
      w.small(K_SEQ)
      if (spots !== undefined) spots[2] = w.length
      w.uint(d.seq)
      if (spots !== undefined) spots[3] = w.length
    }
    if (d.dedup !== undefined) { w.small(K_DEDUP); w.bool(d.dedup) }
    if (d.maxMs !== undefined) { w.small(K_MAXMS); w.uint(d.maxMs) }
    if (d.durable !== undefined) { w.small(K_DURABLE); w.bool(d.durable) }
    if (d.retries !== undefined) { w.small(K_RETRIES); w.uint(d.retries) }
  }
  if (f.enc !== undefined) { w.small(K_ENC); w.text(f.enc) }
  w.small(K_NET); w.text(f.net)
  if (marks !== undefined) marks.net = w.length
  if (sig !== undefined) { w.small(K_SIG); w.bytes(sig) }
  w.small(K_TTL); w.uint(f.ttl)
  if (spots !== undefined) spots[4] = w.length
  w.small(K_BODY); w.bytes(f.body)
  if (spots !== undefined) spots[5] = w.length
  if (f.conv !== undefined) { w.small(K_CONV); w.text(f.conv) }
  if (f.corr !== undefined) { w.small(K_CORR); w.text(f.corr) }
  w.small(K_FROM); w.text(f.from)
  w.small(K_HOPS); w.uint(f.hops)
  w.small(K_MODE); w.text(f.mode)
  w.small(K_PRIO); w.uint(f.prio)
  w.small(K_TYPE); w.text(f.type)
  if (spots !== undefined) spots[6] = w.length
  if (f.nonce !== undefined) { w.small(K_NONCE); w.uint(f.nonce) }
  if (spots !== undefined) spots[7] = w.length
  if (f.proto !== undefined) { w.small(K_PROTO); w.text(f.proto) }
  if (f.topic !== undefined) { w.small(K_TOPIC); w.text(f.topic) }
  if (f.schema !== undefined) { w.small(K_SCHEMA); w.text(f.schema) }
  if (f.replyTo !== undefined) { w.small(K_REPLYTO); w.text(f.replyTo) }
  return w.finish()
}

/** Envelope keys (and dlv's), encoded: written with CborWriter.small. */
const K_ACK = encodedText('ack')
const K_BODY = encodedText('body')
const K_BP = encodedText('bp')
const K_CONV = encodedText('conv')
const K_CORR = encodedText('corr')
const K_CT = encodedText('ct')
const K_DEDUP = encodedText('dedup')
const K_DLV = encodedText('dlv')
const K_DURABLE = encodedText('durable')
const K_ENC = encodedText('enc')
const K_FROM = encodedText('from')
const K_HOPS = encodedText('hops')
const K_MAXMS = encodedText('maxMs')
const K_MODE = encodedText('mode')
const K_NET = encodedText('net')
const K_NONCE = encodedText('nonce')
const K_PRIO = encodedText('prio')
const K_PROTO = encodedText('proto')
const K_REPLYTO = encodedText('replyTo')
const K_RETRIES = encodedText('retries')
const K_SCHEMA = encodedText('schema')
const K_SEQ = encodedText('seq')
const K_SIG = encodedText('sig')
const K_TO = encodedText('to')
const K_TOPIC = encodedText('topic')
const K_TS = encodedText('ts')
const K_TTL = encodedText('ttl')
const K_TYPE = encodedText('type')
const K_V = encodedText('v')

/** One writer reused by the encoders (never re-entered); `finish` copies out what was written. */
const scratch = new CborWriter(64 * 1024)

const ENCODABLE = new Set<string>(['v', 'ct', 'to', 'ts', 'dlv', 'enc', 'net', 'ttl', 'body', 'conv', 'corr', 'from', 'hops', 'mode', 'prio', 'type', 'nonce', 'proto', 'topic', 'schema', 'replyTo'])
const ENCODABLE_DLV = new Set<string>(['ack', 'seq', 'dedup', 'maxMs', 'durable', 'retries'])

/**
 * How many entries encodeEnvelopeFields writes for `f` (its members that are not undefined),
 * or -1 when one of them is a field it does not lay out.
 */
function encodableCount (f: EnvelopeFields): number {
  let n = 0
  for (const k in f) {
    if ((f as unknown as Record<string, unknown>)[k] === undefined) continue
    if (!ENCODABLE.has(k)) return -1
    n++
  }
  if (f.dlv !== undefined) for (const k in f.dlv) if (!ENCODABLE_DLV.has(k) && (f.dlv as Record<string, unknown>)[k] !== undefined) return -1
  return n
}

/** Fields checked and canonically encoded, with their id: an envelope waiting for its signature. */
export interface PreparedEnvelope {
  readonly fields: EnvelopeFields
  readonly id: MessageId
  /**
   * The sha2-256 digest of `unsigned` (32 bytes in an array of their own): the digest in the
   * id's multihash, and the envelope's leaf in a batch.
   */
  readonly leaf: Uint8Array
  /** The unsigned canonical bytes, and where in them `bp` and `sig` go (after `v`, after `net`; -1 when not known). */
  readonly unsigned: Uint8Array
  readonly markV: number
  readonly markNet: number
}

/** Checks and encodes fields for signing by `key` (throws InvalidEnvelopeError). */
export function prepareEnvelope (fields: EnvelopeFields, key: Pick<AgentKey, 'id'>): PreparedEnvelope {
  if (fields.from !== key.id) throw new InvalidEnvelopeError('envelope `from` must be the signing agent')
  // One pass: drop undefined members (also inside dlv), no intermediate copies.
  const clean: Record<string, unknown> = {}
  for (const k in fields) {
    const v = (fields as unknown as Record<string, unknown>)[k]
    if (v !== undefined && Object.hasOwn(fields, k)) clean[k] = k === 'dlv' && v !== null && typeof v === 'object' ? compact(v) : v
  }
  const problem = checkFields(clean)
  if (problem != null) throw new InvalidEnvelopeError(problem)
  return prepareChecked(clean as unknown as EnvelopeFields)
}

/**
 * prepareEnvelope for a fresh object its caller gives up (the SDK's): when it has no undefined
 * members (nor has its `dlv`), it is checked and becomes the envelope as it is, without the
 * copy; otherwise as prepareEnvelope. With a `memo` (one per publisher), fields whose members
 * but ts, nonce, body and dlv.seq repeat fields checked before have only those four checked,
 * and are encoded from the pieces of the earlier encoding (see FieldsMemo).
 */
export function prepareOwnedEnvelope (fields: EnvelopeFields, key: Pick<AgentKey, 'id'>, memo?: FieldsMemo): PreparedEnvelope {
  const f = fields as unknown as Record<string, unknown>
  const proto = Object.getPrototypeOf(f)
  if (proto !== Object.prototype && proto !== LEAF_PROTO) return prepareEnvelope(fields, key)
  if (fields.from !== key.id) throw new InvalidEnvelopeError('envelope `from` must be the signing agent')
  if (memo !== undefined) {
    const count = memo.match(f)
    if (count >= 0) {
      const problem = checkTsNonce(f) ?? checkBody(f)
      if (problem != null) throw new InvalidEnvelopeError(problem)
      return preparedOf(fields, encodeFromShape(memo.shapes[0], fields, count))
    }
  }
  for (const k in f) if (f[k] === undefined) return prepareEnvelope(fields, key)
  const d = f.dlv
  if (d !== null && typeof d === 'object') for (const k in d) if ((d as Record<string, unknown>)[k] === undefined) return prepareEnvelope(fields, key)
  const problem = checkFields(f)
  if (problem != null) throw new InvalidEnvelopeError(problem)
  if (memo === undefined) return prepareChecked(fields)
  const spots = shapeSpots
  const p = preparedOf(fields, encodeEnvelopeFields(fields, undefined, undefined, prepareMarks, spots))
  memo.remember(f, p, spots)
  return p
}

/** Fields a FieldsMemo takes as checked but for these (a publisher's envelopes differ in them). */
function varies (k: string): boolean {
  return k === 'ts' || k === 'nonce' || k === 'body'
}

/**
 * Fields that passed checkFields, but for ts, nonce, body and `dlv.seq`: their keys in order
 * and their values (primitives; a one-recipient `to` as its recipient, a `dlv` as a DlvShape),
 * and their encoding without its map head, cut around the ts, seq, body and nonce entries —
 * v … up to ts; after ts up to seq's value (empty without one); after seq up to body; after
 * body up to where nonce goes; after nonce to the end.
 */
interface CheckedShape {
  readonly keys: readonly string[]
  readonly values: readonly unknown[]
  /** encodableCount of the members in `keys`. */
  readonly count: number
  readonly pieces: readonly Uint8Array[]
  /** `dlv.seq` is there (its value goes between the second and third pieces). */
  readonly seq: boolean
  /** Where `bp` and `sig` go (prepareChecked's marks): in the first piece, and in the third. */
  readonly markV: number
  readonly markNet: number
}

/** A `dlv` of a CheckedShape: its members in order and their values (`seq`'s is not compared). */
interface DlvShape {
  readonly keys: readonly string[]
  readonly values: readonly unknown[]
}

/** How many shapes a FieldsMemo keeps (a publisher alternating between two topics). */
const MEMO_SHAPES = 2

/** Where the encoder records the ts, seq (its value), body and nonce entries (start and end of each). */
const shapeSpots = new Int32Array(8)

/**
 * The fields one publisher's envelopes were last checked with in full (an SDK agent keeps
 * one): publishing to one topic, or sending durably to one agent, it builds the same net,
 * mode, type, from, topic or recipient, ttl, hops, prio, delivery options and ct every time —
 * they passed checkFields once, and encode to the same bytes. Members holding objects are
 * compared by content, never remembered by reference (they could be changed in place): only
 * a `to` of one recipient, and a plain `dlv` of primitives, whose `seq` varies as ts does.
 */
export class FieldsMemo {
  /** The latest first. */
  readonly shapes: CheckedShape[] = []

  /**
   * encodableCount(f) when `f`'s members but ts, nonce, body and dlv.seq are those of a
   * remembered shape — the same keys in the same order, each value identical (===) — and ts,
   * nonce and body are not undefined, and dlv.seq a valid sequence number (the shape is then
   * `shapes[0]`); otherwise -1.
   */
  match (f: Record<string, unknown>): number {
    const shapes = this.shapes
    for (let s = 0; s < shapes.length; s++) {
      const count = matchShape(shapes[s], f)
      if (count < 0) continue
      if (s > 0) { const t = shapes[s]; shapes[s] = shapes[0]; shapes[0] = t }
      return count
    }
    return -1
  }

  /**
   * Remembers fields that passed checkFields, prepared as `p` with the encoder's `spots` —
   * unless a member holds another object or the encoder did not lay them out.
   */
  remember (f: Record<string, unknown>, p: PreparedEnvelope, spots: Int32Array): void {
    // Replies and receipts (`corr`, another each time) would never match: not kept, so they
    // neither pay for the copies nor push out the shapes that do repeat.
    if (spots[0] < 0 || p.markV < 0 || f.corr !== undefined) return
    const keys: string[] = []
    const values: unknown[] = []
    let n = 0
    for (const k in f) {
      if (varies(k)) { n++; continue }
      const v = f[k]
      if (k === 'to') {
        // Requests and replies to one agent, durable sends: the recipient; multicasts: nothing to keep.
        if (!Array.isArray(v) || v.length !== 1 || typeof v[0] !== 'string') return
        keys.push(k)
        values.push(v[0])
        continue
      }
      if (k === 'dlv') {
        const d = dlvShape(v)
        if (d === undefined) return
        keys.push(k)
        values.push(d)
        continue
      }
      if (typeof v === 'object' || typeof v === 'function') return
      keys.push(k)
      values.push(v)
    }
    const count = encodableCount(f as unknown as EnvelopeFields)
    if (count < 0) return
    const u = p.unsigned
    const head = mapHeadLength(u)
    // Copies: `u` is a view into a slab the envelope's bytes share.
    const pieces = [u.slice(head, spots[0]), u.slice(spots[1], spots[2]), u.slice(spots[3], spots[4]), u.slice(spots[5], spots[6]), u.slice(spots[7])]
    this.shapes.unshift({ keys, values, count: count - n, pieces, seq: spots[3] > spots[2], markV: p.markV - head, markNet: p.markNet - spots[3] })
    if (this.shapes.length > MEMO_SHAPES) this.shapes.pop()
  }
}

/** The DlvShape of a checked `dlv`: a plain object of booleans and numbers; undefined otherwise. */
function dlvShape (v: unknown): DlvShape | undefined {
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return undefined
  const keys: string[] = []
  const values: unknown[] = []
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k]
    if (typeof x !== 'boolean' && typeof x !== 'number') return undefined
    keys.push(k)
    values.push(k === 'seq' ? undefined : x)
  }
  return { keys, values }
}

/** FieldsMemo.match against one shape. */
function matchShape (shape: CheckedShape, f: Record<string, unknown>): number {
  const keys = shape.keys
  const values = shape.values
  let j = 0
  let n = 0
  for (const k in f) {
    const v = f[k]
    if (varies(k)) {
      if (v === undefined) return -1
      n++
      continue
    }
    if (j === keys.length || k !== keys[j]) return -1
    if (k === 'to') {
      if (!Array.isArray(v) || v.length !== 1 || v[0] !== values[j]) return -1
    } else if (k === 'dlv') {
      if (!matchDlv(values[j] as DlvShape, v)) return -1
    } else if (v !== values[j]) return -1
    j++
  }
  return j === keys.length ? shape.count + n : -1
}

/** `v` is a plain object with the members of `d`, in its order, equal but for `seq`, which is a valid sequence number. */
function matchDlv (d: DlvShape, v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Object.getPrototypeOf(v) !== Object.prototype) return false
  const keys = d.keys
  let i = 0
  for (const k in v) {
    const x = (v as Record<string, unknown>)[k]
    if (i === keys.length || k !== keys[i]) return false
    if (k === 'seq' ? !isInt(x, 0, Number.MAX_SAFE_INTEGER) : x !== d.values[i]) return false
    i++
  }
  return i === keys.length
}

/** The length of the map head that starts `u` (canonical: 1, 2 or 3 bytes for an envelope). */
function mapHeadLength (u: Uint8Array): number {
  return u[0] < 0xb8 ? 1 : u[0] === 0xb8 ? 2 : 3
}

/**
 * encodeEnvelopeFields of fields that match `shape` (`count` entries): its pieces with this
 * envelope's ts, seq, body and nonce between them — the same bytes, in the same canonical
 * order. Sets prepareMarks.
 */
function encodeFromShape (shape: CheckedShape, f: EnvelopeFields, count: number): Uint8Array {
  const pieces = shape.pieces
  const w = scratch.reset()
  w.head(5, count)
  prepareMarks.v = w.length + shape.markV
  w.raw(pieces[0])
  w.small(K_TS); w.uint(f.ts)
  w.raw(pieces[1])
  if (shape.seq) w.uint((f.dlv as Delivery).seq as number)
  prepareMarks.net = w.length + shape.markNet
  w.raw(pieces[2])
  w.small(K_BODY); w.bytes(f.body)
  w.raw(pieces[3])
  if (f.nonce !== undefined) { w.small(K_NONCE); w.uint(f.nonce) }
  w.raw(pieces[4])
  return w.finish()
}

function prepareChecked (clean: EnvelopeFields): PreparedEnvelope {
  return preparedOf(clean, encodeEnvelopeFields(clean, undefined, undefined, prepareMarks))
}

/** The prepared envelope of `clean`, encoded as `unsigned` (the marks in prepareMarks). */
function preparedOf (clean: EnvelopeFields, unsigned: Uint8Array): PreparedEnvelope {
  const marks = prepareMarks
  // The leaf as its own array: batches take it as it is (a view into a multihash cost ~0.1 µs).
  const leaf = sha256(unsigned)
  return { fields: clean, id: idOfDigest(leaf), leaf, unsigned, markV: marks.v, markNet: marks.net }
}

/** Where prepareChecked's encoder reports its marks (copied out at once: no object per envelope). */
const prepareMarks = { v: 0, net: 0 }

/**
 * The wire bytes: the unsigned bytes with `bp` spliced in after `v` and `sig` after `net`
 * (their canonical places: `bp` is the first two-letter key, `sig` follows `net`), and
 * the entry count raised to match. Byte-identical to encoding all fields anew.
 */
function wireBytes (p: PreparedEnvelope, sig: Uint8Array): Uint8Array {
  if (p.markV < 0) return encodeEnvelopeFields(p.fields, sig)
  return spliceWire(p.unsigned, { v: p.markV, net: p.markNet }, sig)
}

function spliceWire (u: Uint8Array, marks: { v: number, net: number }, sig: Uint8Array, bp?: BatchProof): Uint8Array {
  const head = mapHeadLength(u)
  const count = head === 1 ? u[0] & 31 : head === 2 ? u[1] : (u[1] << 8) | u[2]
  const w = scratch.reset()
  w.head(5, count + 1 + (bp !== undefined ? 1 : 0))
  w.raw(u.subarray(head, marks.v))
  if (bp !== undefined) {
    w.small(K_BP); w.head(4, 3); w.uint(bp.n); w.uint(bp.i); w.head(4, bp.path.length)
    for (const h of bp.path) w.bytes(h)
  }
  w.raw(u.subarray(marks.v, marks.net))
  w.small(K_SIG); w.bytes(sig)
  w.raw(u.subarray(marks.net))
  return w.finish()
}

// Which batch an envelope was signed in, and its leaf index there: kept beside the
// envelope for the node that sends it on as part of a batch frame (section 8.2.1).
const IN_BATCH = Symbol('fedmesh.batch')
const LEAF_INDEX = Symbol('fedmesh.leaf')

interface Leaf { [IN_BATCH]: SignedBatch, [LEAF_INDEX]: number }

/**
 * The prototype of batch-signed envelopes: `bp` and `bytes` are derived from the batch when
 * first read (once per batch for the proofs, once per envelope for the bytes) — an envelope
 * that travels in batch frames never needs either. On the prototype, so the envelope stays
 * a plain fast-properties object.
 */
const LEAF_PROTO = Object.create(Object.prototype, {
  bp: {
    get (this: Leaf): BatchProof { return this[IN_BATCH].proof(this[LEAF_INDEX]) },
    set: ownValue('bp')
  },
  bytes: {
    get (this: Leaf): Uint8Array { return this[IN_BATCH].wire(this[LEAF_INDEX], leafWire) },
    set: ownValue('bytes')
  }
}) as object

/**
 * Makes the objects on LEAF_PROTO (a batch envelope's fields, then the envelope itself).
 * `Object.create(LEAF_PROTO)` gave an object room for 4 properties: the other 13 or so went
 * to a property array that V8 copies into a larger one every 3 properties added — ≈ 440
 * bytes allocated per envelope, about half of what a batch frame's ingress allocated per
 * leaf (PERFORMANCE.md, "Ingress allocations, session 11"). A constructor's objects get the
 * room V8's slack tracking gives them: the first 7 have room for the constructor's `this.`
 * assignments plus 8, then the constructor's objects are cut to the most properties any of
 * those first ones had. Those first objects are made here, just below, with 20 properties
 * each (`reserve`: `s0` … `s19`); every later one is empty when made and has room for 20 in
 * itself — a topic publication's 13 fields, its id, `sig`, batch and leaf index, and three
 * more (`to`, `dlv`, a conversation's fields). Further ones go to a property array.
 */
const LeafFields = function LeafFields (this: Record<string, unknown>, reserve?: boolean): void {
  if (reserve !== true) return
  this.s0 = 0; this.s1 = 0; this.s2 = 0; this.s3 = 0; this.s4 = 0; this.s5 = 0; this.s6 = 0
  this.s7 = 0; this.s8 = 0; this.s9 = 0; this.s10 = 0; this.s11 = 0; this.s12 = 0; this.s13 = 0
  this.s14 = 0; this.s15 = 0; this.s16 = 0; this.s17 = 0; this.s18 = 0; this.s19 = 0
} as unknown as new (reserve?: boolean) => Record<string, unknown>
LeafFields.prototype = LEAF_PROTO
// V8 ends slack tracking after 7 objects; a few more do no harm.
for (let i = 0; i < 10; i++) new LeafFields(true) // eslint-disable-line no-new

/**
 * An empty object to build an envelope's fields in when they are to be signed in a batch
 * (the SDK's publications): prepareOwnedEnvelope takes it as its own, and signPrepared makes
 * it the envelope as it is, instead of copying it onto this prototype.
 */
export function newLeafFields (): Record<string, unknown> {
  return new LeafFields()
}

/**
 * Decoding unsigned bytes that (wrongly) hold a `bp` or `bytes` entry assigns it: it then
 * becomes an own field like any other, which checkFields refuses as unknown.
 */
function ownValue (name: string): (this: object, v: unknown) => void {
  return function (this: object, v: unknown) {
    Object.defineProperty(this, name, { value: v, enumerable: true, writable: true, configurable: true })
  }
}

/** The batch `env` was signed in, when this node holds it (it signed it, or got it in a batch frame). */
export function batchOf (env: Envelope): SignedBatch | undefined {
  return (env as unknown as Record<symbol, SignedBatch | undefined>)[IN_BATCH]
}

/** `env`'s leaf index in `batchOf(env)`. */
export function leafIndexOf (env: Envelope): number {
  return (env as unknown as Record<symbol, number>)[LEAF_INDEX]
}

function finish (p: PreparedEnvelope, sig: Uint8Array): Envelope {
  const bytes = wireBytes(p, sig)
  if (bytes.length > LIMITS.maxEnvelopeBytes) throw new MessageTooLargeError(`envelope is ${bytes.length} bytes, limit ${LIMITS.maxEnvelopeBytes}`)
  // The prepared fields object is ours (prepareEnvelope built it): it becomes the envelope —
  // as a plain object when it was built for a batch (newLeafFields) but signed alone.
  const f = p.fields as unknown as Record<string, unknown>
  const env = Object.getPrototypeOf(f) === LEAF_PROTO ? { ...f } : f
  env.id = p.id
  env.sig = sig
  env.bytes = bytes
  return Object.freeze(env) as unknown as Envelope
}

/** Envelope `i` of a batch: its fields, id and the batch signature; `bp` and `bytes` from the batch, when read. */
function leafObject (target: Record<string, unknown>, id: MessageId, batch: SignedBatch, i: number): Envelope {
  target.id = id
  target.sig = batch.sig
  const leaf = target as unknown as Leaf
  leaf[IN_BATCH] = batch
  leaf[LEAF_INDEX] = i
  return Object.freeze(target) as unknown as Envelope
}

/** Signs fields with the agent's key and returns the full envelope. */
export function signEnvelope (fields: EnvelopeFields, key: AgentKey): Envelope {
  const p = prepareEnvelope(fields, key)
  return finish(p, key.sign(leafSigningInput(p.leaf)))
}

/**
 * Signs envelopes prepared together with one signature over the Merkle root of their ids
 * (section 4.1); each gets its inclusion proof. One envelope is signed alone (no `bp`).
 * At most MAX_BATCH at a time.
 */
export function signPrepared (prepared: readonly PreparedEnvelope[], key: AgentKey): Envelope[] {
  if (prepared.length > MAX_BATCH) throw new RangeError(`at most ${MAX_BATCH} envelopes per batch`)
  for (const p of prepared) if (p.fields.from !== key.id) throw new InvalidEnvelopeError('envelope `from` must be the signing agent')
  if (prepared.length === 1) return [finish(prepared[0], key.sign(leafSigningInput(prepared[0].leaf)))]
  const leaves = prepared.map(p => p.leaf)
  // The root only: the proofs are derived (SignedBatch.proof) if an envelope ever travels
  // alone — in batch frames, which carry the leaves, none is needed.
  const sig = key.sign(batchSigningInput(merkleRoot(leaves)))
  const batch = new SignedBatch(key.id, sig, leaves, prepared.map(p => p.unsigned))
  return prepared.map((p, i) => {
    const f = p.fields as unknown as Record<string, unknown>
    const env = leafObject(Object.getPrototypeOf(f) === LEAF_PROTO ? f : Object.assign(new LeafFields(), f), p.id, batch, i)
    // Its exact wire size only when the most `sig` and `bp` can add might reach the limit.
    if (p.unsigned.length + MAX_WIRE_OVERHEAD <= LIMITS.maxEnvelopeBytes) return env
    const size = wireSize(env)
    if (size > LIMITS.maxEnvelopeBytes) throw new MessageTooLargeError(`envelope is ${size} bytes, limit ${LIMITS.maxEnvelopeBytes}`)
    return env
  })
}

/** Signs several envelopes' fields with one batch signature (see signPrepared). */
export function signEnvelopes (fields: readonly EnvelopeFields[], key: AgentKey): Envelope[] {
  return signPrepared(fields.map(f => prepareEnvelope(f, key)), key)
}

export type DecodeFailure = 'malformed' | 'non-canonical' | 'bad-field' | 'bad-signature' | 'too-large'

export type DecodeResult =
  | { ok: true, envelope: Envelope }
  | { ok: false, reason: DecodeFailure, detail: string }

/**
 * Decodes and verifies wire bytes: size, CBOR well-formedness, canonical encoding,
 * field shapes and the signature. Never throws.
 */
export function decodeEnvelope (bytes: Uint8Array, maxBytes: number = LIMITS.maxEnvelopeBytes, roots?: VerifiedRoots): DecodeResult {
  if (bytes.length > maxBytes) return { ok: false, reason: 'too-large', detail: `${bytes.length} bytes > ${maxBytes}` }
  // Fast path: canonical input decodes in one pass that also yields the unsigned bytes
  // (the wire minus `sig` and `bp`). Anything it does not take goes the general way below.
  const fast = decodeCanonicalMap(bytes, UNSIGNED_OMIT, undefined, ENVELOPE_KEYS)
  let fields: Record<string, unknown>
  let sig: unknown
  let rawProof: unknown
  let unsigned: Uint8Array | undefined
  if (fast !== undefined) {
    fields = fast.value
    sig = fast.omitted.sig
    rawProof = fast.omitted.bp
    unsigned = fast.without
  } else {
    const slow = decodeGeneral(bytes)
    if (!slow.ok) return slow
    ;({ sig, bp: rawProof, ...fields } = slow.value)
  }
  if (!(sig instanceof Uint8Array) || sig.length !== 64) return { ok: false, reason: 'bad-field', detail: 'sig must be 64 bytes' }
  const bp = rawProof === undefined ? undefined : parseProof(rawProof)
  if (bp === null) return { ok: false, reason: 'bad-field', detail: `bp must be [n, i, [32-byte hash, …]] with 2 ≤ n ≤ ${MAX_BATCH}, i < n` }
  const problem = checkFields(fields)
  if (problem != null) return { ok: false, reason: 'bad-field', detail: problem }
  const env = fields as unknown as EnvelopeFields
  const { id, multihash } = messageIdFromBytes(unsigned ?? dagCbor.encode(fields))
  // The decoded map is ours alone: it becomes the envelope (no copy).
  const out = fields as Record<string, unknown>
  out.id = id
  out.sig = sig
  out.bytes = bytes
  if (bp === undefined) {
    if (!verifyByDid(env.from, signingInput(multihash), sig)) return { ok: false, reason: 'bad-signature', detail: `signature does not verify for ${env.from}` }
    return { ok: true, envelope: Object.freeze(out) as unknown as Envelope }
  }
  out.bp = bp
  if (!verifyInclusion(env.from, leafOf(multihash), bp, sig, (root) => verifyByDid(env.from, batchSigningInput(root), sig), roots)) {
    return { ok: false, reason: 'bad-signature', detail: `batch signature or proof does not verify for ${env.from}` }
  }
  return { ok: true, envelope: Object.freeze(out) as unknown as Envelope }
}

const UNSIGNED_OMIT = ['sig', 'bp']
/** Every envelope key, `sig` and `bp` too, for the canonical reader (KnownKeys). */
const ENVELOPE_KEYS = new KnownKeys([...FIELD_NAMES, 'sig', 'bp'])
const OMIT_NONE: readonly string[] = []

export type UnsignedResult =
  | { ok: true, fields: EnvelopeFields, multihash: Uint8Array, id: MessageId }
  | { ok: false, reason: DecodeFailure, detail: string }

/**
 * Decodes and checks an envelope's unsigned bytes (a leaf of a batch frame, section 8.2.1):
 * size, canonical CBOR, field shapes, and its id. The signature is the batch's, checked by
 * the caller over the root. A `sig` or `bp` entry is an unknown field here. Never throws.
 */
export function decodeUnsigned (bytes: Uint8Array, maxBytes: number = LIMITS.maxEnvelopeBytes): UnsignedResult {
  const fields = decodeLeafFields(bytes, maxBytes)
  if (fields instanceof LeafFailure) return { ok: false, reason: fields.reason, detail: fields.detail }
  const { id, multihash } = messageIdFromBytes(bytes)
  return { ok: true, fields, multihash, id }
}

/** Why a leaf's unsigned bytes were refused (decodeLeafFields). */
export class LeafFailure {
  readonly reason: DecodeFailure
  readonly detail: string
  constructor (reason: DecodeFailure, detail: string) { this.reason = reason; this.detail = detail }
}

/**
 * decodeUnsigned without the id (a batch frame's ingress hashes each leaf itself): the
 * checked fields, decoded straight into an object that can become the envelope
 * (leafEnvelope), or a LeafFailure. Never throws.
 */
export function decodeLeafFields (bytes: Uint8Array, maxBytes: number = LIMITS.maxEnvelopeBytes): EnvelopeFields | LeafFailure {
  if (bytes.length > maxBytes) return new LeafFailure('too-large', `${bytes.length} bytes > ${maxBytes}`)
  let fields = new LeafFields()
  const fast = decodeCanonicalMap(bytes, OMIT_NONE, fields, ENVELOPE_KEYS)
  if (fast === undefined) {
    const slow = decodeGeneral(bytes)
    if (!slow.ok) return new LeafFailure(slow.reason, slow.detail)
    fields = Object.assign(new LeafFields(), slow.value)
  }
  const problem = checkFields(fields)
  if (problem != null) return new LeafFailure('bad-field', problem)
  return fields as unknown as EnvelopeFields
}

/**
 * The fields the envelopes of one batch usually differ in (LeafDecoder): time, nonce, body,
 * and the delivery map (a durable or ordered send's `dlv.seq` grows by one per envelope).
 */
const LEAF_VARYING: ReadonlySet<string> = new Set(['ts', 'nonce', 'dlv', 'body'])
/** The unsigned fields in a fixed order: their codes in LEAF_STORE. */
const LEAF_STORE_NAMES = [...FIELD_NAMES]
const LEAF_STORE_CODES = new Map(LEAF_STORE_NAMES.map((k, i) => [k, i]))

/** A leaf's fields stored by name (FieldStore): each case one property, one hidden class per site. */
const LEAF_STORE: FieldStore = {
  code: (k) => LEAF_STORE_CODES.get(k) ?? -1,
  put: (f, code, v) => {
    switch (code) {
      case 0: f.v = v; return
      case 1: f.net = v; return
      case 2: f.mode = v; return
      case 3: f.type = v; return
      case 4: f.from = v; return
      case 5: f.to = v; return
      case 6: f.topic = v; return
      case 7: f.schema = v; return
      case 8: f.proto = v; return
      case 9: f.conv = v; return
      case 10: f.corr = v; return
      case 11: f.replyTo = v; return
      case 12: f.ts = v; return
      case 13: f.nonce = v; return
      case 14: f.ttl = v; return
      case 15: f.hops = v; return
      case 16: f.prio = v; return
      case 17: f.dlv = v; return
      case 18: f.ct = v; return
      case 19: f.enc = v; return
      case 20: f.body = v; return
      default: f[LEAF_STORE_NAMES[code]] = v
    }
  }
}
// The cases above are written out by hand: each must store the name its code stands for.
for (const [code, name] of LEAF_STORE_NAMES.entries()) {
  const o: Record<string, unknown> = {}
  LEAF_STORE.put(o, code, 1)
  if (Object.keys(o).join() !== name) throw new Error(`LEAF_STORE: code ${code} stores ${Object.keys(o).join()}, not ${name}`)
}

/** Layouts a LeafDecoder keeps: with and without a nonce (envelopes of one millisecond have one). */
const LEAF_LAYOUTS = 2

/**
 * decodeLeafFields for the leaves of one batch frame, in order. The envelopes of a batch
 * repeat each other's bytes except in time, nonce, delivery map and body: a leaf whose every
 * other entry is byte for byte that of a leaf decoded and checked before it (the last two
 * kept, as layouts) takes those values as they are — the same strings — and only its time,
 * nonce, delivery map and body are read and checked. Any other leaf is decoded in full (decodeLeafFields: the same
 * verdicts, and its failure's detail) and becomes a layout if it passes.
 */
export class LeafDecoder {
  private readonly maxBytes: number
  private readonly layouts: MapLayout[] = []
  /** Leaves read against a layout (the rest were decoded in full). */
  repeated = 0

  constructor (maxBytes: number = LIMITS.maxEnvelopeBytes) { this.maxBytes = maxBytes }

  decode (bytes: Uint8Array): EnvelopeFields | LeafFailure {
    if (bytes.length <= this.maxBytes) {
      for (const layout of this.layouts) {
        if (layout.bytes[0] !== bytes[0]) continue
        const f = new LeafFields()
        if (decodeMapLike(bytes, layout, f) && checkTsNonce(f) === undefined && checkDelivery(f) === undefined && checkBody(f) === undefined) {
          this.repeated++
          return f as unknown as EnvelopeFields
        }
      }
    }
    const f = decodeLeafFields(bytes, this.maxBytes)
    if (f instanceof LeafFailure) return f
    const layout = MapLayout.of(bytes, f as unknown as Record<string, unknown>, LEAF_VARYING, LEAF_STORE)
    if (layout !== undefined) {
      this.layouts.unshift(layout)
      if (this.layouts.length > LEAF_LAYOUTS) this.layouts.pop()
    }
    return f
  }
}

/**
 * The envelope of leaf `i` of a verified batch, from its decodeUnsigned fields (they become
 * the envelope): the batch signature, and — computed when first read — its inclusion proof
 * `bp` and its wire bytes, which only an envelope travelling alone needs.
 */
export function leafEnvelope (fields: EnvelopeFields, id: MessageId, batch: SignedBatch, i: number): Envelope {
  if (Object.getPrototypeOf(fields) !== LEAF_PROTO) throw new TypeError('leafEnvelope takes the fields decodeUnsigned returned')
  return leafObject(fields as unknown as Record<string, unknown>, id, batch, i)
}

/**
 * The most the wire bytes of a batch envelope exceed its unsigned bytes: a map head two bytes
 * longer, `sig` (4 + 66 bytes) and `bp` (key, array heads, n and i, up to 10 hashes of 34).
 */
const MAX_WIRE_OVERHEAD = 2 + 4 + 66 + 3 + 1 + 3 + 3 + 1 + 10 * 34

/**
 * `env.bytes.length`, without building the wire bytes of an envelope that came in a batch
 * frame (they are built only when it travels alone).
 */
export function wireSize (env: Envelope): number {
  const batch = batchOf(env)
  const u = batch?.unsigned[leafIndexOf(env)]
  if (batch === undefined || u === undefined) return env.bytes.length
  return leafWireSize(u, batch.n, leafIndexOf(env))
}

/** The length of `spliceLeafWire(u, sig, proof)` for leaf `i` of a batch of `n`, without building it. */
export function leafWireSize (u: Uint8Array, n: number, i: number): number {
  const count = u[0] < 0xb8 ? u[0] & 31 : u[0] === 0xb8 ? u[1] : (u[1] << 8) | u[2]
  const bp = 3 + 1 + smallHeadSize(n) + smallHeadSize(i) + 1 + proofLength(n, i) * 34
  return u.length - smallHeadSize(count) + smallHeadSize(count + 2) + 4 + 66 + bp
}

/** Bytes of a CBOR head for a count below 2^16. */
function smallHeadSize (c: number): number {
  return c < 24 ? 1 : c < 0x100 ? 2 : 3
}

/** Where leafWire splices (spliceWire reads it before it returns): no object per envelope. */
const leafMarks = { v: 0, net: 0 }

function leafWire (batch: SignedBatch, i: number): Uint8Array {
  return spliceLeafWire(batch.unsigned[i] as Uint8Array, batch.sig, batch.proof(i))
}

/**
 * The wire bytes of a batch leaf from its unsigned bytes, the batch signature and its proof —
 * byte-identical to what its signer sent (the store keeps the three apart: STORE.md, schema 8).
 * A view into a shared slab, as every encoder output.
 */
export function spliceLeafWire (u: Uint8Array, sig: Uint8Array, bp: BatchProof): Uint8Array {
  leafMarks.v = mapEntryEnd(u, 'v')
  leafMarks.net = mapEntryEnd(u, 'net')
  return spliceWire(u, leafMarks, sig, bp)
}

/** Lenient decode, then a re-encode compared byte for byte: tells garbage from non-canonical CBOR. */
function decodeGeneral (bytes: Uint8Array): { ok: true, value: Record<string, unknown> } | { ok: false, reason: DecodeFailure, detail: string } {
  let value: unknown
  try {
    // Lenient parse first, so that well-formed but non-canonical CBOR (non-minimal
    // integers, indefinite lengths, unsorted keys) is told apart from garbage below.
    value = cborg.decode(bytes, LENIENT_DECODE)
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message.slice(0, 200) }
  }
  if (value == null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    return { ok: false, reason: 'malformed', detail: 'envelope is not a map' }
  }
  const obj = value as Record<string, unknown>
  let reencoded: Uint8Array
  try {
    reencoded = dagCbor.encode(obj)
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message.slice(0, 200) }
  }
  if (!bytesEqual(reencoded, bytes)) return { ok: false, reason: 'non-canonical', detail: 'bytes are not the canonical encoding' }
  return { ok: true, value: obj }
}

/** `bp` off the wire: [n, i, [hash…]]; null when malformed. The path length is checked by rootFromProof. */
function parseProof (v: unknown): BatchProof | null {
  if (!Array.isArray(v) || v.length !== 3) return null
  const [n, i, path] = v as unknown[]
  if (!isInt(n, 2, MAX_BATCH) || !isInt(i, 0, n - 1) || !Array.isArray(path) || path.length > 32) return null
  for (const h of path) if (!(h instanceof Uint8Array) || h.length !== 32) return null
  return { n, i, path: path as Uint8Array[] }
}

const LENIENT_DECODE = { ...dagCbor.decodeOptions, strict: false, allowIndefinite: true, rejectDuplicateMapKeys: true }

function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

function isInt (n: unknown, min: number, max: number): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max
}

function isShortString (s: unknown, max: number = LIMITS.maxStringField): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= max
}

/** Returns a description of the first problem, or undefined when the fields are well formed. */
export function checkFields (f: Record<string, unknown>): string | undefined {
  for (const k of Object.keys(f)) if (!FIELD_NAMES.has(k)) return `unknown field ${JSON.stringify(k)}`
  if (f.v !== ENVELOPE_VERSION) return `unsupported version ${String(f.v)}`
  if (!isNetworkId(f.net)) return 'net must be a network id'
  if (!MODES.includes(f.mode as Mode)) return `mode must be one of ${MODES.join(', ')}`
  if (!isShortString(f.type, 64)) return 'type must be a string of 1–64 characters'
  if (!isAgentId(f.from)) return 'from must be an Ed25519 did:key'
  if (f.to !== undefined) {
    if (!Array.isArray(f.to) || f.to.length === 0 || f.to.length > LIMITS.maxRecipients) return `to must list 1–${LIMITS.maxRecipients} agents`
    for (const a of f.to) if (!isAgentId(a)) return 'to must contain did:key agent ids'
  }
  if (f.topic !== undefined && !isTopic(f.topic)) return 'topic is not a valid topic'
  switch (f.mode) {
    case 'topic': if (f.topic === undefined || f.to !== undefined) return 'topic mode needs topic and no recipients'; break
    case 'direct': if (f.to === undefined || (f.to as unknown[]).length !== 1) return 'direct mode needs exactly one recipient'; break
    case 'multicast': if (f.to === undefined) return 'multicast mode needs recipients'; break
    case 'broadcast': if (f.to !== undefined) return 'broadcast mode takes no recipients'; break
  }
  for (const k of ['schema', 'proto', 'conv', 'corr', 'replyTo'] as const) {
    if (f[k] !== undefined && !isShortString(f[k])) return `${k} must be a string of 1–${LIMITS.maxStringField} characters`
  }
  const when = checkTsNonce(f)
  if (when !== undefined) return when
  if (!isInt(f.ttl, 1, LIMITS.maxTtlSeconds)) return `ttl must be 1–${LIMITS.maxTtlSeconds} seconds`
  if (!isInt(f.hops, 0, LIMITS.maxHops)) return `hops must be 0–${LIMITS.maxHops}`
  if (!isInt(f.prio, 0, 3)) return 'prio must be 0–3'
  const delivery = checkDelivery(f)
  if (delivery !== undefined) return delivery
  if (!isShortString(f.ct, LIMITS.maxContentType)) return 'ct must be a content type'
  if (f.enc !== undefined && !COMPRESSIONS.includes(f.enc as Compression)) return `enc must be one of ${COMPRESSIONS.join(', ')}`
  return checkBody(f)
}

// The checks of the fields a batch's envelopes differ in (LEAF_VARYING), shared by
// checkFields and LeafDecoder.
function checkTsNonce (f: Record<string, unknown>): string | undefined {
  if (!isInt(f.ts, 0, Number.MAX_SAFE_INTEGER)) return 'ts must be a non-negative integer (ms)'
  if (f.nonce !== undefined && !isInt(f.nonce, 1, Number.MAX_SAFE_INTEGER)) return 'nonce must be a positive integer'
  return undefined
}

function checkDelivery (f: Record<string, unknown>): string | undefined {
  if (f.dlv === undefined) return undefined
  if (f.dlv == null || typeof f.dlv !== 'object' || Array.isArray(f.dlv) || f.dlv instanceof Uint8Array) return 'dlv must be a map'
  const d = f.dlv as Record<string, unknown>
  // Its own keys, as Object.keys lists them, without the array Object.keys makes (once per leaf).
  for (const k in d) if (Object.hasOwn(d, k) && !DELIVERY_NAMES.has(k)) return `unknown delivery field ${JSON.stringify(k)}`
  if (d.ack !== undefined && typeof d.ack !== 'boolean') return 'dlv.ack must be a boolean'
  if (d.dedup !== undefined && typeof d.dedup !== 'boolean') return 'dlv.dedup must be a boolean'
  if (d.durable !== undefined && typeof d.durable !== 'boolean') return 'dlv.durable must be a boolean'
  if (d.maxMs !== undefined && !isInt(d.maxMs, 1, LIMITS.maxTtlSeconds * 1000)) return 'dlv.maxMs out of range'
  if (d.retries !== undefined && !isInt(d.retries, 0, LIMITS.maxRetries)) return `dlv.retries must be 0–${LIMITS.maxRetries}`
  if (d.seq !== undefined && !isInt(d.seq, 0, Number.MAX_SAFE_INTEGER)) return 'dlv.seq must be a non-negative integer'
  return undefined
}

function checkBody (f: Record<string, unknown>): string | undefined {
  return f.body instanceof Uint8Array ? undefined : 'body must be bytes'
}

/** The payload bytes, decompressed when `enc` says so, bounded by `maxBytes`. */
export function envelopePayload (env: Pick<EnvelopeFields, 'body' | 'enc'>, maxBytes: number = LIMITS.maxEnvelopeBytes): Uint8Array {
  if (env.enc === 'gzip') {
    try {
      return new Uint8Array(gunzipSync(env.body, { maxOutputLength: maxBytes }))
    } catch (err) {
      throw new InvalidEnvelopeError(`payload does not decompress within ${maxBytes} bytes`, { cause: err })
    }
  }
  return env.body
}

export function compressPayload (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(bytes))
}

/** JSON form used by the HTTP API and the CLI. */
export interface EnvelopeJson {
  id: string
  v: number
  net: string
  mode: Mode
  type: string
  from: string
  to?: string[]
  topic?: string
  schema?: string
  proto?: string
  conv?: string
  corr?: string
  replyTo?: string
  ts: number
  ttl: number
  hops: number
  prio: number
  dlv?: Delivery
  ct: string
  enc?: Compression
  /** Parsed payload when ct is JSON, otherwise absent (see payloadBase64). */
  payload?: unknown
  payloadBase64?: string
  sig: string
  /** Batch inclusion proof, hashes in base64 (section 4.1). */
  bp?: { n: number, i: number, path: string[] }
}

export function isJsonContentType (ct: string): boolean {
  return ct === 'application/json' || ct.endsWith('+json')
}

export function envelopeToJson (env: Envelope): EnvelopeJson {
  const { bytes: _bytes, body: _body, sig, id, bp, ...rest } = env
  const out: EnvelopeJson = { id, ...rest, sig: Buffer.from(sig).toString('base64') }
  if (bp !== undefined) out.bp = { n: bp.n, i: bp.i, path: bp.path.map(h => Buffer.from(h).toString('base64')) }
  const payload = envelopePayload(env)
  if (isJsonContentType(env.ct)) {
    try {
      out.payload = JSON.parse(Buffer.from(payload).toString('utf8'))
      return out
    } catch { /* fall through to base64 */ }
  }
  out.payloadBase64 = Buffer.from(payload).toString('base64')
  return out
}

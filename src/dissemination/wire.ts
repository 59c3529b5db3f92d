/**
 * The dissemination core's control frames on a FrameLink (docs/DISSEMINATION.md, "Wire
 * mapping"; docs/PROTOCOL.md section 8.2): encoding, bounded decoding and the interest
 * record signature. Data frames (`t: 6`) carry a signed envelope and are checked by the
 * router's ingress; they are mapped in routing/topic-path.ts.
 *
 *   interest  {t: 3, r: [[origin, seq, [pattern…], hops, label, sig], …]}
 *   lost      {t: 4, l: [[origin, seq, fd], …]}
 *   request   {t: 5, q: [[origin, seq], …]}
 *
 * Node ids travel as peer-id bytes (the multihash, 38 bytes for Ed25519 ids).
 */
import * as dagCbor from '@ipld/dag-cbor'
import { base58btc } from 'multiformats/bases/base58'
import { didFromPublicKey, verifyByDid } from '../core/keys.ts'
import { FRAME_INTEREST, FRAME_LOST, FRAME_REQUEST, type ControlFrame } from '../net/frames.ts'
import type { Frame, InterestRecord, NodeId, RouteRef } from './types.ts'

export const INTEREST_DOMAIN = new TextEncoder().encode('fedmesh/interest/v1')
/** Most routes one `lost` or `request` frame may name (the 1 MiB frame limit bounds it too). */
export const MAX_ROUTES_PER_FRAME = 100_001
const MAX_NODE_ID_BYTES = 64
/** An Ed25519 peer id: identity multihash (0x00, 36 bytes) of the protobuf public key (type 1, 32 bytes). */
const ED25519_PEER_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]

export function nodeIdToBytes (id: NodeId): Uint8Array {
  return base58btc.decode(`z${id}`)
}

export function nodeIdFromBytes (bytes: Uint8Array): NodeId {
  return base58btc.encode(bytes).slice(1) as NodeId
}

/** The bytes an origin node signs for its interest record. */
export function interestSigningInput (r: Pick<InterestRecord, 'origin' | 'seq' | 'patterns'>): Uint8Array {
  const body = dagCbor.encode([nodeIdToBytes(r.origin), r.seq, [...r.patterns]])
  const out = new Uint8Array(INTEREST_DOMAIN.length + body.length)
  out.set(INTEREST_DOMAIN, 0)
  out.set(body, INTEREST_DOMAIN.length)
  return out
}

/** The Ed25519 public key inside an Ed25519 peer id, or undefined for any other kind of id. */
export function ed25519KeyOfNode (id: NodeId): Uint8Array | undefined {
  let bytes: Uint8Array
  try { bytes = nodeIdToBytes(id) } catch { return undefined }
  if (bytes.length !== 38) return undefined
  for (let i = 0; i < ED25519_PEER_PREFIX.length; i++) if (bytes[i] !== ED25519_PEER_PREFIX[i]) return undefined
  return bytes.subarray(6)
}

/** True when `sig` is the origin's signature over the record. */
export function verifyInterestRecord (r: InterestRecord): boolean {
  if (r.sig === undefined || r.sig.length !== 64) return false
  const key = ed25519KeyOfNode(r.origin)
  if (key === undefined) return false
  return verifyByDid(didFromPublicKey(key), interestSigningInput(r), r.sig)
}

/**
 * Remembers which (origin, seq, signature) were verified: a record reaches a node from
 * every neighbour, and each copy would otherwise cost a signature check. Bounded; the
 * oldest entries go first.
 */
export class RecordSignatureCache {
  private readonly ok = new Map<string, Uint8Array>()
  private readonly max: number

  constructor (max: number = 20_000) { this.max = max }

  verify (r: InterestRecord): boolean {
    const key = `${r.origin}|${r.seq}`
    const known = this.ok.get(key)
    if (known !== undefined && r.sig !== undefined && Buffer.compare(known, r.sig) === 0) return true
    if (!verifyInterestRecord(r)) return false
    if (this.ok.size >= this.max) this.ok.delete(this.ok.keys().next().value as string)
    this.ok.set(key, r.sig as Uint8Array)
    return true
  }
}

/** Encodes a core control frame; data frames are encoded by the router (net/frames.ts). */
export function encodeControlFrame (frame: Frame<unknown>): Uint8Array {
  switch (frame.kind) {
    case 'interest':
      return dagCbor.encode({
        t: FRAME_INTEREST,
        r: frame.records.map(r => [nodeIdToBytes(r.origin), r.seq, [...r.patterns], r.hops, r.slot, r.sig ?? new Uint8Array(0)])
      })
    case 'lost':
      return dagCbor.encode({ t: FRAME_LOST, l: frame.routes.map(r => [nodeIdToBytes(r.origin), r.seq, r.fd ?? 0]) })
    case 'request':
      return dagCbor.encode({ t: FRAME_REQUEST, q: frame.routes.map(r => [nodeIdToBytes(r.origin), r.seq]) })
    default:
      throw new TypeError(`not a control frame: ${frame.kind}`)
  }
}

export interface DecodeLimits {
  maxRecordsPerFrame: number
  maxPatternsPerRecord: number
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isNodeBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length > 0 && v.length <= MAX_NODE_ID_BYTES

/**
 * Maps a wire control frame to a core frame, within bounds; undefined when it is malformed
 * (the caller counts it). Record signatures are checked separately (RecordSignatureCache).
 */
export function decodeControlFrame (f: ControlFrame, limits: DecodeLimits): Frame<never> | undefined {
  if (f.t === FRAME_INTEREST) {
    if (!Array.isArray(f.r) || f.r.length > limits.maxRecordsPerFrame) return undefined
    const records: InterestRecord[] = []
    for (const r of f.r as unknown[]) {
      if (!Array.isArray(r) || r.length !== 6) return undefined
      const [origin, seq, patterns, hops, slot, sig] = r as unknown[]
      if (!isNodeBytes(origin) || !isCount(seq) || !isCount(hops) || !isCount(slot) || !(sig instanceof Uint8Array)) return undefined
      if (!Array.isArray(patterns) || patterns.length > limits.maxPatternsPerRecord || !patterns.every(p => typeof p === 'string')) return undefined
      records.push({ origin: nodeIdFromBytes(origin), seq, patterns: patterns as unknown as InterestRecord['patterns'], hops, slot, sig })
    }
    return { kind: 'interest', records }
  }
  const list = f.t === FRAME_LOST ? f.l : f.q
  if (!Array.isArray(list) || list.length > MAX_ROUTES_PER_FRAME) return undefined
  const routes: RouteRef[] = []
  for (const r of list as unknown[]) {
    if (!Array.isArray(r) || r.length !== (f.t === FRAME_LOST ? 3 : 2)) return undefined
    const [origin, seq, fd] = r as unknown[]
    if (!isNodeBytes(origin) || !isCount(seq) || (f.t === FRAME_LOST && !isCount(fd))) return undefined
    routes.push(f.t === FRAME_LOST ? { origin: nodeIdFromBytes(origin), seq, fd: fd as number } : { origin: nodeIdFromBytes(origin), seq })
  }
  return f.t === FRAME_LOST ? { kind: 'lost', routes } : { kind: 'request', routes }
}

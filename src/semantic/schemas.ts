/**
 * Registry documents: JSON Schemas and protocol definitions, named by URI, addressed by
 * hash, signed by their publisher.
 *
 *   document = { v: 1, uri, schema | protocol, publisher, ts, sig }
 *   unsigned = DAG-CBOR(document without sig)            (deterministic, as envelopes)
 *   hash     = multibase base32( sha2-256 multihash(unsigned) )   ("b…", like message ids)
 *   sig      = Ed25519(publisher key, domain || multihash)
 *   domain   = "fedmesh/schema/v1" for schemas, "fedmesh/protocol/v1" for protocols
 *   wire     = DAG-CBOR(document with sig)
 *
 * Schema URIs are `ns/name@semver`; the namespace `proto` is reserved for protocol
 * definitions, whose URI is `proto/<name>@<version>` of the definition they carry.
 * Decoding is bounded (size before anything else, then shape) and never throws.
 */
import * as dagCbor from '@ipld/dag-cbor'
import * as cborg from 'cborg'
import { messageIdFromBytes } from '../core/envelope.ts'
import type { AgentId, SchemaUri } from '../core/ids.ts'
import { isAgentId, verifyByDid, type AgentKey } from '../core/keys.ts'
import { checkSchemaShape, defaultSchemaLimits, type SchemaLimits } from './bounds.ts'
import type { JsonSchema } from './compat.ts'
import { InvalidDocumentError } from './errors.ts'
import { parseProtocol, protocolUri, validateProtocol, type ProtocolDefinition } from './protocols.ts'
import { parseUri, type ParsedUri } from './semver.ts'

export const DOCUMENT_VERSION = 1
export const SCHEMA_DOMAIN = new TextEncoder().encode('fedmesh/schema/v1')
export const PROTOCOL_DOMAIN = new TextEncoder().encode('fedmesh/protocol/v1')
/** The namespace reserved for protocol definitions. */
export const PROTOCOL_NAMESPACE = 'proto'

/** Content address of a document: base32 sha2-256 multihash of its unsigned canonical bytes. */
export type DocumentHash = string & { readonly __brand: 'DocumentHash' }
export type DocumentKind = 'schema' | 'protocol'

export interface SchemaDocument {
  readonly v: 1
  readonly uri: SchemaUri
  readonly schema: JsonSchema
  readonly publisher: AgentId
  /** Publication time, ms since the Unix epoch. */
  readonly ts: number
  readonly sig: Uint8Array
}

export interface ProtocolDocument {
  readonly v: 1
  readonly uri: SchemaUri
  readonly protocol: ProtocolDefinition
  readonly publisher: AgentId
  readonly ts: number
  readonly sig: Uint8Array
}

export type RegistryDocument = SchemaDocument | ProtocolDocument

/** A document that decoded, is canonical, well-formed, within limits and correctly signed. */
export type VerifiedDocument = {
  readonly hash: DocumentHash
  /** Canonical wire bytes (with signature). */
  readonly bytes: Uint8Array
  readonly parsed: ParsedUri
} & (
  | { readonly kind: 'schema', readonly doc: SchemaDocument }
  | { readonly kind: 'protocol', readonly doc: ProtocolDocument }
)

export type DocumentFailure = 'too-large' | 'malformed' | 'non-canonical' | 'bad-field' | 'bad-schema' | 'bad-protocol' | 'bad-signature'
export type DocumentResult = { ok: true, document: VerifiedDocument } | { ok: false, reason: DocumentFailure, detail: string }

const LENIENT_DECODE = { ...dagCbor.decodeOptions, strict: false, allowIndefinite: true, rejectDuplicateMapKeys: true }
const SCHEMA_FIELDS = ['v', 'uri', 'schema', 'publisher', 'ts', 'sig']
const PROTOCOL_FIELDS = ['v', 'uri', 'protocol', 'publisher', 'ts', 'sig']

function signingInput (domain: Uint8Array, multihash: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.length + multihash.length)
  out.set(domain, 0)
  out.set(multihash, domain.length)
  return out
}

function unsignedOf (doc: Omit<RegistryDocument, 'sig'> & { sig?: unknown }): Record<string, unknown> {
  const { sig: _sig, ...rest } = doc as Record<string, unknown>
  return rest
}

/** The content address of a document (signature excluded). */
export function documentHash (doc: Omit<RegistryDocument, 'sig'>): DocumentHash {
  return messageIdFromBytes(dagCbor.encode(unsignedOf(doc))).id as string as DocumentHash
}

export function encodeDocument (doc: RegistryDocument): Uint8Array {
  return dagCbor.encode(doc)
}

function sign<T extends Omit<RegistryDocument, 'sig'>> (unsigned: T, domain: Uint8Array, key: AgentKey): T & { sig: Uint8Array } {
  const { multihash } = messageIdFromBytes(dagCbor.encode(unsigned))
  return { ...unsigned, sig: key.sign(signingInput(domain, multihash)) }
}

/**
 * Signs a schema document. Throws InvalidDocumentError when the URI is not `ns/name@semver`
 * (or uses the reserved `proto` namespace) or the schema breaks the document limits.
 *
 * @example
 * const doc = signSchemaDocument({ uri: 'acme/order@1.0.0', schema: { type: 'object' } }, key)
 * await registry.publish(doc)
 */
export function signSchemaDocument (input: { uri: string, schema: JsonSchema, ts?: number }, key: AgentKey, limits: SchemaLimits = defaultSchemaLimits): SchemaDocument {
  const doc = sign({ v: 1 as const, uri: input.uri as SchemaUri, schema: input.schema, publisher: key.id, ts: input.ts ?? Date.now() }, SCHEMA_DOMAIN, key)
  const r = decodeDocument(encodeOrThrow(doc), limits)
  if (!r.ok) throw new InvalidDocumentError(`schema document for ${input.uri}: ${r.detail}`, { details: { reason: r.reason } })
  return r.document.doc as SchemaDocument
}

/** Signs a protocol document under `proto/<name>@<version>`. Throws InvalidProtocolError / InvalidDocumentError. */
export function signProtocolDocument (def: ProtocolDefinition, key: AgentKey, ts: number = Date.now(), limits: SchemaLimits = defaultSchemaLimits): ProtocolDocument {
  const protocol = parseProtocol(def)
  const doc = sign({ v: 1 as const, uri: protocolUri(protocol), protocol: structuredClone(protocol) as ProtocolDefinition, publisher: key.id, ts }, PROTOCOL_DOMAIN, key)
  const r = decodeDocument(encodeOrThrow(doc), limits)
  if (!r.ok) throw new InvalidDocumentError(`protocol document for ${protocolUri(protocol)}: ${r.detail}`, { details: { reason: r.reason } })
  return r.document.doc as ProtocolDocument
}

function encodeOrThrow (doc: RegistryDocument): Uint8Array {
  try {
    return encodeDocument(doc)
  } catch (err) {
    throw new InvalidDocumentError(`document does not encode as DAG-CBOR (only JSON values, no undefined, finite numbers): ${(err as Error).message}`, { cause: err })
  }
}

function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

const isObj = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)

/**
 * Decodes and verifies wire bytes: size first, then DAG-CBOR, canonical form, fields, the
 * schema's shape limits or the protocol's validity, and the signature. Never throws.
 */
export function decodeDocument (bytes: Uint8Array, limits: SchemaLimits = defaultSchemaLimits): DocumentResult {
  if (bytes.length > limits.maxDocumentBytes) return { ok: false, reason: 'too-large', detail: `document is ${bytes.length} bytes, limit ${limits.maxDocumentBytes}` }
  let value: unknown
  try {
    // Lenient first, so that well-formed but non-canonical CBOR is told apart from garbage
    // (as for envelopes, docs/PROTOCOL.md section 3).
    value = cborg.decode(bytes, LENIENT_DECODE)
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message.slice(0, 200) }
  }
  if (!isObj(value)) return { ok: false, reason: 'malformed', detail: 'document is not a map' }
  try {
    // Canonical bytes only (this also catches keys such as __proto__ that decode into
    // something other than an own property).
    if (!bytesEqual(dagCbor.encode(value), bytes)) return { ok: false, reason: 'non-canonical', detail: 'bytes are not the canonical encoding' }
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message.slice(0, 200) }
  }
  const kind: DocumentKind = 'protocol' in value ? 'protocol' : 'schema'
  const fields = kind === 'schema' ? SCHEMA_FIELDS : PROTOCOL_FIELDS
  for (const k of Object.keys(value)) if (!fields.includes(k)) return { ok: false, reason: 'bad-field', detail: `unknown field ${JSON.stringify(k)}` }
  if (value.v !== DOCUMENT_VERSION) return { ok: false, reason: 'bad-field', detail: `v must be ${DOCUMENT_VERSION}` }
  const parsed = typeof value.uri === 'string' ? parseUri(value.uri) : undefined
  if (parsed == null) return { ok: false, reason: 'bad-field', detail: 'uri must be ns/name@semver' }
  if (!isAgentId(value.publisher)) return { ok: false, reason: 'bad-field', detail: 'publisher must be an Ed25519 did:key' }
  if (typeof value.ts !== 'number' || !Number.isSafeInteger(value.ts) || value.ts < 0) return { ok: false, reason: 'bad-field', detail: 'ts must be a non-negative integer (ms)' }
  if (!(value.sig instanceof Uint8Array) || value.sig.length !== 64) return { ok: false, reason: 'bad-field', detail: 'sig must be 64 bytes' }
  if (kind === 'schema') {
    if (parsed.namespace === PROTOCOL_NAMESPACE) return { ok: false, reason: 'bad-field', detail: `the namespace ${PROTOCOL_NAMESPACE}/ is reserved for protocol definitions` }
    if (typeof value.schema !== 'boolean' && !isObj(value.schema)) return { ok: false, reason: 'bad-schema', detail: 'schema must be an object or a boolean' }
    const problem = checkSchemaShape(value.schema, limits)
    if (problem != null) return { ok: false, reason: 'bad-schema', detail: problem }
  } else {
    if (parsed.namespace !== PROTOCOL_NAMESPACE) return { ok: false, reason: 'bad-field', detail: `protocol documents live under ${PROTOCOL_NAMESPACE}/` }
    const problems = validateProtocol(value.protocol)
    if (problems.length > 0) return { ok: false, reason: 'bad-protocol', detail: problems.slice(0, 5).join('; ') }
    if (protocolUri(value.protocol as ProtocolDefinition) !== parsed.uri) return { ok: false, reason: 'bad-field', detail: `uri ${parsed.uri} does not match the definition's ${protocolUri(value.protocol as ProtocolDefinition)}` }
  }
  const { sig, ...unsigned } = value
  const { id, multihash } = messageIdFromBytes(dagCbor.encode(unsigned))
  const domain = kind === 'schema' ? SCHEMA_DOMAIN : PROTOCOL_DOMAIN
  if (!verifyByDid(value.publisher, signingInput(domain, multihash), sig as Uint8Array)) return { ok: false, reason: 'bad-signature', detail: `signature does not verify for ${value.publisher}` }
  const hash = id as string as DocumentHash
  return kind === 'schema'
    ? { ok: true, document: Object.freeze({ kind, doc: value as unknown as SchemaDocument, hash, bytes, parsed }) }
    : { ok: true, document: Object.freeze({ kind, doc: value as unknown as ProtocolDocument, hash, bytes, parsed }) }
}

/** Verifies a document object (as built by signSchemaDocument or received as JSON). Throws InvalidDocumentError. */
export function verifyDocument (doc: RegistryDocument, limits: SchemaLimits = defaultSchemaLimits): VerifiedDocument {
  const r = decodeDocument(encodeOrThrow(doc), limits)
  if (!r.ok) throw new InvalidDocumentError(`invalid document ${String((doc as { uri?: unknown }).uri)}: ${r.detail}`, { details: { reason: r.reason } })
  return r.document
}

/** JSON form of a document (CLI, HTTP API): `sig` as base64. */
export interface DocumentJson { v: 1, uri: string, schema?: JsonSchema, protocol?: ProtocolDefinition, publisher: string, ts: number, sig: string }

export function documentToJson (doc: RegistryDocument): DocumentJson {
  return { ...(doc as unknown as Omit<DocumentJson, 'sig'>), sig: Buffer.from(doc.sig).toString('base64') }
}

export function documentFromJson (json: DocumentJson): RegistryDocument {
  if (!isObj(json) || typeof json.sig !== 'string') throw new InvalidDocumentError('document JSON needs a base64 sig')
  return { ...json, sig: new Uint8Array(Buffer.from(json.sig, 'base64')) } as unknown as RegistryDocument
}

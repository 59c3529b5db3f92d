/**
 * Built-in registry documents: the not-understood payload, the market schemas and the
 * built-in protocols. Every registry preloads them (unless told not to), so they resolve
 * with no network at all and nobody can take their URIs.
 *
 * They are signed by a well-known key derived from a public seed, `sha256("fedmesh/builtin/v1")`,
 * with a fixed timestamp: Ed25519 is deterministic, so every node builds byte-identical
 * documents with the same hashes. Since anyone can sign with that key, registries accept
 * documents from this publisher only when they are byte-identical to a built-in.
 */
import { createHash } from 'node:crypto'
import type { AgentId } from '../core/ids.ts'
import { agentKeyFromSeed, type AgentKey } from '../core/keys.ts'
import type { JsonSchema } from './compat.ts'
import { CONTRACT_SCHEMA, PROPOSAL_SCHEMA, RFP_SCHEMA } from './market.ts'
import { NOT_UNDERSTOOD_SCHEMA } from './performatives.ts'
import { BUILTIN_PROTOCOLS, MARKET_CONTRACT, MARKET_PROPOSAL, MARKET_RFP } from './protocols.ts'
import { decodeDocument, encodeDocument, signProtocolDocument, signSchemaDocument, type VerifiedDocument } from './schemas.ts'

/** 2026-01-01T00:00:00Z. */
export const BUILTIN_TS = 1_767_225_600_000

export function builtinKey (): AgentKey {
  return agentKeyFromSeed(new Uint8Array(createHash('sha256').update('fedmesh/builtin/v1').digest()))
}

/** The did:key of the built-in publisher. */
export const BUILTIN_PUBLISHER: AgentId = builtinKey().id

const TEXT = (max: number): Record<string, unknown> => ({ type: 'string', maxLength: max })

/** `fedmesh/not-understood@1.0.0`: why a message was not understood and what was expected instead. */
export const NOT_UNDERSTOOD_SCHEMA_JSON: JsonSchema = Object.freeze({
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'not-understood',
  type: 'object',
  properties: {
    reason: TEXT(64),
    detail: TEXT(2000),
    message: TEXT(256),
    received: { type: 'object', properties: { performative: TEXT(64), schema: TEXT(256) }, required: ['performative'], additionalProperties: false },
    state: TEXT(64),
    expected: {
      type: 'array',
      maxItems: 512,
      items: {
        type: 'object',
        properties: { performative: TEXT(64), sender: TEXT(64), schema: TEXT(256), to: TEXT(64) },
        required: ['performative', 'sender', 'to'],
        additionalProperties: false
      }
    },
    errors: {
      type: 'array',
      maxItems: 50,
      items: { type: 'object', properties: { path: TEXT(1024), message: TEXT(1024), keyword: TEXT(64) }, required: ['path', 'message'], additionalProperties: false }
    }
  },
  required: ['reason'],
  additionalProperties: false
})

/** The built-in schemas by URI. */
export const BUILTIN_SCHEMAS: Readonly<Record<string, JsonSchema>> = Object.freeze({
  [NOT_UNDERSTOOD_SCHEMA]: NOT_UNDERSTOOD_SCHEMA_JSON,
  [MARKET_RFP]: RFP_SCHEMA,
  [MARKET_PROPOSAL]: PROPOSAL_SCHEMA,
  [MARKET_CONTRACT]: CONTRACT_SCHEMA
})

let cached: readonly VerifiedDocument[] | undefined

/** The built-in documents, verified (computed once: they are constants). */
export function builtinDocuments (): readonly VerifiedDocument[] {
  if (cached != null) return cached
  const key = builtinKey()
  const docs = [
    ...Object.entries(BUILTIN_SCHEMAS).map(([uri, schema]) => signSchemaDocument({ uri, schema, ts: BUILTIN_TS }, key)),
    ...BUILTIN_PROTOCOLS.map((p) => signProtocolDocument(p, key, BUILTIN_TS))
  ]
  cached = Object.freeze(docs.map((d) => {
    const r = decodeDocument(encodeDocument(d))
    if (!r.ok) throw new Error(`built-in document ${d.uri} is invalid: ${r.detail}`)
    return r.document
  }))
  return cached
}

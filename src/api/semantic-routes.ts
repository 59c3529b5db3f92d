/**
 * The schema registry over HTTP (docs/API.md "Schemas and protocols"): publish, get, list,
 * validate, and the raw record lookup remote agents use to fetch schemas through their node.
 * Errors are the semantic layer's typed errors, mapped by the one table in errors.ts.
 */
import type { FastifyInstance } from 'fastify'
import { InvalidArgumentError } from '../core/errors.ts'
import type { Envelope } from '../core/envelope.ts'
import { fromBase64, toBase64 } from '../util/base64.ts'
import {
  parseRegistryKey, SchemaNotFoundError, type PublishResult, type SchemaRegistry, type ValidationIssue, type VerifiedDocument, type RegistryNetwork, type Validation
} from '../semantic/index.ts'
import { documentInfo } from '../node/semantic.ts'
import { agentName } from './schemas.ts'

/** What the routes need from the node (MeshNodeImpl provides it as `semantic`). */
export interface ApiSemantics {
  registry: SchemaRegistry
  validation: Validation
  network: RegistryNetwork
  publishDocument: (bytes: Uint8Array, options?: { signal?: AbortSignal }) => Promise<PublishResult>
  /** Signs with the local agent `agent` (default `default`) and publishes. */
  publishSchema: (input: unknown, options: { agent?: string, uri?: string, signal?: AbortSignal }) => Promise<PublishResult>
  publishProtocol: (def: unknown, options: { agent?: string, signal?: AbortSignal }) => Promise<PublishResult>
  /** Checks an envelope a remote agent submits (naming a schema): throws the typed validation error. */
  checkSubmission: (env: Envelope) => Promise<void>
}

const MAX_DOC_BASE64 = Math.ceil((256 * 1024) / 3) * 4
const uriString = { type: 'string', minLength: 3, maxLength: 256, description: 'Registry URI `namespace/name@semver`.' } as const
const hashString = { type: 'string', minLength: 10, maxLength: 80, description: 'Document hash (`b…`).' } as const
const documentB64 = { type: 'string', minLength: 4, maxLength: MAX_DOC_BASE64, pattern: '^[A-Za-z0-9+/]*={0,2}$', description: 'A signed registry document (DAG-CBOR), base64.' } as const
const closed = (properties: Record<string, unknown>, required: string[] = []) => ({ type: 'object', additionalProperties: false, required, properties })

const publishResult = {
  type: 'object',
  properties: {
    uri: { type: 'string' },
    hash: { type: 'string' },
    fresh: { type: 'boolean', description: 'False when the node already held this exact document.' },
    network: { type: 'object', properties: { stored: { type: 'boolean' }, announced: { type: 'boolean' }, errors: { type: 'array', items: { type: 'string' } } } }
  }
}
const info = { type: 'object', properties: { uri: { type: 'string' }, hash: { type: 'string' }, kind: { enum: ['schema', 'protocol'] }, publisher: { type: 'string' }, ts: { type: 'integer' } } }
const publishErrors = ['InvalidDocumentError', 'IncompatibleSchemaError', 'SchemaConflictError'] as const

function full (d: VerifiedDocument): Record<string, unknown> {
  return { ...documentInfo(d), ...(d.kind === 'schema' ? { schema: d.doc.schema } : { protocol: d.doc.protocol }), document: toBase64(d.bytes) }
}

async function resolve (reg: SchemaRegistry, q: { uri?: string, hash?: string }, signal: AbortSignal): Promise<VerifiedDocument> {
  if ((q.uri == null) === (q.hash == null)) throw new InvalidArgumentError('give uri or hash')
  return q.uri != null ? await reg.resolve(q.uri, { signal }) : await reg.resolveHash(q.hash as string, { signal })
}

export function registerSemanticRoutes (app: FastifyInstance, get: () => ApiSemantics | undefined): void {
  const sem = (): ApiSemantics => {
    const s = get()
    if (s == null) throw new SchemaNotFoundError('this node has no schema registry')
    return s
  }
  const lookup = (): AbortSignal => AbortSignal.timeout(10_000)

  app.post<{ Body: { document?: string, uri?: string, schema?: unknown, agent?: string } }>('/v1/schemas', {
    schema: { body: closed({ document: documentB64, uri: uriString, schema: { description: 'A JSON Schema (2020-12), or `{ uri, schema }`.' }, agent: agentName }) },
    config: { doc: { summary: 'Publish a schema: a signed `document`, or a `schema` (with `uri`) signed here by the local `agent`. Checked for compatibility, stored, announced on the mesh', response: publishResult, errors: [...publishErrors] } }
  }, async (req) => {
    const b = req.body
    if (b.document != null) {
      if (b.schema !== undefined || b.uri != null || b.agent != null) throw new InvalidArgumentError('give document alone, or schema (with uri, agent)')
      return await sem().publishDocument(fromBase64(b.document, 'document'))
    }
    if (b.schema === undefined) throw new InvalidArgumentError('body needs document or schema')
    return await sem().publishSchema(b.schema, { agent: b.agent, uri: b.uri })
  })

  app.get<{ Querystring: { kind?: 'schema' | 'protocol', name?: string } }>('/v1/schemas', {
    schema: { querystring: closed({ kind: { type: 'string', enum: ['schema', 'protocol'] }, name: { type: 'string', minLength: 1, maxLength: 200 } }) },
    config: { doc: { summary: 'Registry documents held by this node (built-ins included), by name and version', response: { type: 'array', items: info } } }
  }, async (req) => sem().registry.list({ kind: req.query.kind, name: req.query.name }).map(documentInfo))

  app.get<{ Querystring: { uri?: string, hash?: string } }>('/v1/schemas/document', {
    schema: { querystring: closed({ uri: uriString, hash: hashString }) },
    config: { doc: { summary: 'One document by URI or hash, fetched from the mesh when not held here: its info, the schema or protocol, and the signed bytes (base64)', response: { type: 'object' }, errors: ['SchemaNotFoundError'] } }
  }, async (req) => full(await resolve(sem().registry, req.query, lookup())))

  app.post<{ Body: { schema: string, payload: unknown } }>('/v1/schemas/validate', {
    schema: { body: closed({ schema: uriString, payload: { description: 'The JSON value to check.' } }, ['schema', 'payload']) },
    config: { doc: { summary: 'Validate a payload against a schema (limits first, then the compiled validator): `{ ok, reason?, errors }`', response: { type: 'object', properties: { ok: { type: 'boolean' }, reason: { type: 'string' }, errors: { type: 'array' } } }, errors: ['SchemaNotFoundError'] } }
  }, async (req) => {
    const s = sem()
    await s.registry.validator(req.body.schema, { signal: lookup() }) // SchemaNotFoundError → 404
    const body = new TextEncoder().encode(JSON.stringify(req.body.payload ?? null))
    const r = await s.validation.checkIncoming({ schema: req.body.schema, ct: 'application/json', body }, { signal: lookup() })
    return r.ok ? { ok: true, errors: [] as ValidationIssue[] } : { ok: false, reason: r.reason, errors: r.errors }
  })

  app.post<{ Body: { document?: string, protocol?: unknown, agent?: string } }>('/v1/protocols', {
    schema: { body: closed({ document: documentB64, protocol: { description: 'A protocol definition (docs/SEMANTIC.md §8).' }, agent: agentName }) },
    config: { doc: { summary: 'Publish a protocol definition (signed here by the local `agent`) or a signed protocol `document`, as `proto/<name>@<version>`', response: publishResult, errors: ['InvalidProtocolError', ...publishErrors] } }
  }, async (req) => {
    const b = req.body
    if (b.document != null) {
      if (b.protocol !== undefined || b.agent != null) throw new InvalidArgumentError('give document alone, or protocol (with agent)')
      return await sem().publishDocument(fromBase64(b.document, 'document'))
    }
    if (b.protocol === undefined) throw new InvalidArgumentError('body needs document or protocol')
    return await sem().publishProtocol(b.protocol, { agent: b.agent })
  })

  app.get('/v1/protocols', {
    config: { doc: { summary: 'Protocol definitions held by this node', response: { type: 'array', items: info } } }
  }, async () => sem().registry.list({ kind: 'protocol' }).map(documentInfo))

  app.get<{ Querystring: { uri?: string, hash?: string } }>('/v1/protocols/document', {
    schema: { querystring: closed({ uri: uriString, hash: hashString }) },
    config: { doc: { summary: 'One protocol definition by URI (`proto/name@version`) or hash, fetched from the mesh when not held here', response: { type: 'object' }, errors: ['SchemaNotFoundError'] } }
  }, async (req) => {
    const d = await resolve(sem().registry, req.query, lookup())
    if (d.kind !== 'protocol') throw new SchemaNotFoundError(`${d.parsed.uri} is a schema, not a protocol`)
    return full(d)
  })

  app.get<{ Querystring: { key: string } }>('/v1/registry/record', {
    schema: { querystring: closed({ key: { type: 'string', minLength: 10, maxLength: 400, description: 'A registry key `/fedmesh/schema/{uri,hash,latest}/…`.' } }, ['key']) },
    config: { doc: { summary: 'The signed document under a registry key, from this node or the mesh (remote agents fetch schemas with it)', response: { type: 'object', properties: { document: { type: 'string' } } }, errors: ['SchemaNotFoundError'] } }
  }, async (req) => {
    const k = parseRegistryKey(req.query.key)
    if (k == null) throw new InvalidArgumentError(`not a registry key: ${req.query.key}`)
    const s = sem()
    if (k.kind === 'uri') return { document: toBase64((await s.registry.resolve(k.uri, { signal: lookup() })).bytes) }
    if (k.kind === 'hash') return { document: toBase64((await s.registry.resolveHash(k.hash, { signal: lookup() })).bytes) }
    const bytes = await s.network.get(req.query.key, { signal: lookup() })
    if (bytes == null) throw new SchemaNotFoundError(`nothing under ${req.query.key}`)
    return { document: toBase64(bytes) }
  })
}

/**
 * Reading schema and protocol files, for the CLI (`fedmesh schema publish FILE`,
 * `fedmesh protocol publish FILE`) and the HTTP API. The bytes are bounded and scanned
 * before JSON.parse, like payloads.
 *
 * A schema file is either `{ "uri": "ns/name@x.y.z", "schema": { … } }` or a bare JSON
 * Schema, with the URI given separately (`--uri`). A protocol file is a protocol
 * definition (docs/SEMANTIC.md, section 8).
 */
import { InvalidArgumentError } from '../core/errors.ts'
import { createPayloadLimits, scanJson } from './bounds.ts'
import type { JsonSchema } from './compat.ts'
import { parseProtocol, type ProtocolDefinition } from './protocols.ts'
import { parseUri } from './semver.ts'

const FILE_LIMITS = createPayloadLimits({ maxBytes: 64 * 1024, maxDepth: 40, maxStringLength: 8192 })

function readJson (bytes: Uint8Array | string, what: string): unknown {
  const b = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes
  const scan = scanJson(b, FILE_LIMITS)
  if (!scan.ok) throw new InvalidArgumentError(`${what}: ${scan.issue.path !== '' ? scan.issue.path + ': ' : ''}${scan.issue.message}`)
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b))
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not JSON: ${(err as Error).message}`, { cause: err })
  }
}

/** The URI and schema of a schema file; `uri` (from `--uri`) overrides or completes the file. */
export function parseSchemaFile (bytes: Uint8Array | string, uri?: string): { uri: string, schema: JsonSchema } {
  const v = readJson(bytes, 'schema file')
  const wrapped = v != null && typeof v === 'object' && !Array.isArray(v) && 'schema' in v && Object.keys(v).every((k) => k === 'uri' || k === 'schema')
  const schema = (wrapped ? (v as { schema: unknown }).schema : v) as JsonSchema
  const name = uri ?? (wrapped ? (v as { uri?: unknown }).uri : undefined)
  if (typeof name !== 'string' || parseUri(name) == null) throw new InvalidArgumentError('the schema needs a URI ns/name@x.y.z: put {"uri", "schema"} in the file or pass --uri')
  if (typeof schema !== 'boolean' && (schema == null || typeof schema !== 'object' || Array.isArray(schema))) throw new InvalidArgumentError('a JSON Schema is an object or a boolean')
  return { uri: name, schema }
}

/** A protocol definition file, validated (InvalidProtocolError lists every problem). */
export function parseProtocolFile (bytes: Uint8Array | string): ProtocolDefinition {
  return parseProtocol(readJson(bytes, 'protocol file'))
}

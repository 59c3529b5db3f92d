/**
 * `fedmesh schema …`, `fedmesh protocol …` and `fedmesh audit`: the schema registry of the
 * running node through its API (docs/API.md), and the audit of an exported conversation.
 * Files are checked here first (a bad file fails fast with exit 2), then published by the
 * node, which signs with one of its local agents (`--agent`, default `default`).
 */
import { readFile } from 'node:fs/promises'
import { UsageError, CliError, jsonFlag, stringFlag, type Command, type OptionSpec } from './args.ts'
import { call, locateNode, type NodeApi } from './client.ts'
import {
  auditConversation, createSchemaRegistry, importConversation, parseProtocolFile, parseSchemaFile, parseUri, type AuditReport
} from '../semantic/index.ts'
import { httpRegistryNetwork } from '../sdk/http-registry.ts'

function out (v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n')
}

function print (s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n')
}

const json: Record<string, OptionSpec> = { json: { type: 'boolean', help: 'Print JSON' } }
const agentOpt: Record<string, OptionSpec> = { agent: { type: 'string', arg: 'NAME', help: 'Local agent that signs the document (default "default"; created on first use)' } }

/** Reads a file of at most 1 MiB (a registry document is far smaller). */
async function readSmall (path: string): Promise<Buffer> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (bytes.length > 1024 * 1024) throw new UsageError(`${path} is larger than 1 MiB`)
  return bytes
}

function uriArg (s: string): string {
  if (parseUri(s) == null) throw new UsageError(`not a registry URI namespace/name@x.y.z: ${JSON.stringify(s)}`)
  return s
}

interface PublishResultJson { uri: string, hash: string, fresh: boolean, network?: { stored: boolean, announced: boolean, errors: string[] } }
interface InfoJson { uri: string, hash: string, kind: string, publisher: string, ts: number }

function published (r: PublishResultJson, asJson: boolean): void {
  if (asJson) { out(r); return }
  const where = r.network == null ? '' : r.network.stored || r.network.announced ? `, ${[r.network.stored ? 'stored on the mesh' : '', r.network.announced ? 'announced' : ''].filter(x => x !== '').join(' and ')}` : ', kept on this node (no peers yet)'
  print(`${r.fresh ? 'published' : 'already published'} ${r.uri}  ${r.hash}${where}`)
}

function listing (list: InfoJson[], asJson: boolean): void {
  if (asJson) { out(list); return }
  if (list.length === 0) { print('none'); return }
  const width = Math.max(...list.map(d => d.uri.length))
  for (const d of list) print(`${d.uri.padEnd(width)}  ${d.kind.padEnd(8)}  ${d.publisher}`)
}

const schemaPublish: Command = {
  name: 'schema publish',
  args: ['FILE'],
  summary: 'Publish the JSON Schema in FILE (`{"uri","schema"}`, or a bare schema with --uri) on the mesh, signed by a local agent. ' +
    'A new minor/patch version must accept everything the previous one accepted (IncompatibleSchemaError otherwise).',
  options: { ...agentOpt, ...json, uri: { type: 'string', arg: 'URI', help: 'The schema\'s URI namespace/name@x.y.z: needed when FILE holds a bare schema, and used instead of the file\'s "uri" when both are given' } },
  run: async ({ values, positionals, dir }) => {
    const file = parseSchemaFile(await readSmall(positionals[0]), stringFlag(values.uri))
    const r = await call<PublishResultJson>(await locateNode(dir), 'POST', '/v1/schemas', { uri: file.uri, schema: file.schema, agent: stringFlag(values.agent) })
    published(r, values.json === true)
  }
}

const schemaGet: Command = {
  name: 'schema get',
  args: ['URI'],
  summary: 'Print the JSON Schema published under URI (fetched from the mesh when the node does not hold it). --json: with uri, hash, publisher, ts.',
  options: json,
  run: async ({ values, positionals, dir }) => {
    const d = await call<InfoJson & { schema?: unknown, protocol?: unknown, document: string }>(await locateNode(dir), 'GET', `/v1/schemas/document?uri=${encodeURIComponent(uriArg(positionals[0]))}`)
    if (values.json === true) { const { document: _doc, ...rest } = d; out(rest); return }
    print(JSON.stringify(d.schema ?? d.protocol, null, 2))
  }
}

const schemaList: Command = {
  name: 'schema list',
  summary: 'List the schemas (and, with --all, protocols) the node holds, built-ins included.',
  options: { ...json, all: { type: 'boolean', help: 'Protocols too' }, name: { type: 'string', arg: 'NS/NAME', help: 'Only versions of this name' } },
  run: async ({ values, dir }) => {
    const q = new URLSearchParams({ ...(values.all === true ? {} : { kind: 'schema' }), ...(stringFlag(values.name) != null ? { name: stringFlag(values.name) as string } : {}) })
    listing(await call<InfoJson[]>(await locateNode(dir), 'GET', `/v1/schemas?${q.toString()}`), values.json === true)
  }
}

const schemaValidate: Command = {
  name: 'schema validate',
  args: ['URI'],
  summary: 'Check a JSON payload (--data JSON or --file FILE) against the schema URI, as nodes do at ingress. ' +
    'Prints "valid", or the errors (path: message) and exits 1.',
  options: { ...json, data: { type: 'string', arg: 'JSON', help: 'The payload' }, file: { type: 'string', arg: 'FILE', help: 'Read the payload from FILE' } },
  run: async ({ values, positionals, dir }) => {
    const uri = uriArg(positionals[0])
    if ((values.data == null) === (values.file == null)) throw new UsageError('give --data JSON or --file FILE')
    let payload: unknown
    if (values.data != null) payload = jsonFlag(values.data, 'data')
    else {
      const text = (await readSmall(String(values.file))).toString('utf8')
      try { payload = JSON.parse(text) } catch (err) { throw new UsageError(`${String(values.file)} is not JSON: ${(err as Error).message}`) }
    }
    const r = await call<{ ok: boolean, reason?: string, errors: Array<{ path: string, message: string }> }>(await locateNode(dir), 'POST', '/v1/schemas/validate', { schema: uri, payload })
    if (values.json === true) out(r)
    else if (r.ok) print('valid')
    else for (const e of r.errors) print(`${e.path === '' ? '(root)' : e.path}: ${e.message}`)
    if (!r.ok) throw new CliError(`invalid under ${uri} (${r.reason ?? 'schema-invalid'})`, { code: 'SchemaValidationError' })
  }
}

const protocolPublish: Command = {
  name: 'protocol publish',
  args: ['FILE'],
  summary: 'Publish the protocol definition in FILE (states, roles, transitions, timeouts; docs/SEMANTIC.md §8) as proto/NAME@VERSION, signed by a local agent.',
  options: { ...agentOpt, ...json },
  run: async ({ values, positionals, dir }) => {
    const def = parseProtocolFile(await readSmall(positionals[0]))
    const r = await call<PublishResultJson>(await locateNode(dir), 'POST', '/v1/protocols', { protocol: def, agent: stringFlag(values.agent) })
    published(r, values.json === true)
  }
}

const protocolGet: Command = {
  name: 'protocol get',
  args: ['URI'],
  summary: 'Print the protocol definition published under URI (proto/NAME@VERSION).',
  options: json,
  run: async ({ values, positionals, dir }) => {
    const d = await call<InfoJson & { protocol: unknown, document: string }>(await locateNode(dir), 'GET', `/v1/protocols/document?uri=${encodeURIComponent(uriArg(positionals[0]))}`)
    if (values.json === true) { const { document: _doc, ...rest } = d; out(rest); return }
    print(JSON.stringify(d.protocol, null, 2))
  }
}

const protocolList: Command = {
  name: 'protocol list',
  summary: 'List the protocol definitions the node holds, built-ins included.',
  options: json,
  run: async ({ values, dir }) => {
    listing(await call<InfoJson[]>(await locateNode(dir), 'GET', '/v1/protocols'), values.json === true)
  }
}

/** Renders an audit report, one line per step. */
export function auditText (r: AuditReport): string {
  const lines = [`conversation ${r.conv ?? '-'}  protocol ${r.protocol ?? '-'}`]
  for (const [role, id] of Object.entries(r.parties)) lines.push(`  ${role.padEnd(10)} ${id}`)
  for (const s of r.steps) {
    const head = `${String(s.index + 1).padStart(3)}. ${(s.performative ?? '?').padEnd(16)} by ${(s.role ?? '?').padEnd(8)} ${s.before ?? '?'} → ${s.after ?? '?'}${s.schema != null ? `  ${s.schema}` : ''}`
    const fired = (s.timeouts ?? []).length > 0 ? `  (timeouts: ${(s.timeouts ?? []).map(t => `${t.from}→${t.to}`).join(', ')})` : ''
    lines.push(`${head}${fired}  ${s.ok ? 'ok' : `FAILED at ${s.failure?.stage ?? '?'}: ${s.failure?.reason ?? ''} ${s.failure?.detail ?? ''}`}`)
  }
  lines.push(`${r.ok ? 'audit passed' : 'audit FAILED'}: ${r.steps.length} steps, final state ${r.final?.state ?? '-'}${r.final?.status != null ? ` (${r.final.status})` : ''}`)
  return lines.join('\n')
}

const audit: Command = {
  name: 'audit',
  args: ['FILE'],
  summary: 'Re-validate an exported conversation (agent.exportConversation, or the file `fedmesh demo` writes) step by step: ' +
    'signatures, parties, schemas, protocol transitions, timeouts and contract signatures. Exit 1 when a step fails. ' +
    'Schemas that are not built in are fetched through the node on DIR when it runs.',
  options: json,
  run: async ({ values, positionals, dir }) => {
    const file = importConversation(new Uint8Array(await readSmall(positionals[0])))
    let node: NodeApi | undefined
    try { node = await locateNode(dir) } catch { node = undefined }
    const registry = createSchemaRegistry(node != null ? { network: httpRegistryNetwork(node.url, node.token) } : {})
    const report = await auditConversation(file.steps, { registry })
    if (values.json === true) out(report)
    else print(auditText(report))
    if (!report.ok) throw new CliError('the conversation does not audit clean', { code: 'AuditFailed' })
  }
}

export const SEMANTIC_COMMANDS: Command[] = [schemaPublish, schemaGet, schemaList, schemaValidate, protocolPublish, protocolGet, protocolList, audit]

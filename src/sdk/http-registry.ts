/**
 * The registry of a remote agent: a local SchemaRegistry (built-ins, compiled validators,
 * cache) whose network is the node's HTTP API, so a remote agent validates its payloads
 * before signing exactly as an in-process agent does, fetching unknown schemas through its node.
 *
 *   get(key)        GET  /v1/registry/record?key=…   → the node's registry (and so the mesh)
 *   announce(bytes) POST /v1/schemas { document }     → the node publishes and distributes it
 *   put             nothing: the node's publication stores the document on the mesh
 */
import type { AgentId } from '../core/ids.ts'
import { InvalidArgumentError, UnreachableError } from '../core/errors.ts'
import { errorFromJson } from '../api/errors.ts'
import type { ErrorJson } from '../api/protocol.ts'
import { fromBase64, toBase64 } from '../util/base64.ts'
import { createSchemaRegistry, createValidation, type RegistryNetwork } from '../semantic/index.ts'
import type { AbortOptions } from '../node/types.ts'
import type { AgentSemantics } from './conversations.ts'

/** `http://host:port` from a node API URL (`http…` or the `ws…/v1/ws` form). */
export function apiBase (url: string): string {
  let u: URL
  try { u = new URL(url) } catch { throw new InvalidArgumentError(`not a URL: ${JSON.stringify(url)}`) }
  if (u.protocol === 'ws:') u.protocol = 'http:'
  else if (u.protocol === 'wss:') u.protocol = 'https:'
  u.pathname = u.pathname.replace(/\/v1\/ws$/, '').replace(/\/$/, '')
  u.search = ''
  return u.toString().replace(/\/$/, '')
}

async function call (base: string, token: string, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number, json: unknown }> {
  let res: Response
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal
    })
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason
    throw new UnreachableError(`node API at ${base} unreachable: ${(err as Error).message}`, { cause: err })
  }
  const text = await res.text()
  let json: unknown
  try { json = text === '' ? undefined : JSON.parse(text) } catch { json = undefined }
  return { status: res.status, json }
}

export function httpRegistryNetwork (url: string, token: string): RegistryNetwork {
  const base = apiBase(url)
  return {
    async announce (bytes, options = {}) {
      const r = await call(base, token, 'POST', '/v1/schemas', { document: toBase64(bytes) }, options.signal)
      if (r.status >= 400) throw errorFromJson((r.json as { error?: ErrorJson } | undefined)?.error, `HTTP ${r.status}`)
    },
    onAnnounce: () => () => {},
    async put () {},
    async get (key, options = {}) {
      const r = await call(base, token, 'GET', `/v1/registry/record?key=${encodeURIComponent(key)}`, undefined, options.signal)
      if (r.status === 404) return undefined
      if (r.status >= 400) throw errorFromJson((r.json as { error?: ErrorJson } | undefined)?.error, `HTTP ${r.status}`)
      const doc = (r.json as { document?: unknown } | undefined)?.document
      return typeof doc === 'string' ? fromBase64(doc) : undefined
    }
  }
}

/** The semantics a remote agent runs with: its own registry over the node's API. */
export function remoteSemantics (url: string, token: string): AgentSemantics {
  const base = apiBase(url)
  const registry = createSchemaRegistry({ network: httpRegistryNetwork(url, token) })
  return {
    registry,
    validation: createValidation(registry),
    lookupCaps: async (agent: AgentId, options: AbortOptions = {}) => {
      const r = await call(base, token, 'GET', `/v1/agents/${encodeURIComponent(agent)}/record?wait=10000`, undefined, options.signal)
      if (r.status >= 400) throw errorFromJson((r.json as { error?: ErrorJson } | undefined)?.error, `HTTP ${r.status}`)
      return (r.json as { caps?: string[] }).caps ?? []
    }
  }
}

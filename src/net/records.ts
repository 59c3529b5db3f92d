/**
 * Signed records announced on the control topic and stored in the Kad-DHT.
 *
 * Agent record: agent id → home node peer ids and addresses, capabilities, expiry;
 *   signed by the agent key (domain `fedmesh/agent-record/v1`), DHT key `/fedmesh/agent/<net>/<did>`.
 * Node record: peer id → roles, capabilities and capacity, addresses; signed by the node's
 *   libp2p key (domain `fedmesh/node-record/v1`).
 * A newer `seq` supersedes an older one; expired records are refused.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { AgentId, NetworkId } from '../core/ids.ts'
import { isNetworkId } from '../core/ids.ts'
import { isAgentId, verifyByDid } from '../core/keys.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { compact } from '../core/envelope.ts'
import { selectRegistryRecord, validateRegistryRecord } from '../semantic/registry.ts'

const enc = new TextEncoder()
const AGENT_DOMAIN = enc.encode('fedmesh/agent-record/v1')
const NODE_DOMAIN = enc.encode('fedmesh/node-record/v1')
const MAX_RECORD_BYTES = 16 * 1024

export const NODE_ROLES = ['full', 'light', 'gateway', 'validator', 'storage', 'compute'] as const
export type NodeRole = typeof NODE_ROLES[number]

export interface HomeNode { id: string, addrs: string[] }

export interface AgentRecordFields {
  v: 1
  net: NetworkId
  agent: AgentId
  name?: string
  home: HomeNode[]
  caps: string[]
  /** Monotonic version (ms timestamp of issue). */
  seq: number
  /** Expiry, ms since epoch. */
  exp: number
}
export interface AgentRecord extends AgentRecordFields { sig: Uint8Array }

export interface NodeCapacity { cpus: number, memoryMB: number, storageMB?: number }

export interface NodeRecordFields {
  v: 1
  net: NetworkId
  peer: string
  roles: NodeRole[]
  caps: string[]
  capacity: NodeCapacity
  addrs: string[]
  agents: number
  seq: number
  exp: number
}
export interface NodeRecord extends NodeRecordFields { sig: Uint8Array }

function withDomain (domain: Uint8Array, bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.length + bytes.length)
  out.set(domain, 0)
  out.set(bytes, domain.length)
  return out
}

export function agentRecordKey (net: string, agent: string): Uint8Array {
  return enc.encode(`/fedmesh/agent/${net}/${agent}`)
}

/** The bytes an agent signs for its record. */
export function agentRecordSigningInput (fields: AgentRecordFields): Uint8Array {
  return withDomain(AGENT_DOMAIN, dagCbor.encode(compact(fields)))
}

export function encodeAgentRecord (fields: AgentRecordFields, sig: Uint8Array): Uint8Array {
  return dagCbor.encode({ ...compact(fields), sig })
}

function isStringArray (a: unknown, maxItems: number, maxLen: number = 512): a is string[] {
  return Array.isArray(a) && a.length <= maxItems && a.every(s => typeof s === 'string' && s.length <= maxLen)
}

/** Decodes and verifies an agent record; throws InvalidArgumentError with the reason. */
export function decodeAgentRecord (bytes: Uint8Array, now: number = Date.now()): AgentRecord {
  if (bytes.length > MAX_RECORD_BYTES) throw new InvalidArgumentError('agent record too large')
  const r = dagCbor.decode(bytes) as Record<string, unknown>
  if (r == null || typeof r !== 'object' || r.v !== 1) throw new InvalidArgumentError('agent record: bad version')
  if (!isNetworkId(r.net) || !isAgentId(r.agent)) throw new InvalidArgumentError('agent record: bad network or agent')
  if (!Array.isArray(r.home) || r.home.length === 0 || r.home.length > 16) throw new InvalidArgumentError('agent record: 1–16 home nodes')
  for (const h of r.home as unknown[]) {
    const hn = h as Record<string, unknown>
    if (hn == null || typeof hn.id !== 'string' || !isStringArray(hn.addrs, 32)) throw new InvalidArgumentError('agent record: bad home node')
  }
  if (!isStringArray(r.caps, 64, 128)) throw new InvalidArgumentError('agent record: bad caps')
  if (r.name !== undefined && (typeof r.name !== 'string' || r.name.length > 64)) throw new InvalidArgumentError('agent record: bad name')
  if (!Number.isInteger(r.seq) || !Number.isInteger(r.exp)) throw new InvalidArgumentError('agent record: bad seq/exp')
  if ((r.exp as number) < now) throw new InvalidArgumentError('agent record expired')
  if (!(r.sig instanceof Uint8Array)) throw new InvalidArgumentError('agent record: missing signature')
  const { sig, ...fields } = r
  if (!verifyByDid(r.agent as AgentId, withDomain(AGENT_DOMAIN, dagCbor.encode(fields)), sig)) throw new InvalidArgumentError('agent record: bad signature')
  return r as unknown as AgentRecord
}

export function signNodeRecord (fields: NodeRecordFields, key: PrivateKey): Promise<NodeRecord> | NodeRecord {
  const sig = key.sign(withDomain(NODE_DOMAIN, dagCbor.encode(compact(fields))))
  if (sig instanceof Uint8Array) return { ...compact(fields), sig }
  return sig.then(s => ({ ...compact(fields), sig: s }))
}

export function encodeNodeRecord (rec: NodeRecord): Uint8Array {
  return dagCbor.encode(rec)
}

export async function decodeNodeRecord (bytes: Uint8Array, now: number = Date.now()): Promise<NodeRecord> {
  if (bytes.length > MAX_RECORD_BYTES) throw new InvalidArgumentError('node record too large')
  const r = dagCbor.decode(bytes) as Record<string, unknown>
  if (r == null || typeof r !== 'object' || r.v !== 1 || !isNetworkId(r.net) || typeof r.peer !== 'string') throw new InvalidArgumentError('node record: bad header')
  if (!isStringArray(r.roles, NODE_ROLES.length) || !(r.roles as string[]).every(x => (NODE_ROLES as readonly string[]).includes(x))) throw new InvalidArgumentError('node record: bad roles')
  if (!isStringArray(r.caps, 64, 128) || !isStringArray(r.addrs, 32)) throw new InvalidArgumentError('node record: bad caps/addrs')
  if (!Number.isInteger(r.seq) || !Number.isInteger(r.exp) || (r.exp as number) < now) throw new InvalidArgumentError('node record: expired')
  if (!(r.sig instanceof Uint8Array)) throw new InvalidArgumentError('node record: missing signature')
  const { sig, ...fields } = r
  const pid = peerIdFromString(r.peer)
  if (pid.publicKey == null) throw new InvalidArgumentError('node record: peer id carries no key')
  const ok = await pid.publicKey.verify(withDomain(NODE_DOMAIN, dagCbor.encode(fields)), sig)
  if (!ok) throw new InvalidArgumentError('node record: bad signature')
  return r as unknown as NodeRecord
}

/** Kad-DHT hooks for the `fedmesh` namespace. */
/** Schema registry documents (docs/SEMANTIC.md §4) share the `/fedmesh/` DHT namespace. */
const REGISTRY_PREFIX = '/fedmesh/schema/'

export const dhtValidators = {
  fedmesh: async (key: Uint8Array, value: Uint8Array): Promise<void> => {
    const k = new TextDecoder().decode(key)
    if (k.startsWith(REGISTRY_PREFIX)) {
      const problem = validateRegistryRecord(k, value)
      if (problem != null) throw new InvalidArgumentError(`registry record: ${problem}`)
      return
    }
    const rec = decodeAgentRecord(value)
    if (k !== `/fedmesh/agent/${rec.net}/${rec.agent}`) throw new InvalidArgumentError('agent record does not match its key')
  }
}

export const dhtSelectors = {
  fedmesh: (key: Uint8Array, values: Uint8Array[]): number => {
    const k = new TextDecoder().decode(key)
    if (k.startsWith(REGISTRY_PREFIX)) return selectRegistryRecord(k, values)
    let best = 0
    let bestSeq = -1
    values.forEach((v, i) => {
      try {
        const seq = decodeAgentRecord(v).seq
        if (seq > bestSeq) { bestSeq = seq; best = i }
      } catch { /* invalid records never win */ }
    })
    return best
  }
}

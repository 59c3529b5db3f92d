/**
 * The node's data directory:
 *   node.key      libp2p Ed25519 private key (protobuf), mode 0600
 *   config.json   NodeConfig (defaults filled in at load)
 *   api.token     bearer token for the local API, mode 0600
 *   agents/NAME.key  agent Ed25519 seeds (JSON), mode 0600
 *   node.json     written while running: pid, peerId, addresses, api URL
 *   store.db      the SQLite store (inboxes, processed marks, message log), unless config.store.url names PostgreSQL
 */
import { mkdir, readFile, writeFile, rename, chmod, stat, readdir, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { agentKeyFromSeed, generateAgentKey, type AgentKey } from '../core/keys.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { isNetworkId } from '../core/ids.ts'
import { NODE_ROLES, type NodeRole } from '../net/records.ts'
import { LIMITS } from '../core/envelope.ts'
import type { NodeConfig } from './types.ts'
import { validateStoreConfig } from './storage.ts'

export const DEFAULT_CONFIG: NodeConfig = {
  network: 'fedmesh',
  listen: ['/ip4/0.0.0.0/tcp/7401', '/ip4/0.0.0.0/tcp/7402/ws'],
  announce: [],
  bootstrap: [],
  api: '127.0.0.1:7400',
  roles: ['full'],
  mdns: false,
  relay: true,
  clockSkewMs: 30_000,
  maxMessageBytes: LIMITS.maxEnvelopeBytes,
  store: {}
}

export const AGENT_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/

/** Writes a file atomically with the given mode. */
async function writeSecret (path: string, data: string | Uint8Array, mode: number = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data, { mode })
  await chmod(tmp, mode)
  await rename(tmp, path)
}

async function exists (path: string): Promise<boolean> {
  try { await stat(path); return true } catch { return false }
}

/** Fills defaults and checks every field; throws InvalidArgumentError naming the problem. */
export function validateConfig (partial: Partial<NodeConfig>): NodeConfig {
  const c: NodeConfig = { ...DEFAULT_CONFIG, ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) }
  if (!isNetworkId(c.network)) throw new InvalidArgumentError(`network must match [a-z0-9][a-z0-9._-]{0,62}, got ${JSON.stringify(c.network)}`)
  for (const k of ['listen', 'announce', 'bootstrap'] as const) {
    if (!Array.isArray(c[k]) || !c[k].every(a => typeof a === 'string' && a.startsWith('/'))) throw new InvalidArgumentError(`${k} must be a list of multiaddrs`)
  }
  if (c.api !== false && (typeof c.api !== 'string' || !/^[^:]+:\d{1,5}$/.test(c.api) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(c.api))) throw new InvalidArgumentError(`api must be HOST:PORT or false, got ${JSON.stringify(c.api)}`)
  if (!Array.isArray(c.roles) || c.roles.length === 0 || !c.roles.every(r => (NODE_ROLES as readonly string[]).includes(r))) {
    throw new InvalidArgumentError(`roles must be a non-empty list of ${NODE_ROLES.join(', ')}`)
  }
  if (typeof c.mdns !== 'boolean' || typeof c.relay !== 'boolean') throw new InvalidArgumentError('mdns and relay must be booleans')
  if (!Number.isInteger(c.clockSkewMs) || c.clockSkewMs < 0 || c.clockSkewMs > 600_000) throw new InvalidArgumentError('clockSkewMs must be 0–600000')
  if (!Number.isInteger(c.maxMessageBytes) || c.maxMessageBytes < 1024 || c.maxMessageBytes > LIMITS.maxEnvelopeBytes) {
    throw new InvalidArgumentError(`maxMessageBytes must be 1024–${LIMITS.maxEnvelopeBytes}`)
  }
  c.store = validateStoreConfig(c.store)
  return c
}

export interface DataDir {
  dir: string
  privateKey: PrivateKey
  peerId: string
  config: NodeConfig
  apiToken: string
}

/**
 * Creates the data dir on first use (identity, token, config) and loads it.
 * `overrides` replace the stored config for this run; with `save` they are persisted.
 */
export async function openDataDir (dir: string, overrides: Partial<NodeConfig> = {}, opts: { save?: boolean } = {}): Promise<DataDir> {
  await mkdir(join(dir, 'agents'), { recursive: true, mode: 0o700 })
  const keyPath = join(dir, 'node.key')
  let privateKey: PrivateKey
  if (await exists(keyPath)) {
    privateKey = privateKeyFromProtobuf(await readFile(keyPath))
  } else {
    privateKey = await generateKeyPair('Ed25519')
    await writeSecret(keyPath, privateKeyToProtobuf(privateKey))
  }
  const tokenPath = join(dir, 'api.token')
  let apiToken: string
  if (await exists(tokenPath)) {
    apiToken = (await readFile(tokenPath, 'utf8')).trim()
  } else {
    apiToken = randomBytes(24).toString('base64url')
    await writeSecret(tokenPath, apiToken + '\n')
  }
  const configPath = join(dir, 'config.json')
  let stored: Partial<NodeConfig> = {}
  if (await exists(configPath)) {
    try {
      stored = JSON.parse(await readFile(configPath, 'utf8'))
    } catch (err) {
      throw new InvalidArgumentError(`${configPath} is not valid JSON: ${(err as Error).message}`)
    }
  }
  // The store section merges key by key: `--store URL` must not drop the stored quotas.
  const store = overrides.store != null ? { ...stored.store, ...overrides.store } : stored.store
  const config = validateConfig({ ...stored, ...overrides, ...(store != null ? { store } : {}) })
  if (opts.save === true || !(await exists(configPath))) await writeSecret(configPath, JSON.stringify(config, null, 2) + '\n', 0o644)
  return { dir, privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), config, apiToken }
}

export async function loadAgentKey (dir: string, name: string, opts: { create: boolean }): Promise<AgentKey | undefined> {
  if (!AGENT_NAME_RE.test(name)) throw new InvalidArgumentError(`agent name must match ${AGENT_NAME_RE.source}`)
  const path = join(dir, 'agents', `${name}.key`)
  if (await exists(path)) {
    const { seed } = JSON.parse(await readFile(path, 'utf8')) as { seed: string }
    return agentKeyFromSeed(new Uint8Array(Buffer.from(seed, 'base64')))
  }
  if (!opts.create) return undefined
  const key = generateAgentKey()
  await mkdir(join(dir, 'agents'), { recursive: true, mode: 0o700 })
  await writeSecret(path, JSON.stringify({ id: key.id, seed: Buffer.from(key.seed).toString('base64') }) + '\n')
  return key
}

/** The ids (did:key) of the agents whose keys are in the data dir. */
export async function listAgentIds (dir: string): Promise<string[]> {
  const ids: string[] = []
  for (const name of await listAgentNames(dir)) {
    try {
      const { id } = JSON.parse(await readFile(join(dir, 'agents', `${name}.key`), 'utf8')) as { id?: unknown }
      if (typeof id === 'string') ids.push(id)
    } catch { /* unreadable key file: loadAgentKey reports it when the agent is used */ }
  }
  return ids
}

export async function listAgentNames (dir: string): Promise<string[]> {
  try {
    return (await readdir(join(dir, 'agents'))).filter(f => f.endsWith('.key')).map(f => f.slice(0, -4)).sort()
  } catch {
    return []
  }
}

export interface RuntimeInfo { pid: number, peerId: string, addresses: string[], api?: string, startedAt: number }

export async function writeRuntimeInfo (dir: string, info: RuntimeInfo): Promise<void> {
  await writeSecret(join(dir, 'node.json'), JSON.stringify(info, null, 2) + '\n', 0o644)
}

export async function removeRuntimeInfo (dir: string): Promise<void> {
  await rm(join(dir, 'node.json'), { force: true })
}

export async function readRuntimeInfo (dir: string): Promise<RuntimeInfo | undefined> {
  try { return JSON.parse(await readFile(join(dir, 'node.json'), 'utf8')) } catch { return undefined }
}

export async function readApiToken (dir: string): Promise<string | undefined> {
  try { return (await readFile(join(dir, 'api.token'), 'utf8')).trim() } catch { return undefined }
}

export function parseRoles (s: string): NodeRole[] {
  const roles = s.split(',').map(r => r.trim()).filter(r => r.length > 0)
  for (const r of roles) if (!(NODE_ROLES as readonly string[]).includes(r)) throw new InvalidArgumentError(`unknown role ${JSON.stringify(r)}; roles are ${NODE_ROLES.join(', ')}`)
  return roles as NodeRole[]
}

/**
 * The node's data directory:
 *   node.key      libp2p Ed25519 private key (protobuf), mode 0600
 *   config.json   NodeConfig (defaults filled in at load)
 *   api.token     bearer token for the local API, mode 0600
 *   agents/NAME.key  agent Ed25519 seeds (JSON), mode 0600
 *   node.lock     held while a node runs on the dir: its pid (lockDataDir)
 *   node.json     written while running: pid, peerId, addresses, api URL
 *   store.db      the SQLite store (inboxes, processed marks, message log), unless config.store.url names PostgreSQL
 */
import { mkdir, readFile, writeFile, rename, chmod, stat, readdir, rm, link, unlink } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { uptime } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { agentKeyFromSeed, generateAgentKey, type AgentKey } from '../core/keys.ts'
import { ConflictError, InvalidArgumentError } from '../core/errors.ts'
import { isNetworkId } from '../core/ids.ts'
import { NODE_ROLES, type NodeRole } from '../net/records.ts'
import { LIMITS } from '../core/envelope.ts'
import type { Logger, NodeConfig } from './types.ts'
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

/** The settings of config.json (NodeConfig's keys). */
export const CONFIG_KEYS: readonly string[] = [...Object.keys(DEFAULT_CONFIG), 'capacity']
const CAPACITY_KEYS = ['cpus', 'memoryMB', 'storageMB']

/**
 * Throws InvalidArgumentError for a key of `v` not in `known`, naming it and the known ones:
 * a misspelt setting ("bootstrapp") would otherwise be ignored without a word.
 */
function checkKeys (v: object, known: readonly string[], where: string): void {
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw new InvalidArgumentError(`unknown setting ${JSON.stringify(k)} in ${where}; known settings: ${known.join(', ')}`)
  }
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

/**
 * Fills defaults and checks every field; throws InvalidArgumentError naming the problem.
 * `where` names the source of `partial` in messages (default: the node config).
 */
export function validateConfig (partial: Partial<NodeConfig>, where: string = 'the node config'): NodeConfig {
  if (!isPlainObject(partial)) throw new InvalidArgumentError(`${where} must be an object`)
  const given = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined))
  checkKeys(given, CONFIG_KEYS, where)
  const c: NodeConfig = { ...DEFAULT_CONFIG, ...given }
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
  if (c.capacity !== undefined) {
    if (!isPlainObject(c.capacity)) throw new InvalidArgumentError('capacity must be an object')
    checkKeys(c.capacity, CAPACITY_KEYS, `capacity of ${where}`)
    for (const [k, n] of Object.entries(c.capacity)) {
      if (!Number.isSafeInteger(n) || (n as number) < 0) throw new InvalidArgumentError(`capacity.${k} must be a non-negative integer`)
    }
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
  // The config is checked before anything is written: a refused one leaves the dir as it was.
  const configPath = join(dir, 'config.json')
  let stored: Partial<NodeConfig> = {}
  if (await exists(configPath)) {
    try {
      stored = JSON.parse(await readFile(configPath, 'utf8'))
    } catch (err) {
      throw new InvalidArgumentError(`${configPath} is not valid JSON: ${(err as Error).message}`)
    }
    validateConfig(stored, configPath)
  }
  // The store section merges key by key: `--store URL` must not drop the stored quotas.
  const store = overrides.store != null ? { ...stored.store, ...overrides.store } : stored.store
  const config = validateConfig({ ...stored, ...overrides, ...(store != null ? { store } : {}) }, 'the node options')
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

/** Held while a node runs on a data dir (its node.lock); `release` removes it. */
export interface DataDirLock { path: string, release: () => Promise<void> }

interface LockInfo { pid: number, startedAt: number }

/** How often a start retries when the lock changes under it (another start taking it at the same moment). */
const LOCK_ATTEMPTS = 5

/** The lock file's text and what it says; undefined when there is no lock file. */
async function readLock (path: string): Promise<{ text: string, info?: LockInfo } | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>
    return Number.isSafeInteger(v.pid) && (v.pid as number) > 0 && typeof v.startedAt === 'number' ? { text, info: v as LockInfo } : { text }
  } catch {
    return { text }
  }
}

/** The lock files' texts this process holds (lockDataDir until release). */
const locksHeld = new Set<string>()

/**
 * Why the lock described by `info` is stale — its holder cannot be running — or undefined
 * while it may be. A pid is only meaningful within one boot: a lock written before the system
 * last booted is stale whatever process has that pid now. `bootedAt` is ms since the epoch
 * (os.uptime() has about a second's resolution, hence the margin). A lock naming this process
 * is live only if this process took it (`heldHere`): otherwise the pid was reused since it was
 * written, as when a container restarts and its node is pid 1 again.
 */
export function staleLockReason (info: LockInfo | undefined, bootedAt: number = Date.now() - uptime() * 1000, heldHere: boolean = false): string | undefined {
  if (info == null) return 'the lock file is unreadable'
  if (info.startedAt < bootedAt - 2000) return `it was written before the system booted (pid ${info.pid})`
  if (info.pid === process.pid) return heldHere ? undefined : `it names this process (pid ${info.pid}), which did not take it: the pid was reused since`
  try {
    process.kill(info.pid, 0)
    return undefined
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'ESRCH' ? `process ${info.pid} is not running` : undefined
  }
}

/**
 * Removes the stale lock whose text is `stale`. Moved aside first (a rename is atomic): if what
 * was moved is not the stale lock, another start has just taken the lock, and it goes back.
 * Returns whether the stale lock was removed by this call.
 */
async function removeStaleLock (path: string, stale: string): Promise<boolean> {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.stale`
  try {
    await rename(path, aside)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  try {
    if (await readFile(aside, 'utf8') === stale) return true
    // A lock taken since it was read: put it back unless yet another start holds one now.
    await link(aside, path).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
    return false
  } finally {
    await unlink(aside).catch(() => {})
  }
}

/**
 * Takes the data dir's lock (node.lock, holding this process's pid), so that two nodes never
 * run on one dir: they would share its identity and store, and the first to stop would remove
 * the other's node.json. The lock file appears complete or not at all (written beside it, then
 * hard-linked into place, which fails if it exists — O_EXCL for a file with content). A lock
 * whose holder is gone (killed, or from before the last boot) is taken over with a warning; a
 * live one is a ConflictError naming its pid. The lock is not a lease: nothing renews it, and a
 * process holds it until `release` (or its death, which the next start detects).
 */
export async function lockDataDir (dir: string, logger?: Logger): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, 'node.lock')
  const mine = JSON.stringify({ pid: process.pid, startedAt: Date.now() } satisfies LockInfo) + '\n'
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, mine, { mode: 0o644 })
  try {
    for (let attempt = 0; ; attempt++) {
      if (attempt > LOCK_ATTEMPTS) throw new ConflictError(`cannot take the lock ${path}: other starts keep changing it`, { details: { dir } })
      try {
        await link(tmp, path)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const held = await readLock(path)
      if (held == null) continue // released in the meantime
      const stale = staleLockReason(held.info, undefined, locksHeld.has(held.text))
      if (stale == null) {
        throw new ConflictError(`a node is already running on ${dir} (pid ${held.info?.pid ?? '?'}, lock ${path}); stop it first, or give this one another data dir`, { details: { dir, pid: held.info?.pid } })
      }
      if (await removeStaleLock(path, held.text)) logger?.warn({ lock: path, pid: held.info?.pid, reason: stale }, `taking over the stale lock of the data dir: ${stale}`)
    }
  } finally {
    await rm(tmp, { force: true })
  }
  locksHeld.add(mine)
  let released: Promise<void> | undefined
  return {
    path,
    release: async () => {
      // Only the lock this call wrote.
      released ??= readLock(path).then(async (held) => {
        locksHeld.delete(mine)
        if (held?.text === mine) await rm(path, { force: true })
      })
      await released
    }
  }
}

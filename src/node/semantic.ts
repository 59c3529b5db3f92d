/**
 * The semantic layer inside a node (docs/SEMANTIC.md): the node's schema registry, its
 * distribution over the mesh, its on-disk cache, and the ingress check the router calls.
 *
 *   registry ──announce──▶ control topic `{ k: 'doc', r }` ──▶ every node's registry.ingest
 *            ──put/get───▶ local record store + Kad-DHT (`/fedmesh/schema/…`) + storage-role
 *                          nodes (registry protocol), so no single node has to be up
 *   disk:    <dir>/registry/<hash>.doc, one signed document per file, reloaded at start
 *   ingress: router → inspect(env) → (schema named) checkIncoming, bounded registry fetch
 *
 * The router knows nothing of schemas: it calls `inspect` after verifyIngress and
 * `onControlDocument` for `{ k: 'doc' }` control messages; everything else lives here.
 */
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as dagCbor from '@ipld/dag-cbor'
import * as lp from 'it-length-prefixed'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { AgentId, NetworkId } from '../core/ids.ts'
import type { Envelope } from '../core/envelope.ts'
import type { AgentKey } from '../core/keys.ts'
import { abortReason, InvalidArgumentError, UnreachableError } from '../core/errors.ts'
import { boundedSource } from '../net/flow.ts'
import { controlTopic, type Net } from '../net/libp2p.ts'
import type { NodeRecord } from '../net/records.ts'
import type { InspectVerdict } from '../routing/router.ts'
import {
  createSchemaRegistry, createValidation, decodeDocument, parseRegistryKey, parseProtocol, parseSchemaFile, registryKeys, selectRegistryRecord,
  signProtocolDocument, signSchemaDocument, validateRegistryRecord, isPrerelease,
  type IncomingReason, type IngestResult, type PublishResult, type RegistryNetwork, type SchemaRegistry, type Validation, type VerifiedDocument
} from '../semantic/index.ts'
import type { Logger } from './types.ts'

/** Longest an ingress check waits for a schema to be fetched before rejecting `schema-unknown`. */
export const INGRESS_FETCH_MS = 3_000
/** Most documents the record store (and the disk cache) holds. */
export const MAX_STORED_DOCUMENTS = 10_000
const MAX_DOCUMENT_BYTES = 256 * 1024
/** Peers asked at once for a record, storage-role nodes first. */
const GET_FANOUT = 6
/** Storage-role peers a put is pushed to. */
const PUT_FANOUT = 3
const PEER_TIMEOUT_MS = 3_000
const DHT_TIMEOUT_MS = 5_000
/** Documents kept for announcement until a peer subscribes to the control topic (NodeSemantics.unheard). */
const UNHEARD_MAX = 64

export function registryProtocol (network: string): string { return `/fedmesh/${network}/registry/1.0.0` }

/** The error code a sender's node is told for each semantic rejection reason. */
const CODES: Record<IncomingReason, string> = {
  'payload-bomb': 'PayloadLimitError',
  'schema-unknown': 'SchemaNotFoundError',
  'schema-invalid': 'SchemaValidationError'
}

export interface NodeSemanticsInit {
  net: Net
  network: NetworkId
  dir: string
  /** Whether this node keeps a copy of every record put to it (storage role). */
  storage: boolean
  logger: Logger
  /** Node records seen on the network, to find storage-role peers. */
  nodeRecords: () => NodeRecord[]
  /** Whether the node has stopped (no more network work). */
  stopped?: () => boolean
}

/** A registry entry as the API and CLI show it. */
export interface DocumentInfo {
  uri: string
  hash: string
  kind: 'schema' | 'protocol'
  publisher: AgentId
  ts: number
}

export function documentInfo (d: VerifiedDocument): DocumentInfo {
  return { uri: d.parsed.uri, hash: d.hash, kind: d.kind, publisher: d.doc.publisher, ts: d.doc.ts }
}

/**
 * Records under registry keys, kept by this node: what it published, what was put to it,
 * and the documents its registry accepted. Bounded; conflicting records for one key are
 * settled by selectRegistryRecord, as in the DHT.
 */
class RecordStore {
  readonly byKey = new Map<string, Uint8Array>()
  readonly docs = new Map<string, Uint8Array>()

  /** Keeps `bytes` under `key` if valid and preferred; true when the store changed. */
  put (key: string, bytes: Uint8Array): boolean {
    if (validateRegistryRecord(key, bytes) != null) return false
    const held = this.byKey.get(key)
    if (held != null) {
      if (bytesEqual(held, bytes)) return false
      if (selectRegistryRecord(key, [held, bytes]) === 0) return false
    } else if (this.byKey.size >= MAX_STORED_DOCUMENTS * 3) return false
    this.byKey.set(key, bytes)
    return true
  }

  /** Stores a document under all its keys; returns its hash when it is new here. */
  add (bytes: Uint8Array): string | undefined {
    const r = decodeDocument(bytes)
    if (!r.ok) return undefined
    const d = r.document
    if (!this.docs.has(d.hash) && this.docs.size >= MAX_STORED_DOCUMENTS) return undefined
    for (const k of keysOf(d)) this.put(k, bytes)
    if (this.docs.has(d.hash)) return undefined
    this.docs.set(d.hash, bytes)
    return d.hash
  }
}

function keysOf (d: VerifiedDocument): string[] {
  const keys = [registryKeys.uri(d.parsed.uri), registryKeys.hash(d.hash)]
  if (!isPrerelease(d.parsed.version)) keys.push(registryKeys.latest(d.parsed.name, d.parsed.version.major))
  return keys
}

function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The node's semantic services. Created by MeshNodeImpl; `start` after libp2p is up. */
export class NodeSemantics {
  readonly registry: SchemaRegistry
  readonly validation: Validation
  readonly network: RegistryNetwork
  private readonly c: NodeSemanticsInit
  private readonly store = new RecordStore()
  private readonly cacheDir: string
  private readonly announceHandlers = new Set<(bytes: Uint8Array) => IngestResult | undefined>()
  private loading = true
  private readonly writes = new Set<Promise<void>>()
  /**
   * Documents announced while no peer listened on the control topic (a node just started, its
   * peers' subscriptions not known yet): announced again once a peer subscribes. The newest
   * UNHEARD_MAX are kept; a node that joins later fetches documents on demand.
   */
  private unheard: Uint8Array[] = []
  private unheardTimer?: NodeJS.Timeout
  private readonly onSubscription = (e: CustomEvent<{ subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    if (this.unheard.length === 0 || this.unheardTimer != null) return
    if (!e.detail.subscriptions.some(sub => sub.topic === controlTopic(this.c.network) && sub.subscribe)) return
    // After the subscriber's other subscriptions settle, as the router's own announcements do.
    this.unheardTimer = setTimeout(() => { this.unheardTimer = undefined; void this.announceUnheard() }, 100)
    this.unheardTimer.unref()
  }

  constructor (init: NodeSemanticsInit) {
    this.c = init
    this.cacheDir = join(init.dir, 'registry')
    this.network = {
      announce: async (bytes, options) => { await this.announce(bytes, options) },
      onAnnounce: (handler) => {
        this.announceHandlers.add(handler)
        return () => { this.announceHandlers.delete(handler) }
      },
      put: async (key, bytes, options) => { await this.put(key, bytes, options) },
      get: async (key, options) => await this.get(key, options)
    }
    this.registry = createSchemaRegistry({
      network: this.network,
      fetchTimeoutMs: DHT_TIMEOUT_MS,
      onAccept: (d) => { this.keep(d.bytes) }
    })
    // Nodes check only envelopes that name a schema; unschematized payloads are opaque here
    // (the SDK applies the limits to them at egress and when it parses them).
    this.validation = createValidation(this.registry, { scanUnschematized: false })
  }

  /** Loads the disk cache and serves the registry protocol. */
  async start (): Promise<void> {
    await mkdir(this.cacheDir, { recursive: true, mode: 0o700 })
    let loaded = 0
    for (const name of (await readdir(this.cacheDir)).filter(n => n.endsWith('.doc')).slice(0, MAX_STORED_DOCUMENTS)) {
      try {
        const bytes = new Uint8Array(await readFile(join(this.cacheDir, name)))
        if (bytes.length > MAX_DOCUMENT_BYTES) continue
        this.store.add(bytes)
        const r = this.registry.ingest(bytes, 'cache')
        if (r.ok) loaded++
      } catch (err) {
        this.c.logger.warn({ file: name, err: (err as Error).message }, 'registry cache file unreadable')
      }
    }
    this.loading = false
    if (loaded > 0) this.c.logger.info({ documents: loaded }, 'registry cache loaded')
    await this.c.net.handle(registryProtocol(this.c.network), (stream) => { void this.serve(stream) }, { maxInboundStreams: 32 })
    this.c.net.services.pubsub.addEventListener('subscription-change', this.onSubscription)
  }

  async stop (): Promise<void> {
    this.c.net.services.pubsub.removeEventListener('subscription-change', this.onSubscription)
    clearTimeout(this.unheardTimer)
    this.unheard = []
    this.registry.close()
    await Promise.allSettled([...this.writes])
  }

  // ---- ingress ------------------------------------------------------------------------

  /** The router's hook: undefined at once for envelopes naming no schema. */
  inspect (env: Envelope): InspectVerdict | Promise<InspectVerdict> {
    if (env.schema == null) return undefined
    return this.check(env)
  }

  private async check (env: Envelope): Promise<InspectVerdict> {
    const r = await this.validation.checkIncoming(env, { signal: AbortSignal.timeout(INGRESS_FETCH_MS) })
    if (r.ok) return undefined
    const detail = `${env.schema ?? ''}: ${r.errors.slice(0, 5).map(e => `${e.path === '' ? '' : e.path + ' '}${e.message}`).join('; ')}`.slice(0, 1000)
    this.c.logger.info({ id: env.id, from: env.from, schema: env.schema, reason: r.reason, errors: r.errors.slice(0, 5) }, 'message rejected by schema check')
    return { reason: r.reason, detail, code: CODES[r.reason] }
  }

  /** `{ k: 'doc', r }` on the control topic: take it in; the answer steers gossip forwarding. */
  onControlDocument (_peer: string, bytes: Uint8Array): TopicValidatorResult {
    if (bytes.length > MAX_DOCUMENT_BYTES) return TopicValidatorResult.Reject
    // The registry's verdict decides forwarding (other handlers only listen).
    let r: IngestResult | undefined
    for (const h of this.announceHandlers) r = h(bytes) ?? r
    if (r == null) return TopicValidatorResult.Ignore
    if (r.ok) return r.fresh ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
    // Malformed or forged: the sender's fault. Conflicts and the like: a disagreement.
    return r.reason === 'invalid' || r.reason === 'reserved' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }

  // ---- publishing -----------------------------------------------------------------------

  async publish (doc: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<PublishResult> {
    return await this.registry.publish(doc, options)
  }

  /** Signs a schema (`{ uri, schema }` or a bare schema plus `uri`) with `key` and publishes it. */
  async publishSchema (input: unknown, key: AgentKey, options: { uri?: string, signal?: AbortSignal } = {}): Promise<PublishResult> {
    const file = parseSchemaFile(JSON.stringify(input ?? null), options.uri)
    return this.republished(file.uri, key, file.schema) ?? await this.registry.publish(signSchemaDocument(file, key), options)
  }

  /**
   * Publishing the same content again under the same key is not a conflict: signing anew
   * would give another document (a new timestamp), so answer with the one held.
   */
  private republished (uri: string, key: AgentKey, content: unknown): PublishResult | undefined {
    const held = this.registry.get(uri)
    if (held == null || held.doc.publisher !== key.id) return undefined
    try {
      const same = bytesEqual(dagCbor.encode(held.kind === 'schema' ? held.doc.schema : held.doc.protocol), dagCbor.encode(content))
      return same ? { uri: held.parsed.uri, hash: held.hash, fresh: false } : undefined
    } catch {
      return undefined // not encodable as it stands: let publish decide
    }
  }

  /** Validates a protocol definition, signs it with `key` and publishes it as `proto/<name>@<version>`. */
  async publishProtocol (def: unknown, key: AgentKey, options: { signal?: AbortSignal } = {}): Promise<PublishResult> {
    const parsed = parseProtocol(def)
    return this.republished(`proto/${parsed.name}@${parsed.version}`, key, parsed) ?? await this.registry.publish(signProtocolDocument(parsed, key), options)
  }

  // ---- the mesh RegistryNetwork -------------------------------------------------------------

  private keep (bytes: Uint8Array): void {
    const hash = this.store.add(bytes)
    if (hash == null || this.loading) return
    const file = join(this.cacheDir, `${hash}.doc`)
    const tmp = `${file}.${process.pid}.tmp`
    const w = (async () => {
      try {
        await writeFile(tmp, bytes, { mode: 0o600 })
        await rename(tmp, file)
      } catch (err) {
        this.c.logger.warn({ file, err: (err as Error).message }, 'registry cache write failed')
      }
    })()
    this.writes.add(w)
    void w.finally(() => this.writes.delete(w))
  }

  private async announce (bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (options.signal?.aborted === true) throw abortReason(options.signal, 'registry announce')
    const pubsub = this.c.net.services.pubsub
    // Reported (not thrown at the publisher): the document stands here, goes out when a peer
    // subscribes, and later joiners fetch it on demand.
    if (pubsub.getSubscribers(controlTopic(this.c.network)).length === 0) {
      if (!this.unheard.some(b => bytesEqual(b, bytes))) this.unheard.push(bytes)
      if (this.unheard.length > UNHEARD_MAX) this.unheard.shift()
      throw new Error('no peer to announce to yet')
    }
    await pubsub.publish(controlTopic(this.c.network), dagCbor.encode({ k: 'doc', r: bytes }))
  }

  private async announceUnheard (): Promise<void> {
    const docs = this.unheard
    this.unheard = []
    for (const bytes of docs) {
      await this.announce(bytes).catch((err: Error) => { this.c.logger.debug({ err: err.message }, 'registry document still unannounced') })
    }
  }

  private async put (key: string, bytes: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    const problem = validateRegistryRecord(key, bytes)
    if (problem != null) throw new InvalidArgumentError(`registry record refused: ${problem}`)
    this.store.put(key, bytes)
    const peers = this.c.net.getPeers().map(String)
    if (peers.length === 0) throw new Error('no peers: kept on this node only') // served from here once peers exist
    const signal = anyOf(options.signal, AbortSignal.timeout(DHT_TIMEOUT_MS))
    const storage = this.storagePeers().slice(0, PUT_FANOUT)
    const results = await Promise.allSettled([
      this.c.net.contentRouting.put(new TextEncoder().encode(key), bytes, { signal }),
      ...storage.map(async (p) => { await this.ask(p, { op: 'put', key, r: bytes }, signal) })
    ])
    if (results.every(r => r.status === 'rejected')) {
      throw new Error(`no DHT or storage node took ${key}: ${String((results[0] as PromiseRejectedResult).reason?.message ?? '')}`)
    }
  }

  private async get (key: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    if (options.signal?.aborted === true) throw abortReason(options.signal, 'registry lookup')
    const local = this.store.byKey.get(key)
    if (local != null && parseRegistryKey(key)?.kind !== 'latest') return local
    const peers = this.candidatePeers()
    if (peers.length === 0) {
      if (local != null) return local
      throw new UnreachableError(`no peers to ask for ${key}`)
    }
    const inner = new AbortController()
    const signal = anyOf(options.signal, inner.signal, AbortSignal.timeout(DHT_TIMEOUT_MS))
    const valid = (b: Uint8Array | undefined): Uint8Array | undefined => b != null && validateRegistryRecord(key, b) == null ? b : undefined
    const lookups: Array<Promise<Uint8Array | undefined>> = [
      ...peers.map(async (p) => valid(((await this.ask(p, { op: 'get', key }, signal)) as { r?: Uint8Array }).r)),
      (async () => valid(await this.c.net.contentRouting.get(new TextEncoder().encode(key), { signal })))()
    ]
    try {
      if (parseRegistryKey(key)?.kind === 'latest') {
        // The highest version: hear everyone (bounded by the timeout), then select.
        const settled = await Promise.allSettled(lookups)
        if (local == null && settled.every(r => r.status === 'rejected')) throw new UnreachableError(`no peer answered for ${key}`)
        const all = settled.flatMap(r => r.status === 'fulfilled' && r.value != null ? [r.value] : [])
        if (local != null) all.push(local)
        if (all.length === 0) return undefined
        return all[selectRegistryRecord(key, all)]
      }
      const found = await firstDefined(lookups)
      if (found == null && aborted(options.signal)) throw abortReason(options.signal, 'registry lookup')
      return found
    } finally {
      inner.abort()
    }
  }

  private storagePeers (): string[] {
    const connected = new Set(this.c.net.getPeers().map(String))
    return this.c.nodeRecords().filter(r => r.roles.includes('storage') && connected.has(r.peer)).map(r => r.peer)
  }

  private candidatePeers (): string[] {
    const storage = this.storagePeers()
    const others = this.c.net.getPeers().map(String).filter(p => !storage.includes(p))
    return [...storage, ...others].slice(0, GET_FANOUT)
  }

  /** One request on the registry protocol: `{ op, key, r? }` → `{ r? }` or `{ ok }`. */
  private async ask (peer: string, req: Record<string, unknown>, signal: AbortSignal): Promise<Record<string, unknown>> {
    const stream = await this.c.net.dialProtocol(peerIdFromString(peer), registryProtocol(this.c.network), { signal: anyOf(signal, AbortSignal.timeout(PEER_TIMEOUT_MS)) })
    try {
      stream.send(lp.encode.single(dagCbor.encode(req)))
      await stream.close()
      for await (const chunk of lp.decode(boundedSource(stream), { maxDataLength: MAX_DOCUMENT_BYTES + 1024 })) {
        const v = dagCbor.decode(chunk.subarray()) as Record<string, unknown>
        if (v == null || typeof v !== 'object') throw new Error('bad registry answer')
        return v
      }
      throw new Error('no registry answer')
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  private async serve (stream: Stream): Promise<void> {
    try {
      const frames = lp.decode(boundedSource(stream), { maxDataLength: MAX_DOCUMENT_BYTES + 1024 })[Symbol.asyncIterator]()
      const first = await Promise.race([frames.next(), new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('registry request timed out')), PEER_TIMEOUT_MS).unref())])
      if (first.done === true) { stream.abort(new Error('empty request')); return }
      const req = dagCbor.decode(first.value.subarray()) as { op?: unknown, key?: unknown, r?: unknown }
      let answer: Record<string, unknown> = {}
      if (typeof req?.key !== 'string' || parseRegistryKey(req.key) == null) answer = { ok: false }
      else if (req.op === 'get') {
        const r = this.store.byKey.get(req.key)
        answer = r != null ? { r } : {}
      } else if (req.op === 'put' && req.r instanceof Uint8Array) {
        // Storage-role nodes keep a copy of what is put to them; others only of what they accept.
        const ok = this.c.storage && validateRegistryRecord(req.key, req.r) == null
        if (ok) { this.store.put(req.key, req.r); this.registry.ingest(req.r, 'fetch'); this.keep(req.r) }
        answer = { ok }
      }
      stream.send(lp.encode.single(dagCbor.encode(answer)))
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }
}

function aborted (signal: AbortSignal | undefined): signal is AbortSignal {
  return signal?.aborted === true
}

function anyOf (...signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((s): s is AbortSignal => s != null))
}

/**
 * The first promise to resolve with a value; undefined when all settle and at least one
 * resolved empty (someone answered "not here"). When every one fails (timed out, refused,
 * unreachable) it throws: no answer is not an answer of absence, and the registry remembers
 * only the latter as a miss.
 */
async function firstDefined<T> (ps: Array<Promise<T | undefined>>): Promise<T | undefined> {
  return await new Promise<T | undefined>((resolve, reject) => {
    let left = ps.length
    let answered = false
    let firstError: unknown
    if (left === 0) { resolve(undefined); return }
    for (const p of ps) {
      p.then((v) => { answered = true; if (v !== undefined) resolve(v) }, (err: unknown) => { firstError ??= err })
        .finally(() => {
          if (--left > 0) return
          if (answered) resolve(undefined)
          else reject(new UnreachableError(`no peer answered: ${(firstError as Error)?.message ?? String(firstError)}`, { cause: firstError }))
        })
    }
  })
}

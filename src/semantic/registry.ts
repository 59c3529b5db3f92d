/**
 * The schema registry: documents by URI and by hash, signature and shape checks, compiled
 * validators, compatibility rules, ownership of names, translators, and distribution over a
 * `RegistryNetwork` so that no single node has to be up.
 *
 * State lives in one `SchemaRegistry` per node (or per agent, in tests); the decisions it
 * makes — is this document acceptable next to what I hold? — are the pure functions of
 * compat.ts, protocols.ts and schemas.ts. Documents from the network are untrusted input:
 * every one is decoded within limits, verified, and checked like a local publication;
 * refusals are counted by reason and never thrown at the network.
 */
import type { ValidateFunction } from 'ajv'
import type { Ajv2020 } from 'ajv/dist/2020.js'
import type { AgentId, SchemaUri } from '../core/ids.ts'
import { abortReason, InvalidArgumentError } from '../core/errors.ts'
import { createAjv, toIssues } from './ajv.ts'
import { createSchemaLimits, type SchemaLimits } from './bounds.ts'
import { BUILTIN_PUBLISHER, builtinDocuments } from './builtins.ts'
import { checkCompatible, type CompatOptions, type JsonSchema } from './compat.ts'
import {
  IncompatibleSchemaError, InvalidDocumentError, SchemaConflictError, SchemaNotFoundError, TranslationError,
  type ValidationIssue
} from './errors.ts'
import { checkProtocolCompatible, type ProtocolDefinition } from './protocols.ts'
import { decodeDocument, encodeDocument, type DocumentHash, type RegistryDocument, type VerifiedDocument } from './schemas.ts'
import { compareSemver, isPrerelease, parseUri, type ParsedUri } from './semver.ts'

// ---- the network contract ----------------------------------------------------------------

/**
 * How registries reach each other. fedmesh backs it with the mesh control topic
 * (announce), the Kad-DHT and storage-role nodes (put/get); tests use the in-memory hub
 * (memory-network.ts). Implementations run test/semantic/registry-network.compliance.ts.
 */
export interface RegistryNetwork {
  /** Sends document bytes to every reachable registry but this one. Best effort. */
  announce: (bytes: Uint8Array, options?: { signal?: AbortSignal }) => Promise<void>
  /**
   * Registers the handler for documents announced by others; returns the function that
   * removes it. The handler (the registry's `ingest`) says what it made of the bytes, so a
   * gossip validator can map it: ok → accept; `invalid`, `reserved` → reject (penalise the
   * peer); any other reason → ignore (a legitimate disagreement, not forwarded).
   */
  onAnnounce: (handler: (bytes: Uint8Array) => IngestResult | undefined) => () => void
  /**
   * Stores bytes under `key` on nodes that outlive this one (DHT, storage-role nodes). Where
   * a key already holds a value, the store keeps the one `selectRegistryRecord` prefers.
   */
  put: (key: string, bytes: Uint8Array, options?: { signal?: AbortSignal }) => Promise<void>
  /**
   * Finds the value stored under `key`, or undefined when those asked answered without it.
   * Must honour `signal`. Throws when there was no one to ask or no one answered (timed out,
   * failed): the registry remembers a miss only for an answer without the document.
   */
  get: (key: string, options?: { signal?: AbortSignal }) => Promise<Uint8Array | undefined>
}

/** Keys under which documents are stored on the network. */
export const registryKeys = {
  /** The document with this exact URI. */
  uri: (uri: string): string => `/fedmesh/schema/uri/${uri}`,
  /** The document with this hash. */
  hash: (hash: string): string => `/fedmesh/schema/hash/${hash}`,
  /** The highest released version of `name` within `major`. */
  latest: (name: string, major: number): string => `/fedmesh/schema/latest/${name}@${major}`
} as const

export type RegistryKey =
  | { kind: 'uri', uri: SchemaUri }
  | { kind: 'hash', hash: DocumentHash }
  | { kind: 'latest', name: string, major: number }

export function parseRegistryKey (key: string): RegistryKey | undefined {
  if (key.startsWith('/fedmesh/schema/uri/')) {
    const p = parseUri(key.slice('/fedmesh/schema/uri/'.length))
    return p != null ? { kind: 'uri', uri: p.uri } : undefined
  }
  if (key.startsWith('/fedmesh/schema/hash/')) {
    const h = key.slice('/fedmesh/schema/hash/'.length)
    return /^b[a-z2-7]{50,60}$/.test(h) ? { kind: 'hash', hash: h as DocumentHash } : undefined
  }
  if (key.startsWith('/fedmesh/schema/latest/')) {
    const m = /^(.+)@(0|[1-9]\d{0,8})$/.exec(key.slice('/fedmesh/schema/latest/'.length))
    if (m == null || parseUri(`${m[1]}@0.0.0`) == null) return undefined
    return { kind: 'latest', name: m[1], major: Number(m[2]) }
  }
  return undefined
}

/**
 * DHT record validator: the bytes must be a valid, signed document matching the key.
 * Returns the problem, or undefined when valid. Pure.
 */
export function validateRegistryRecord (key: string, bytes: Uint8Array, limits?: Partial<SchemaLimits>): string | undefined {
  const k = parseRegistryKey(key)
  if (k == null) return `not a registry key: ${key.slice(0, 100)}`
  const r = decodeDocument(bytes, createSchemaLimits(limits))
  if (!r.ok) return `${r.reason}: ${r.detail}`
  const d = r.document
  if (k.kind === 'uri' && d.parsed.uri !== k.uri) return `document ${d.parsed.uri} stored under ${key}`
  if (k.kind === 'hash' && d.hash !== k.hash) return `document ${d.hash} stored under ${key}`
  if (k.kind === 'latest' && (d.parsed.name !== k.name || d.parsed.version.major !== k.major || isPrerelease(d.parsed.version))) return `document ${d.parsed.uri} is not a release of ${k.name}@${k.major}`
  return undefined
}

/**
 * DHT record selector: the index of the record to keep among valid candidates for `key`.
 * `latest` keys keep the highest version; other keys the earliest publication (then the
 * lowest hash), so every node converges on the same record. Invalid records never win. Pure.
 */
export function selectRegistryRecord (key: string, records: readonly Uint8Array[]): number {
  const k = parseRegistryKey(key)
  let best = -1
  let bestDoc: VerifiedDocument | undefined
  for (let i = 0; i < records.length; i++) {
    if (validateRegistryRecord(key, records[i]) != null) continue
    const r = decodeDocument(records[i])
    if (!r.ok) continue
    const d = r.document
    if (bestDoc == null) { best = i; bestDoc = d; continue }
    let better: boolean
    if (k?.kind === 'latest') {
      const c = compareSemver(d.parsed.version, bestDoc.parsed.version)
      better = c > 0 || (c === 0 && (d.doc.ts < bestDoc.doc.ts || (d.doc.ts === bestDoc.doc.ts && d.hash < bestDoc.hash)))
    } else {
      better = d.doc.ts < bestDoc.doc.ts || (d.doc.ts === bestDoc.doc.ts && d.hash < bestDoc.hash)
    }
    if (better) { best = i; bestDoc = d }
  }
  return Math.max(best, 0)
}

// ---- the registry --------------------------------------------------------------------------

/** Why a document was not taken in. */
export const INGEST_REASONS = ['invalid', 'reserved', 'conflict', 'owner', 'incompatible', 'order', 'full'] as const
export type IngestReason = typeof INGEST_REASONS[number]

export type IngestResult =
  | { ok: true, document: VerifiedDocument, fresh: boolean }
  | { ok: false, reason: IngestReason, detail: string, path?: string }

/** Where a document came from: published here, announced, fetched from the network, or reloaded from the node's cache. */
export type IngestOrigin = 'local' | 'announce' | 'fetch' | 'cache'

export interface PublishResult {
  uri: SchemaUri
  hash: DocumentHash
  /** False when the registry already held this exact document. */
  fresh: boolean
  /** What happened on the network (absent without one). Local publication stands either way. */
  network?: { stored: boolean, announced: boolean, errors: string[] }
}

/** A compiled validator: the issues, empty when the value is valid. */
export type CompiledValidator = (value: unknown) => ValidationIssue[]

export type Translator = (value: unknown) => unknown

export interface SchemaRegistryInit {
  /** Where other registries are; without one the registry is local only. */
  network?: RegistryNetwork
  /** Preload the built-in documents (default true). */
  builtins?: boolean
  /** Namespaces pinned to publishers: documents in them signed by anyone else are refused. */
  owners?: Readonly<Record<string, readonly AgentId[]>>
  limits?: Partial<SchemaLimits>
  /** Most documents held (default 10 000). */
  maxDocuments?: number
  /** Most compiled validators cached (default 1 000; least recently used go first). */
  maxCompiled?: number
  /** Most translators registered (default 1 000). */
  maxTranslators?: number
  /** How long a network lookup may take (default 5 000 ms). */
  fetchTimeoutMs?: number
  /** How long a URI not found on the network is not asked for again (default 30 000 ms). */
  missTtlMs?: number
  /** Most network lookups in flight; beyond, lookups fail at once (default 64). */
  maxLookups?: number
  compat?: Partial<CompatOptions>
  now?: () => number
  /**
   * Called once for every document newly taken in (not the built-ins), after it is held:
   * the node persists them here so its registry survives a restart.
   */
  onAccept?: (document: VerifiedDocument, origin: IngestOrigin) => void
}

export const defaultRegistryInit = Object.freeze({
  builtins: true, maxDocuments: 10_000, maxCompiled: 1_000, maxTranslators: 1_000, fetchTimeoutMs: 5_000, missTtlMs: 30_000, maxLookups: 64
})

export interface RegistryCounters {
  accepted: number
  duplicate: number
  fetched: number
  fetchFailed: number
  refused: Record<IngestReason, number>
}

export interface SchemaRegistry {
  /** Verifies, checks (ownership, conflicts, compatibility, order), stores, and distributes a document. */
  publish: (doc: RegistryDocument | Uint8Array, options?: { signal?: AbortSignal }) => Promise<PublishResult>
  /** Takes in document bytes from elsewhere (an announcement, a file): a reason value, never a throw. */
  ingest: (bytes: Uint8Array, origin?: IngestOrigin) => IngestResult
  /** The document for `uri`, from here or the network. Throws SchemaNotFoundError. */
  resolve: (uri: string, options?: { signal?: AbortSignal }) => Promise<VerifiedDocument>
  resolveHash: (hash: string, options?: { signal?: AbortSignal }) => Promise<VerifiedDocument>
  get: (uri: string) => VerifiedDocument | undefined
  getByHash: (hash: string) => VerifiedDocument | undefined
  has: (uri: string) => boolean
  list: (filter?: { kind?: 'schema' | 'protocol', name?: string }) => VerifiedDocument[]
  /** The versions of `name` held here, lowest first. */
  versions: (name: string) => SchemaUri[]
  /** The JSON Schema under `uri` (resolving it). */
  schema: (uri: string, options?: { signal?: AbortSignal }) => Promise<JsonSchema>
  /** The protocol definition under `proto/…` (resolving it). */
  protocol: (uri: string, options?: { signal?: AbortSignal }) => Promise<ProtocolDefinition>
  /** The compiled validator for `uri` (resolving and compiling it once). */
  validator: (uri: string, options?: { signal?: AbortSignal }) => Promise<CompiledValidator>
  /** Registers `from → to`; returns the function that removes it. */
  registerTranslator: (from: string, to: string, fn: Translator) => () => void
  /** The chain of URIs from `from` to the first reachable of `to`, or undefined. */
  translationPath: (from: string, to: string | readonly string[]) => SchemaUri[] | undefined
  /** Turns a value valid under `from` into one valid under `to`. Throws TranslationError. */
  translate: (value: unknown, from: string, to: string | readonly string[], options?: { signal?: AbortSignal }) => Promise<{ value: unknown, schema: SchemaUri }>
  readonly counters: Readonly<RegistryCounters>
  readonly size: number
  /** Stops listening to announcements. */
  close: () => void
}

interface Held { document: VerifiedDocument, validator?: CompiledValidator }

export function createSchemaRegistry (init: SchemaRegistryInit = {}): SchemaRegistry {
  return new SchemaRegistryImpl(init)
}

class SchemaRegistryImpl implements SchemaRegistry {
  private readonly network?: RegistryNetwork
  private readonly limits: SchemaLimits
  private readonly cfg: typeof defaultRegistryInit
  private readonly owners: Readonly<Record<string, readonly AgentId[]>>
  private readonly compatOptions: Partial<CompatOptions>
  private readonly now: () => number
  private readonly byUri = new Map<string, Held>()
  private readonly byHash = new Map<string, Held>()
  private readonly byName = new Map<string, Held[]>()
  private readonly builtinHashes = new Set<string>()
  private readonly compiled = new Map<string, CompiledValidator>()
  private readonly misses = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<VerifiedDocument>>()
  private readonly translators = new Map<string, Map<string, Translator>>()
  private translatorCount = 0
  /** Created on the first compile (see ajv.ts). */
  private ajvInstance?: Ajv2020
  private readonly unsubscribe?: () => void
  private readonly onAccept?: (document: VerifiedDocument, origin: IngestOrigin) => void
  readonly counters: RegistryCounters = { accepted: 0, duplicate: 0, fetched: 0, fetchFailed: 0, refused: Object.fromEntries(INGEST_REASONS.map((r) => [r, 0])) as Record<IngestReason, number> }

  constructor (init: SchemaRegistryInit) {
    this.cfg = { ...defaultRegistryInit, ...stripUndefined(init) } as typeof defaultRegistryInit
    for (const k of ['maxDocuments', 'maxCompiled', 'maxTranslators', 'fetchTimeoutMs', 'missTtlMs', 'maxLookups'] as const) {
      if (!Number.isSafeInteger(this.cfg[k]) || this.cfg[k] < 1) throw new InvalidArgumentError(`${k} must be a positive integer`)
    }
    this.network = init.network
    this.limits = createSchemaLimits(init.limits)
    this.owners = init.owners ?? {}
    this.compatOptions = init.compat ?? {}
    this.now = init.now ?? Date.now
    this.onAccept = init.onAccept
    if (this.cfg.builtins) {
      for (const d of builtinDocuments()) {
        this.builtinHashes.add(d.hash)
        const r = this.accept(d, 'local')
        if (!r.ok) throw new Error(`built-in ${d.parsed.uri} refused: ${r.detail}`)
      }
    }
    if (this.network != null) this.unsubscribe = this.network.onAnnounce((bytes) => this.ingest(bytes, 'announce'))
  }

  get size (): number { return this.byUri.size }

  // ---- taking documents in -------------------------------------------------------------

  ingest (bytes: Uint8Array, origin: IngestOrigin = 'announce'): IngestResult {
    const r = decodeDocument(bytes, this.limits)
    if (!r.ok) return this.refuse('invalid', `${r.reason}: ${r.detail}`)
    return this.accept(r.document, origin)
  }

  private refuse (reason: IngestReason, detail: string, path?: string): IngestResult {
    this.counters.refused[reason]++
    return { ok: false, reason, detail, ...(path != null ? { path } : {}) }
  }

  /** The decision for one verified document, then storage. */
  private accept (d: VerifiedDocument, origin: IngestOrigin): IngestResult {
    const same = this.byHash.get(d.hash)
    if (same != null) { this.counters.duplicate++; return { ok: true, document: same.document, fresh: false } }
    const uri = d.parsed.uri
    if (d.doc.publisher === BUILTIN_PUBLISHER && !this.builtinHashes.has(d.hash)) {
      return this.refuse('reserved', `${uri} is signed by the built-in publisher but is not a built-in document`)
    }
    const taken = this.byUri.get(uri)
    if (taken != null) return this.refuse('conflict', `${uri} is already held with hash ${taken.document.hash} (published by ${taken.document.doc.publisher})`)
    const pinned = this.owners[d.parsed.namespace]
    if (pinned != null && !pinned.includes(d.doc.publisher)) return this.refuse('owner', `namespace ${d.parsed.namespace} is pinned to ${pinned.join(', ')}; ${uri} is signed by ${d.doc.publisher}`)
    const lineage = this.byName.get(d.parsed.name) ?? []
    const owner = lineage[0]?.document.doc.publisher
    if (owner != null && owner !== d.doc.publisher) return this.refuse('owner', `${d.parsed.name} belongs to ${owner}; ${uri} is signed by ${d.doc.publisher}`)
    if (this.byUri.size >= this.cfg.maxDocuments) return this.refuse('full', `registry holds ${this.cfg.maxDocuments} documents`)

    let validator: CompiledValidator | undefined
    // Built-ins are known to compile (test/semantic); they are compiled on first use.
    if (d.kind === 'schema' && !this.builtinHashes.has(d.hash)) {
      try {
        validator = this.compile(d)
      } catch (err) {
        return this.refuse('invalid', `${uri}: the schema does not compile: ${(err as Error).message.slice(0, 300)}`)
      }
    }
    if (!isPrerelease(d.parsed.version)) {
      const { prev, next } = neighbours(lineage, d.parsed)
      if (origin === 'local' && next != null) {
        return this.refuse('order', `${uri} is lower than ${next.document.parsed.uri}: versions within a major are published in increasing order`)
      }
      for (const [older, newer] of [[prev?.document, d], [d, next?.document]] as const) {
        if (older == null || newer == null) continue
        const c = older.kind === 'schema' && newer.kind === 'schema'
          ? checkCompatible(older.doc.schema, newer.doc.schema, this.compatOptions)
          : older.kind === 'protocol' && newer.kind === 'protocol'
            ? checkProtocolCompatible(older.doc.protocol, newer.doc.protocol)
            : { ok: false as const, path: '', reason: 'a schema and a protocol share a name' }
        if (!c.ok) {
          if (validator != null) this.forget(d)
          return this.refuse('incompatible', `${newer.parsed.uri} does not accept everything ${older.parsed.uri} accepted: at ${c.path === '' ? '(root)' : c.path}: ${c.reason}`, c.path)
        }
      }
    }
    const held: Held = { document: d, validator }
    this.byUri.set(uri, held)
    this.byHash.set(d.hash, held)
    const list = [...lineage, held].sort((a, b) => compareSemver(a.document.parsed.version, b.document.parsed.version))
    this.byName.set(d.parsed.name, list)
    this.misses.delete(registryKeys.uri(uri))
    this.misses.delete(registryKeys.hash(d.hash))
    this.counters.accepted++
    if (origin === 'fetch') this.counters.fetched++
    if (!this.builtinHashes.has(d.hash)) {
      try { this.onAccept?.(d, origin) } catch { /* the hook must not undo a decision */ }
    }
    return { ok: true, document: d, fresh: true }
  }

  private ajv (): Ajv2020 {
    this.ajvInstance ??= createAjv()
    return this.ajvInstance
  }

  private compile (d: VerifiedDocument & { kind: 'schema' }): CompiledValidator {
    const cached = this.compiled.get(d.hash)
    if (cached != null) {
      this.compiled.delete(d.hash)
      this.compiled.set(d.hash, cached)
      return cached
    }
    const fn: ValidateFunction = this.ajv().compile(d.doc.schema as object | boolean as never)
    const validator: CompiledValidator = (value) => fn(value) ? [] : toIssues(fn.errors)
    this.compiled.set(d.hash, validator)
    if (this.compiled.size > this.cfg.maxCompiled) {
      const oldest = this.compiled.keys().next().value as string
      this.compiled.delete(oldest)
      const held = this.byHash.get(oldest)
      if (held != null) { held.validator = undefined; this.removeFromAjv(held.document) }
    }
    return validator
  }

  private forget (d: VerifiedDocument): void {
    this.compiled.delete(d.hash)
    this.removeFromAjv(d)
  }

  private removeFromAjv (d: VerifiedDocument): void {
    if (d.kind === 'schema' && typeof d.doc.schema === 'object' && this.ajvInstance != null) this.ajvInstance.removeSchema(d.doc.schema as object as never)
  }

  async publish (input: RegistryDocument | Uint8Array, options: { signal?: AbortSignal } = {}): Promise<PublishResult> {
    let bytes: Uint8Array
    try {
      bytes = input instanceof Uint8Array ? input : encodeDocument(input)
    } catch (err) {
      throw new InvalidDocumentError(`document does not encode: ${(err as Error).message}`, { cause: err })
    }
    const decoded = decodeDocument(bytes, this.limits)
    if (!decoded.ok) throw new InvalidDocumentError(`invalid document: ${decoded.detail}`, { details: { reason: decoded.reason } })
    const d = decoded.document
    if (this.network != null) {
      // Learn what the network holds for this URI and this major first, so a conflict or
      // an incompatible successor is refused here and not only by other registries.
      await Promise.allSettled([
        this.fetchKey(registryKeys.uri(d.parsed.uri), options.signal),
        this.fetchKey(registryKeys.latest(d.parsed.name, d.parsed.version.major), options.signal)
      ])
    }
    const r = this.accept(d, 'local')
    if (!r.ok) {
      const details = { reason: r.reason, uri: d.parsed.uri, ...(r.path != null ? { path: r.path } : {}) }
      if (r.reason === 'incompatible' || r.reason === 'order') throw new IncompatibleSchemaError(r.detail, { details })
      if (r.reason === 'conflict' || r.reason === 'owner' || r.reason === 'reserved') throw new SchemaConflictError(r.detail, { details })
      if (r.reason === 'full') throw new InvalidArgumentError(r.detail, { details })
      throw new InvalidDocumentError(r.detail, { details })
    }
    const result: PublishResult = { uri: d.parsed.uri, hash: d.hash, fresh: r.fresh }
    if (this.network != null) result.network = await this.distribute(d, options.signal)
    return result
  }

  private async distribute (d: VerifiedDocument, signal?: AbortSignal): Promise<NonNullable<PublishResult['network']>> {
    const net = this.network as RegistryNetwork
    const errors: string[] = []
    const keys = [registryKeys.uri(d.parsed.uri), registryKeys.hash(d.hash)]
    if (!isPrerelease(d.parsed.version)) keys.push(registryKeys.latest(d.parsed.name, d.parsed.version.major))
    const puts = await Promise.allSettled(keys.map(async (k) => { await net.put(k, d.bytes, { signal }) }))
    for (const p of puts) if (p.status === 'rejected') errors.push(`put: ${String((p.reason as Error)?.message ?? p.reason)}`)
    let announced = true
    try {
      await net.announce(d.bytes, { signal })
    } catch (err) {
      announced = false
      errors.push(`announce: ${(err as Error).message}`)
    }
    return { stored: puts.every((p) => p.status === 'fulfilled'), announced, errors }
  }

  // ---- looking documents up -------------------------------------------------------------

  get (uri: string): VerifiedDocument | undefined { return this.byUri.get(uri)?.document }
  getByHash (hash: string): VerifiedDocument | undefined { return this.byHash.get(hash)?.document }
  has (uri: string): boolean { return this.byUri.has(uri) }

  list (filter: { kind?: 'schema' | 'protocol', name?: string } = {}): VerifiedDocument[] {
    const out: VerifiedDocument[] = []
    for (const h of this.byUri.values()) {
      if (filter.kind != null && h.document.kind !== filter.kind) continue
      if (filter.name != null && h.document.parsed.name !== filter.name) continue
      out.push(h.document)
    }
    return out.sort((a, b) => a.parsed.name < b.parsed.name ? -1 : a.parsed.name > b.parsed.name ? 1 : compareSemver(a.parsed.version, b.parsed.version))
  }

  versions (name: string): SchemaUri[] {
    return (this.byName.get(name) ?? []).map((h) => h.document.parsed.uri)
  }

  async resolve (uri: string, options: { signal?: AbortSignal } = {}): Promise<VerifiedDocument> {
    const held = this.byUri.get(uri)
    if (held != null) return held.document
    if (parseUri(uri) == null) throw new SchemaNotFoundError(`${JSON.stringify(uri.slice(0, 100))} is not a registry URI ns/name@semver`)
    return await this.lookup(uri, registryKeys.uri(uri), (d) => d.parsed.uri === uri, options.signal)
  }

  async resolveHash (hash: string, options: { signal?: AbortSignal } = {}): Promise<VerifiedDocument> {
    const held = this.byHash.get(hash)
    if (held != null) return held.document
    if (parseRegistryKey(registryKeys.hash(hash)) == null) throw new SchemaNotFoundError(`${JSON.stringify(hash.slice(0, 80))} is not a document hash`)
    return await this.lookup(hash, registryKeys.hash(hash), (d) => d.hash === hash, options.signal)
  }

  private async lookup (what: string, key: string, matches: (d: VerifiedDocument) => boolean, signal?: AbortSignal): Promise<VerifiedDocument> {
    if (this.network == null) throw new SchemaNotFoundError(`${what} is not known here (no network to ask)`)
    if (signal?.aborted === true) throw abortReason(signal, `registry lookup of ${what}`)
    const missUntil = this.misses.get(key)
    if (missUntil != null && missUntil > this.now()) throw new SchemaNotFoundError(`${what} was not found on the network recently`)
    // One network lookup per key at a time, bounded by the registry's timeout; each caller
    // waits on it with its own signal.
    let p = this.inflight.get(key)
    if (p == null) {
      // A flood of unknown URIs must not become a flood of DHT lookups.
      if (this.inflight.size >= this.cfg.maxLookups) throw new SchemaNotFoundError(`${what} is not known here and ${this.cfg.maxLookups} lookups are already in flight`)
      p = (async () => {
        try {
          let r: IngestResult | undefined
          try {
            r = await this.fetchKey(key)
          } catch (err) {
            // Timed out, aborted, or no one there or answering (no peers yet, a process too
            // starved to hear its peers in time): no evidence of absence, so not remembered
            // as a miss — the next lookup asks again.
            throw new SchemaNotFoundError(`${what} could not be fetched: ${(err as Error).message}`, { cause: err })
          }
          // The network answered: without the document, or with one that is not it. Remembered.
          if (r == null) throw this.miss(key, new SchemaNotFoundError(`${what} was not found on the network`))
          if (!r.ok) throw this.miss(key, new SchemaNotFoundError(`${what} was found but refused (${r.reason}): ${r.detail}`, { details: { reason: r.reason } }))
          if (!matches(r.document)) throw this.miss(key, new SchemaNotFoundError(`the network answered for ${what} with another document`))
          return r.document
        } catch (err) {
          this.counters.fetchFailed++
          throw err
        } finally {
          this.inflight.delete(key)
        }
      })()
      // Callers that gave up must not leave the shared lookup's failure unhandled.
      p.catch(() => {})
      this.inflight.set(key, p)
    }
    return await raceSignal(p, signal, `registry lookup of ${what}`)
  }

  /** Gets a key from the network and takes the document in; undefined when nothing is there. */
  private async fetchKey (key: string, signal?: AbortSignal): Promise<IngestResult | undefined> {
    const net = this.network as RegistryNetwork
    const timeout = AbortSignal.timeout(this.cfg.fetchTimeoutMs)
    const combined = signal != null ? AbortSignal.any([signal, timeout]) : timeout
    const bytes = await net.get(key, { signal: combined })
    if (combined.aborted) throw abortReason(combined, `registry lookup ${key}`)
    if (bytes == null) return undefined
    const problem = validateRegistryRecord(key, bytes, this.limits)
    if (problem != null) return this.refuse('invalid', problem)
    return this.ingest(bytes, 'fetch')
  }

  /** Remembers that the network answered without `key`'s document (not asked again for `missTtlMs`); returns `err`. */
  private miss (key: string, err: Error): Error {
    if (this.misses.size >= 10_000) this.misses.delete(this.misses.keys().next().value as string)
    this.misses.set(key, this.now() + this.cfg.missTtlMs)
    return err
  }

  async schema (uri: string, options: { signal?: AbortSignal } = {}): Promise<JsonSchema> {
    const d = await this.resolve(uri, options)
    if (d.kind !== 'schema') throw new SchemaNotFoundError(`${uri} is a protocol, not a schema`)
    return d.doc.schema
  }

  async protocol (uri: string, options: { signal?: AbortSignal } = {}): Promise<ProtocolDefinition> {
    const d = await this.resolve(uri, options)
    if (d.kind !== 'protocol') throw new SchemaNotFoundError(`${uri} is a schema, not a protocol`)
    return d.doc.protocol
  }

  async validator (uri: string, options: { signal?: AbortSignal } = {}): Promise<CompiledValidator> {
    const held = this.byUri.get(uri)
    if (held?.validator != null) {
      // Keep recently used validators (LRU order).
      this.compiled.delete(held.document.hash)
      this.compiled.set(held.document.hash, held.validator)
      return held.validator
    }
    const d = await this.resolve(uri, options)
    if (d.kind !== 'schema') throw new SchemaNotFoundError(`${uri} is a protocol, not a schema`)
    const h = this.byHash.get(d.hash) as Held
    h.validator = this.compile(d)
    return h.validator
  }

  // ---- translators ---------------------------------------------------------------------

  registerTranslator (from: string, to: string, fn: Translator): () => void {
    const pf = parseUri(from)
    const pt = parseUri(to)
    if (pf == null || pt == null) throw new InvalidArgumentError('translator ends must be schema URIs')
    if (from === to) throw new InvalidArgumentError('a translator must change the schema')
    if (this.translatorCount >= this.cfg.maxTranslators) throw new InvalidArgumentError(`at most ${this.cfg.maxTranslators} translators`)
    let m = this.translators.get(from)
    if (m == null) { m = new Map(); this.translators.set(from, m) }
    if (!m.has(to)) this.translatorCount++
    m.set(to, fn)
    return () => {
      const mm = this.translators.get(from)
      if (mm?.get(to) === fn) { mm.delete(to); this.translatorCount-- }
    }
  }

  /** Edges: registered translators, plus the implicit widening to a higher version of the same major. */
  private edges (from: string): string[] {
    const out = [...(this.translators.get(from)?.keys() ?? [])]
    const pf = parseUri(from)
    if (pf != null && !isPrerelease(pf.version)) {
      for (const h of this.byName.get(pf.name) ?? []) {
        const v = h.document.parsed.version
        if (v.major === pf.version.major && !isPrerelease(v) && compareSemver(v, pf.version) > 0) out.push(h.document.parsed.uri)
      }
    }
    return out
  }

  translationPath (from: string, to: string | readonly string[]): SchemaUri[] | undefined {
    const targets = new Set(typeof to === 'string' ? [to] : to)
    if (targets.has(from)) return [from as SchemaUri]
    // Breadth-first: the shortest chain; bounded by the number of edges.
    const prev = new Map<string, string>([[from, '']])
    const queue = [from]
    for (let i = 0; i < queue.length && i <= this.translatorCount + this.byUri.size; i++) {
      const cur = queue[i]
      for (const next of this.edges(cur)) {
        if (prev.has(next)) continue
        prev.set(next, cur)
        if (targets.has(next)) {
          const path = [next]
          for (let p = cur; p !== ''; p = prev.get(p) as string) path.unshift(p)
          return path as SchemaUri[]
        }
        queue.push(next)
      }
    }
    return undefined
  }

  async translate (value: unknown, from: string, to: string | readonly string[], options: { signal?: AbortSignal } = {}): Promise<{ value: unknown, schema: SchemaUri }> {
    const path = this.translationPath(from, to)
    if (path == null) throw new TranslationError(`no translator chain from ${from} to ${typeof to === 'string' ? to : to.join(' or ')}`)
    let cur = value
    for (let i = 1; i < path.length; i++) {
      const fn = this.translators.get(path[i - 1])?.get(path[i])
      if (fn != null) {
        try {
          cur = fn(structuredClone(cur))
        } catch (err) {
          throw new TranslationError(`translator ${path[i - 1]} → ${path[i]} failed: ${(err as Error).message}`, { cause: err })
        }
      }
      const issues = (await this.validator(path[i], options))(cur)
      if (issues.length > 0) throw new TranslationError(`translating ${path[i - 1]} → ${path[i]} gave an invalid value`, { details: { errors: issues } })
    }
    return { value: cur, schema: path[path.length - 1] }
  }

  close (): void {
    this.unsubscribe?.()
  }
}

/** The released versions of the same major just below and just above `v`. */
function neighbours (lineage: readonly Held[], v: ParsedUri): { prev?: Held, next?: Held } {
  let prev: Held | undefined
  let next: Held | undefined
  for (const h of lineage) {
    const w = h.document.parsed.version
    if (w.major !== v.version.major || isPrerelease(w)) continue
    const c = compareSemver(w, v.version)
    if (c < 0 && (prev == null || compareSemver(w, prev.document.parsed.version) > 0)) prev = h
    if (c > 0 && (next == null || compareSemver(w, next.document.parsed.version) < 0)) next = h
  }
  return { prev, next }
}

/** Waits for `p`, or rejects with the typed abort reason when `signal` fires first. */
async function raceSignal<T> (p: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal == null) return await p
  if (signal.aborted) throw abortReason(signal, what)
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(abortReason(signal, what)) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([p, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort as () => void)
  }
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as Partial<T>
}

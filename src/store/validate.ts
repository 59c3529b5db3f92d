/**
 * Input checks for everything written to the store (pure). Each `normalizeX` returns the
 * value in the shape the backends store, or throws `InvalidArgumentError` naming the field:
 * a malformed input is refused before it joins a batch, so it can never fail someone else's
 * transaction.
 */
import { crc32 } from 'node:zlib'
import { InvalidArgumentError } from '../core/errors.ts'
import { FIELD_LIMITS } from './config.ts'
import { LOG_EVENTS, LOG_STATUSES, type InboxEntryInit, type LogEvent, type LogRecordInit, type LogStatus, type StatusPatch } from './types.ts'

// Control characters are refused in ids: '\n' separates the parts of quota keys.
const CONTROL_RE = /[\u0000-\u001f\u007f]/

function fail (field: string, problem: string): never {
  throw new InvalidArgumentError(`${field} ${problem}`, { details: { field } })
}

export function checkId (field: string, v: unknown, max: number = FIELD_LIMITS.maxIdLength): string {
  if (typeof v !== 'string' || v.length === 0) fail(field, 'must be a non-empty string')
  if (v.length > max) fail(field, `longer than ${max} characters`)
  if (CONTROL_RE.test(v)) fail(field, 'contains control characters')
  return v
}

export function checkTime (field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(field, 'must be an integer ≥ 0 (ms since the epoch)')
  return v
}

function optTime (field: string, v: unknown): number | null {
  return v === undefined ? null : checkTime(field, v)
}

function checkBytes (field: string, v: unknown, allowEmpty: boolean): Uint8Array {
  if (!(v instanceof Uint8Array)) fail(field, 'must be a Uint8Array')
  if (!allowEmpty && v.length === 0) fail(field, 'must not be empty')
  if (v.length > FIELD_LIMITS.maxPayloadBytes) fail(field, `larger than ${FIELD_LIMITS.maxPayloadBytes} bytes`)
  return v
}

function checkKeys (what: string | (() => string), obj: unknown, allowed: ReadonlySet<string>): Record<string, unknown> {
  const name = (): string => typeof what === 'string' ? what : what()
  if (obj == null || typeof obj !== 'object' || Array.isArray(obj)) throw new InvalidArgumentError(`${name()} must be an object`)
  for (const k in obj) if (Object.hasOwn(obj, k) && !allowed.has(k)) fail(`${name()}.${k}`, 'is not a known field')
  return obj as Record<string, unknown>
}

/**
 * Checksum of a stored payload: CRC-32 over the message id, a zero byte and the bytes, so a
 * payload that ends up under the wrong id fails as surely as a flipped bit.
 */
export function payloadChecksum (id: string, bytes: Uint8Array): number {
  return crc32(bytes, crc32(`${id}\u0000`))
}

/** Copies into a plain Uint8Array (drivers hand out Buffers or views of shared memory). */
export function plainBytes (b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length)
  out.set(b)
  return out
}

export interface NormalizedEntry {
  recipient: string
  id: string
  sender: string
  bytes: Uint8Array
  size: number
  priority: number
  expiresAt: number
  senderSeq: number | null
  replica: boolean
  home: string | null
  /** `crc` is over the unsigned bytes of a batch entry too (with its id: `payloadChecksum`). */
  crc: number
  /** A batch entry (schema 8, inbox-batches.ts): `bytes` are its unsigned leaf bytes, `size` its wire size. */
  batch: NormalizedBatch | null
  leaf: number | null
}

/** A batch of `InboxEntryInit.batch`, checked: one object for all its entries (one row). */
export interface NormalizedBatch {
  sig: Uint8Array
  leaves: Uint8Array
  crc: number
}

const ENTRY_FIELDS = new Set(['recipient', 'id', 'sender', 'bytes', 'expiresAt', 'priority', 'senderSeq', 'replica', 'home', 'batch', 'leaf'])
const ENTRY_RECIPIENT = (): string => 'entry.recipient'
const ENTRY_SENDER = (): string => 'entry.sender'
const ENTRY_HOME = (): string => 'entry.home'

/** `known`: names (recipient, sender, home) found well formed before skip the character check. */
export function normalizeEntry (input: InboxEntryInit, owned: boolean = false, known?: KnownNames): NormalizedEntry {
  const e = checkKeys('entry', input, ENTRY_FIELDS)
  const recipient = nameField(ENTRY_RECIPIENT, e.recipient, known)
  const id = checkId('entry.id', e.id)
  const sender = nameField(ENTRY_SENDER, e.sender, known)
  // A copy: the write happens later, in a batch, and the caller may reuse its buffer meanwhile
  // (unless it handed the bytes over: `owned`, and already a plain Uint8Array).
  const given = checkBytes('entry.bytes', e.bytes, false)
  const bytes = owned && given.constructor === Uint8Array ? given : plainBytes(given)
  const expiresAt = checkTime('entry.expiresAt', e.expiresAt)
  const priority = e.priority ?? 1
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 3) fail('entry.priority', 'must be 0 … 3')
  const senderSeq = e.senderSeq === undefined ? null : checkTime('entry.senderSeq', e.senderSeq)
  const replica = e.replica ?? false
  if (typeof replica !== 'boolean') fail('entry.replica', 'must be a boolean')
  const home = e.home === undefined ? null : nameField(ENTRY_HOME, e.home, known)
  return { recipient, id, sender, bytes, size: bytes.length, priority, expiresAt, senderSeq, replica, home, crc: payloadChecksum(id, bytes), batch: null, leaf: null }
}

export function checkIdList (field: string, v: unknown, max: number): string[] {
  if (!Array.isArray(v)) fail(field, 'must be an array')
  if (v.length > max) fail(field, `has more than ${max} entries`)
  return v.map((x, i) => checkId(`${field}[${i}]`, x))
}

export function isLogEvent (v: unknown): v is LogEvent {
  return typeof v === 'string' && (LOG_EVENTS as readonly string[]).includes(v)
}

export function isLogStatus (v: unknown): v is LogStatus {
  return typeof v === 'string' && (LOG_STATUSES as readonly string[]).includes(v)
}

export interface NormalizedLogRecord {
  id: string
  event: LogEvent
  status: LogStatus
  from: string | null
  to: string[]
  topic: string | null
  schema: string | null
  proto: string | null
  conv: string | null
  type: string | null
  size: number
  reason: string | null
  originTs: number | null
  receivedTs: number
  ackedTs: number | null
  peer: string | null
  bytes: Uint8Array | null
  crc: number | null
  /** The records that follow in its run (`LogRecordInit.next`), or null. */
  next: { ids: string[], sizes: number[], originTs: number[] } | null
}

const RECORD_FIELDS = new Set(['id', 'event', 'status', 'from', 'to', 'topic', 'schema', 'proto', 'conv', 'type', 'size', 'reason', 'originTs', 'receivedTs', 'ackedTs', 'peer', 'bytes', 'next'])

/** How many records a `LogRecordInit` stands for: itself and its `next` ones. */
export function recordCount (r: unknown): number {
  const next = r != null && typeof r === 'object' ? (r as { next?: unknown }).next : undefined
  const ids = next != null && typeof next === 'object' ? (next as { ids?: unknown }).ids : undefined
  return 1 + (Array.isArray(ids) ? ids.length : 0)
}

/** `LogRecordInit.next`: three lists of one length, each entry checked as the record's own. */
function checkNext (w: () => string, v: unknown): NormalizedLogRecord['next'] {
  if (v == null || typeof v !== 'object' || Array.isArray(v)) fail(`${w()}.next`, 'must be an object')
  const n = checkKeys(() => `${w()}.next`, v, NEXT_FIELDS)
  const { ids, sizes, originTs } = n
  if (!Array.isArray(ids) || !Array.isArray(sizes) || !Array.isArray(originTs) || sizes.length !== ids.length || originTs.length !== ids.length) {
    fail(`${w()}.next`, 'must hold ids, sizes and originTs of one length')
  }
  for (let i = 0; i < ids.length; i++) {
    idField(() => `${w()}.next.ids[${i}]`, 'id', ids[i])
    const size = sizes[i]
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`${w()}.next.sizes[${i}]`, 'must be an integer ≥ 0')
    checkTime(`${w()}.next.originTs[${i}]`, originTs[i])
  }
  return { ids: ids.slice() as string[], sizes: sizes.slice() as number[], originTs: originTs.slice() as number[] }
}

const NEXT_FIELDS = new Set(['ids', 'sizes', 'originTs'])

function optReason (field: string, v: unknown): string | null {
  if (v === undefined) return null
  if (typeof v !== 'string') fail(field, 'must be a string')
  return v.slice(0, FIELD_LIMITS.maxReasonLength)
}

/**
 * Names (agent ids, topics, peer ids, types, …) already found free of control characters, so
 * a store checks each distinct name once rather than in every record: a node's records name
 * the same few agents, topics and peers thousands of times a second (the check was the
 * largest part of an append's work on the event loop). Bounded: emptied when full.
 */
export class KnownNames {
  private readonly names = new Set<string>()
  private readonly max: number
  constructor (max = 4096) { this.max = max }
  has (v: string): boolean { return this.names.has(v) }
  add (v: string): void {
    if (this.names.size >= this.max) this.names.clear()
    this.names.add(v)
  }
}

/**
 * The records of one append, normalized, their payloads copied into one buffer: one
 * allocation per append instead of one per record, and one ArrayBuffer for the structured
 * clone to the writer thread to copy (and that thread to allocate) instead of one per record
 * — a record with a payload (a conversation's request or reply) is not part of a run.
 */
export function normalizeLogRecords (records: readonly LogRecordInit[], now: number, known?: KnownNames): NormalizedLogRecord[] {
  let total = 0
  for (const r of records) {
    const b = (r as { bytes?: unknown } | null)?.bytes
    if (b instanceof Uint8Array) total += b.length
  }
  if (total === 0) return records.map((r, i) => normalizeLogRecord(r, now, i, known))
  const slab = new Uint8Array(total)
  let at = 0
  const copy = (b: Uint8Array): Uint8Array => {
    const out = slab.subarray(at, at + b.length)
    out.set(b)
    at += b.length
    return out
  }
  return records.map((r, i) => normalizeLogRecord(r, now, i, known, copy))
}

/** `copy`: where a payload goes (a slab of the append's, `normalizeLogRecords`); a buffer of its own by default. */
export function normalizeLogRecord (input: LogRecordInit, now: number, index: number, known?: KnownNames, copy: (b: Uint8Array) => Uint8Array = plainBytes): NormalizedLogRecord {
  // Field names for the error message are built only when a check fails (records come in
  // thousands per second from the node's recorder, nearly always well formed).
  const w = (): string => `records[${index}]`
  const r = checkKeys(w, input, RECORD_FIELDS)
  const id = idField(w, 'id', r.id)
  if (!isLogEvent(r.event)) fail(`${w()}.event`, `must be one of ${LOG_EVENTS.join(', ')}`)
  const status = r.status ?? (r.event === 'rejected' ? 'rejected' : 'ok')
  if (!isLogStatus(status)) fail(`${w()}.status`, `must be one of ${LOG_STATUSES.join(', ')}`)
  const to = r.to === undefined ? [] : recipientList(w, r.to, known)
  const bytes = r.bytes === undefined ? null : copy(checkBytes(`${w()}.bytes`, r.bytes, true))
  let size: number
  if (r.size === undefined) {
    if (bytes == null) fail(`${w()}.size`, 'is required when bytes are not given')
    size = bytes.length
  } else {
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) fail(`${w()}.size`, 'must be an integer ≥ 0')
    size = r.size
    if (bytes != null && bytes.length !== size) fail(`${w()}.size`, `is ${size} but bytes has ${bytes.length}`)
  }
  return {
    id,
    event: r.event,
    status,
    from: optName(w, 'from', r.from, known),
    to,
    topic: optName(w, 'topic', r.topic, known, FIELD_LIMITS.maxTopicLength),
    schema: optName(w, 'schema', r.schema, known),
    proto: optName(w, 'proto', r.proto, known),
    conv: optIdField(w, 'conv', r.conv),
    type: optName(w, 'type', r.type, known),
    size,
    reason: r.reason === undefined ? null : optReason(`${w()}.reason`, r.reason),
    originTs: r.originTs === undefined ? null : checkTime(`${w()}.originTs`, r.originTs),
    receivedTs: r.receivedTs === undefined ? now : checkTime(`${w()}.receivedTs`, r.receivedTs),
    ackedTs: r.ackedTs === undefined ? null : checkTime(`${w()}.ackedTs`, r.ackedTs),
    peer: optName(w, 'peer', r.peer, known),
    bytes,
    crc: bytes == null ? null : payloadChecksum(id, bytes),
    next: r.next === undefined ? null : bytes != null ? fail(`${w()}.next`, 'cannot go with bytes') : checkNext(w, r.next)
  }
}

/** checkId with the field's name built on failure only. */
function idField (w: () => string, name: string, v: unknown, max: number = FIELD_LIMITS.maxIdLength): string {
  if (typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL_RE.test(v)) return v
  return checkId(`${w()}.${name}`, v, max)
}

function optIdField (w: () => string, name: string, v: unknown, max?: number): string | null {
  return v === undefined ? null : idField(w, name, v, max)
}

/** A name field (`known`: names found well formed before skip the character check). */
function optName (w: () => string, name: string, v: unknown, known: KnownNames | undefined, max: number = FIELD_LIMITS.maxIdLength): string | null {
  return v === undefined ? null : nameField(() => `${w()}.${name}`, v, known, max)
}

function nameField (field: () => string, v: unknown, known: KnownNames | undefined, max: number = FIELD_LIMITS.maxIdLength): string {
  if (typeof v === 'string' && v.length > 0 && v.length <= max && known?.has(v) === true) return v
  const ok = typeof v === 'string' && v.length > 0 && v.length <= max && !CONTROL_RE.test(v) ? v : checkId(field(), v, max)
  known?.add(ok)
  return ok
}

/** A record's `to`: a list of at most `maxRecipients` agent ids, each checked as a name. */
function recipientList (w: () => string, v: unknown, known: KnownNames | undefined): string[] {
  if (!Array.isArray(v)) fail(`${w()}.to`, 'must be an array')
  if (v.length > FIELD_LIMITS.maxRecipients) fail(`${w()}.to`, `has more than ${FIELD_LIMITS.maxRecipients} entries`)
  const out = new Array<string>(v.length)
  for (let i = 0; i < v.length; i++) out[i] = nameField(() => `${w()}.to[${i}]`, v[i], known)
  return out
}

export interface NormalizedPatch {
  status: LogStatus | null
  ackedTs: number | null
  reason: string | null
}

const PATCH_FIELDS = new Set(['status', 'ackedTs', 'reason'])

export function normalizePatch (input: StatusPatch): NormalizedPatch {
  const p = checkKeys('patch', input, PATCH_FIELDS)
  if (p.status !== undefined && !isLogStatus(p.status)) fail('patch.status', `must be one of ${LOG_STATUSES.join(', ')}`)
  const out = { status: (p.status as LogStatus | undefined) ?? null, ackedTs: optTime('patch.ackedTs', p.ackedTs), reason: optReason('patch.reason', p.reason) }
  if (out.status == null && out.ackedTs == null && out.reason == null) throw new InvalidArgumentError('patch changes nothing')
  return out
}

/** A paging limit: undefined → default; otherwise an integer in 1 … max. */
export function pageLimit (field: string, v: unknown, bounds: { default: number, max: number }, ErrorClass: new (message: string, options?: { details?: Record<string, unknown> }) => Error = InvalidArgumentError): number {
  if (v === undefined) return bounds.default
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > bounds.max) {
    throw new ErrorClass(`${field} must be an integer in 1 … ${bounds.max}`, { details: { field } })
  }
  return v
}

/**
 * Limits against payload and schema bombs, checked before anything is parsed or compiled.
 *
 * - `scanJson` walks JSON text byte by byte, once, with fixed-size state: nesting depth,
 *   properties per object, elements per array, string and number token lengths, and the
 *   keys `__proto__`, `constructor`, `prototype` (also when written with escapes). It does
 *   not validate JSON (JSON.parse does, afterwards); it only guarantees that what JSON.parse
 *   and Ajv then see is small and shallow.
 * - `checkSchemaShape` bounds a schema value (depth, node count, keys) and refuses what would
 *   let a schema reach outside itself or stall a validator: remote `$ref`, `$id`, anchors,
 *   dynamic references, and regular expressions the linear-time engine cannot run.
 * - `linearRegExp` compiles a `pattern` with V8's linear-time engine, so no pattern can
 *   backtrack exponentially (or even quadratically) on a long string.
 */
import v8 from 'node:v8'
import { LIMITS } from '../core/envelope.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import type { ValidationIssue } from './errors.ts'

export interface PayloadLimits {
  /** Largest payload in bytes (after decompression). */
  maxBytes: number
  /** Deepest nesting of objects and arrays (the top-level value is depth 1). */
  maxDepth: number
  /** Most properties in one object. */
  maxProperties: number
  /** Longest string or key, in UTF-8 bytes as written (escapes count as written). */
  maxStringLength: number
  /** Most elements in one array. */
  maxArrayLength: number
  /** Longest number (or literal) token, in characters. */
  maxNumberLength: number
}

export const defaultPayloadLimits: Readonly<PayloadLimits> = Object.freeze({
  maxBytes: LIMITS.maxEnvelopeBytes,
  maxDepth: 32,
  maxProperties: 1000,
  maxStringLength: 64 * 1024,
  maxArrayLength: 10_000,
  maxNumberLength: 64
})

/** Upper bounds a configuration may not exceed: the state of `scanJson` is sized by maxDepth. */
const PAYLOAD_CEILINGS: Readonly<PayloadLimits> = {
  maxBytes: LIMITS.maxEnvelopeBytes,
  maxDepth: 256,
  maxProperties: 1_000_000,
  maxStringLength: LIMITS.maxEnvelopeBytes,
  maxArrayLength: 1_000_000,
  maxNumberLength: 1024
}

/** Fills defaults and checks that every limit is a positive integer within its ceiling. */
export function createPayloadLimits (partial: Partial<PayloadLimits> = {}): PayloadLimits {
  const out = { ...defaultPayloadLimits, ...stripUndefined(partial) }
  for (const k of Object.keys(defaultPayloadLimits) as Array<keyof PayloadLimits>) {
    const v = out[k]
    if (!Number.isSafeInteger(v) || v < 1 || v > PAYLOAD_CEILINGS[k]) throw new InvalidArgumentError(`payload limit ${k} must be an integer in 1…${PAYLOAD_CEILINGS[k]}`)
  }
  return out
}

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

export type ScanResult = { ok: true } | { ok: false, issue: ValidationIssue }

const OBJ = 1
const ARR = 2
// The longest raw spelling of a forbidden key: `constructor` with every character as \uXXXX.
const MAX_FORBIDDEN_RAW = 6 * 11
const utf8Decoder = new TextDecoder()

/**
 * Checks JSON text against the limits without parsing it. Time is linear in the input and
 * memory is O(maxDepth); the loop visits each byte at most once.
 */
export function scanJson (bytes: Uint8Array, limits: PayloadLimits = defaultPayloadLimits): ScanResult {
  const n = bytes.length
  if (n > limits.maxBytes) return fail('', 'maxBytes', `payload is ${n} bytes, limit ${limits.maxBytes}`)
  const kind = new Uint8Array(limits.maxDepth + 1)
  const count = new Uint32Array(limits.maxDepth + 1)
  const keyStart = new Int32Array(limits.maxDepth + 1)
  const keyEnd = new Int32Array(limits.maxDepth + 1)
  let depth = 0
  let expectKey = false

  const path = (): string => {
    let p = ''
    for (let d = 1; d <= depth; d++) {
      if (kind[d] === ARR) p += '/' + String(Math.max(0, count[d] - 1))
      else if (keyEnd[d] > keyStart[d] || count[d] > 0) p += '/' + escapePointer(decodeKey(bytes, keyStart[d], keyEnd[d]))
    }
    return p
  }
  const onValue = (): ScanResult | undefined => {
    if (depth > 0 && kind[depth] === ARR && ++count[depth] > limits.maxArrayLength) {
      return fail(path(), 'maxArrayLength', `array has more than ${limits.maxArrayLength} elements`)
    }
    return undefined
  }

  for (let i = 0; i < n; i++) {
    const c = bytes[i]
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x3a /* : */) continue
    if (c === 0x22 /* " */) {
      let j = i + 1
      while (j < n) {
        const b = bytes[j]
        if (b === 0x5c /* \ */) { j += 2; continue }
        if (b === 0x22) break
        j++
      }
      if (j >= n) return fail(path(), 'syntax', 'unterminated string')
      const len = j - i - 1
      if (depth > 0 && kind[depth] === OBJ && expectKey) {
        expectKey = false
        keyStart[depth] = i + 1
        keyEnd[depth] = j
        if (++count[depth] > limits.maxProperties) return fail(path(), 'maxProperties', `object has more than ${limits.maxProperties} properties`)
        if (len > limits.maxStringLength) return fail(path(), 'maxStringLength', `key longer than ${limits.maxStringLength} bytes`)
        if (len <= MAX_FORBIDDEN_RAW && isForbiddenKey(bytes, i + 1, j)) return fail(path(), 'forbiddenKey', `key ${JSON.stringify(decodeKey(bytes, i + 1, j))} is not allowed`)
      } else {
        const bad = onValue()
        if (bad != null) return bad
        if (len > limits.maxStringLength) return fail(path(), 'maxStringLength', `string longer than ${limits.maxStringLength} bytes`)
      }
      i = j
      continue
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const bad = onValue()
      if (bad != null) return bad
      if (depth >= limits.maxDepth) return fail(path(), 'maxDepth', `nesting deeper than ${limits.maxDepth}`)
      depth++
      kind[depth] = c === 0x7b ? OBJ : ARR
      count[depth] = 0
      keyStart[depth] = keyEnd[depth] = 0
      expectKey = c === 0x7b
      continue
    }
    if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth === 0 || kind[depth] !== (c === 0x7d ? OBJ : ARR)) return fail(path(), 'syntax', 'unbalanced brackets')
      depth--
      expectKey = false
      continue
    }
    if (c === 0x2c /* , */) {
      if (depth > 0 && kind[depth] === OBJ) expectKey = true
      continue
    }
    // A number or literal: runs to the next delimiter.
    let j = i
    while (j < n && !isDelimiter(bytes[j])) j++
    if (j - i > limits.maxNumberLength) return fail(path(), 'maxNumberLength', `token longer than ${limits.maxNumberLength} characters`)
    const bad = onValue()
    if (bad != null) return bad
    i = j - 1
  }
  if (depth !== 0) return fail(path(), 'syntax', 'unbalanced brackets')
  return { ok: true }
}

function isDelimiter (b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09 || b === 0x2c || b === 0x5d || b === 0x7d || b === 0x3a || b === 0x22 || b === 0x5b || b === 0x7b
}

const FORBIDDEN_BYTES = [...FORBIDDEN_KEYS].map((k) => new TextEncoder().encode(k))

/** Whether the raw key bytes spell a forbidden key; allocates only for keys written with escapes. */
function isForbiddenKey (bytes: Uint8Array, start: number, end: number): boolean {
  const len = end - start
  for (let i = start; i < end; i++) if (bytes[i] === 0x5c) return FORBIDDEN_KEYS.has(decodeKey(bytes, start, end))
  outer: for (const f of FORBIDDEN_BYTES) {
    if (f.length !== len) continue
    for (let i = 0; i < len; i++) if (bytes[start + i] !== f[i]) continue outer
    return true
  }
  return false
}

/** The key as JSON.parse would produce it (escapes decoded); raw text if it does not decode. */
function decodeKey (bytes: Uint8Array, start: number, end: number): string {
  const raw = utf8Decoder.decode(bytes.subarray(start, Math.min(end, start + 256)))
  if (!raw.includes('\\')) return raw
  try {
    const v: unknown = JSON.parse('"' + raw + '"')
    return typeof v === 'string' ? v : raw
  } catch {
    return raw
  }
}

export function escapePointer (s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

function fail (path: string, keyword: string, message: string): ScanResult {
  return { ok: false, issue: { path, keyword, message } }
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as Partial<T>
}

// ---- regular expressions ---------------------------------------------------------------

let linearAvailable: boolean | undefined

/**
 * Whether V8's linear-time regexp engine (the `l` flag) can be used. Enabling it sets a V8
 * flag once per process; the flag only makes the `l` flag available and changes no other
 * regular expression.
 */
export function linearRegExpAvailable (): boolean {
  if (linearAvailable !== undefined) return linearAvailable
  try {
    // eslint-disable-next-line no-new
    new RegExp('a', 'l')
    linearAvailable = true
  } catch {
    try {
      v8.setFlagsFromString('--enable-experimental-regexp-engine')
      // eslint-disable-next-line no-new
      new RegExp('a', 'l')
      linearAvailable = true
    } catch {
      linearAvailable = false
    }
  }
  return linearAvailable
}

export const MAX_PATTERN_LENGTH = 512

/**
 * Compiles a JSON Schema `pattern` so that matching takes time linear in the input. V8's
 * linear engine has no `u` mode, so syntax that means something else without it (`\p{…}`,
 * `\u{…}`, characters outside the BMP) is refused rather than silently reinterpreted; so is
 * anything the engine cannot run in linear time (backreferences, lookahead, counted
 * repetition above 16, e.g. `{1,64}`: write `+` and bound the length with maxLength).
 * Throws InvalidArgumentError with the reason.
 */
export function linearRegExp (source: string): RegExp {
  if (source.length > MAX_PATTERN_LENGTH) throw new InvalidArgumentError(`pattern longer than ${MAX_PATTERN_LENGTH} characters`)
  if (!linearRegExpAvailable()) throw new InvalidArgumentError('patterns need V8\'s linear-time regexp engine, which this runtime lacks')
  if (/\\[pP]\{|\\u\{/.test(source) || /[\uD800-\uDFFF]/.test(source)) throw new InvalidArgumentError(`pattern ${JSON.stringify(source)} uses Unicode-mode syntax (\\p{…}, \\u{…} or astral characters), which is not supported`)
  try {
    // eslint-disable-next-line no-new
    new RegExp(source, 'u') // the pattern must be valid ECMA-262 in Unicode mode, as JSON Schema requires
  } catch (err) {
    throw new InvalidArgumentError(`pattern ${JSON.stringify(source)} is not a valid regular expression`, { cause: err })
  }
  try {
    return new RegExp(source, 'l')
  } catch (err) {
    throw new InvalidArgumentError(`pattern ${JSON.stringify(source)} cannot be executed in linear time (not supported: backreferences, lookahead, counted repetition above {16}; for long runs use + or * with minLength/maxLength)`, { cause: err })
  }
}

// ---- schema documents ------------------------------------------------------------------

export interface SchemaLimits {
  /** Largest canonical (DAG-CBOR) document in bytes. */
  maxDocumentBytes: number
  /** Deepest nesting of the schema value. */
  maxDepth: number
  /** Most nodes (objects, arrays, scalars) in the schema value. */
  maxNodes: number
}

export const defaultSchemaLimits: Readonly<SchemaLimits> = Object.freeze({
  maxDocumentBytes: 64 * 1024,
  maxDepth: 32,
  maxNodes: 10_000
})

export function createSchemaLimits (partial: Partial<SchemaLimits> = {}): SchemaLimits {
  const out = { ...defaultSchemaLimits, ...stripUndefined(partial) }
  for (const k of Object.keys(defaultSchemaLimits) as Array<keyof SchemaLimits>) {
    const v = out[k]
    if (!Number.isSafeInteger(v) || v < 1 || v > 1_000_000) throw new InvalidArgumentError(`schema limit ${k} must be an integer in 1…1000000`)
  }
  return out
}

/** The JSON Schema dialect documents use (Ajv's 2020-12 implementation). */
export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema'

// Keywords that would let a schema name or reach other documents: the URI of the registry
// document is its only identity, and references stay inside the document.
const FORBIDDEN_KEYWORDS = new Set(['$id', '$anchor', '$dynamicRef', '$dynamicAnchor', '$recursiveRef', '$recursiveAnchor', '$vocabulary'])
// Keywords whose object values map names (not keywords) to schemas or data.
const NAME_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'])
// Keywords whose values are data, not schemas.
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples', 'dependentRequired', 'required'])

/**
 * Bounds and sanity of a schema value, before Ajv sees it. Returns the first problem as a
 * message naming its JSON pointer, or undefined. Recursion depth is bounded by maxDepth.
 */
export function checkSchemaShape (schema: unknown, limits: SchemaLimits = defaultSchemaLimits): string | undefined {
  let nodes = 0
  const walk = (v: unknown, ptr: string, depth: number, mode: 'schema' | 'names' | 'data'): string | undefined => {
    if (++nodes > limits.maxNodes) return `schema has more than ${limits.maxNodes} nodes`
    if (depth > limits.maxDepth) return `schema nesting deeper than ${limits.maxDepth} at ${ptr || '/'}`
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return undefined
    if (typeof v === 'number') return Number.isFinite(v) ? undefined : `non-finite number at ${ptr}`
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const p = walk(v[i], `${ptr}/${i}`, depth + 1, mode === 'data' ? 'data' : 'schema')
        if (p != null) return p
      }
      return undefined
    }
    if (typeof v !== 'object' || v instanceof Uint8Array) return `unsupported value at ${ptr || '/'} (only JSON values)`
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      const at = `${ptr}/${escapePointer(k)}`
      if (FORBIDDEN_KEYS.has(k)) return `key ${JSON.stringify(k)} is not allowed (at ${at})`
      if (mode === 'schema') {
        if (FORBIDDEN_KEYWORDS.has(k)) return `${k} is not allowed in registry schemas (at ${at}): the document URI is the schema's identity`
        if (k === '$schema' && (ptr !== '' || child !== JSON_SCHEMA_DIALECT)) return `$schema must be ${JSON_SCHEMA_DIALECT} and only at the root (at ${at})`
        if (k === '$ref' && (typeof child !== 'string' || !child.startsWith('#'))) return `only local references (#/…) are allowed (at ${at})`
        if (k === 'pattern' && typeof child === 'string') {
          const p = patternProblem(child)
          if (p != null) return `${p} (at ${at})`
        }
        if (k === 'patternProperties' && child != null && typeof child === 'object') {
          for (const pk of Object.keys(child)) {
            const p = patternProblem(pk)
            if (p != null) return `${p} (at ${at})`
          }
        }
      }
      const childMode = mode === 'data' ? 'data' : mode === 'names' ? 'schema' : NAME_MAPS.has(k) ? 'names' : DATA_KEYWORDS.has(k) ? 'data' : 'schema'
      const p = walk(child, at, depth + 1, childMode)
      if (p != null) return p
    }
    return undefined
  }
  return walk(schema, '', 1, 'schema')
}

function patternProblem (source: string): string | undefined {
  try {
    linearRegExp(source)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

/**
 * Schema compatibility: does every instance the old schema accepts pass the new one?
 *
 * Inclusion of JSON Schemas is undecidable in general, so this is a *sound* structural
 * checker for a documented subset (docs/SEMANTIC.md, "Compatibility"): `ok: true` is a
 * proof; anything it cannot prove, it reports as incompatible with the path and the reason.
 * It errs only towards "incompatible":
 *
 * - where the old schema is combined (`allOf`, `$ref` with siblings, `anyOf` branches with
 *   siblings) it is replaced by a *wider* schema (constraints dropped, never added), so a
 *   proof for the wider schema holds for the real one;
 * - where the new schema is combined, every part must be proved (`allOf`), or one branch
 *   (`anyOf`), or one branch plus disjointness from all the others (`oneOf`);
 * - finite old schemas (`enum`, `const`, `null`, `boolean`) are decided exactly, value by value;
 * - a keyword outside the subset, on either side, fails the proof, unless the two subschemas
 *   are identical and free of references.
 *
 * Pure; every loop and recursion is bounded (depth and a step budget).
 */
import { linearRegExp } from './bounds.ts'

export type JsonSchema = boolean | { readonly [k: string]: unknown }
type Obj = Record<string, unknown>

export type CompatResult = { ok: true } | { ok: false, path: string, reason: string }

export interface CompatOptions {
  /** Most comparison steps before giving up (as incompatible). */
  maxSteps: number
  /** Deepest recursion before giving up (as incompatible). */
  maxDepth: number
}

export const defaultCompatOptions: Readonly<CompatOptions> = Object.freeze({ maxSteps: 20_000, maxDepth: 96 })

/** Keywords the checker reasons about. */
export const COMPAT_KEYWORDS: ReadonlySet<string> = new Set([
  'type', 'enum', 'const',
  'properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties',
  'items', 'minItems', 'maxItems', 'uniqueItems',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
  'minLength', 'maxLength', 'pattern', 'format',
  'anyOf', 'oneOf', 'allOf', '$ref'
])

/** Keywords that do not constrain instances. */
export const ANNOTATION_KEYWORDS: ReadonlySet<string> = new Set([
  '$schema', '$comment', '$defs', 'definitions', 'title', 'description', 'examples', 'default', 'deprecated', 'readOnly', 'writeOnly'
])

const ALL_TYPES = ['null', 'boolean', 'object', 'array', 'number', 'string'] as const
type JsonType = 'null' | 'boolean' | 'object' | 'array' | 'number' | 'integer' | 'string'

class Unprovable extends Error {
  readonly path: string
  constructor (path: string, reason: string) {
    super(reason)
    this.path = path
  }
}

/** The step or depth budget ran out: final, never retried on another branch. */
class Exhausted extends Unprovable {}

interface Ctx {
  oldRoot: JsonSchema
  newRoot: JsonSchema
  steps: number
  opts: CompatOptions
  /** Pairs (old, new) under proof: met again, they are assumed included (coinduction over $ref cycles). */
  assumed: Map<object, Set<object>>
  /** Every pair added to `assumed`, in order, so a failed `anyOf`/`oneOf` trial can take its assumptions back. */
  log: Array<[object, object]>
}

/**
 * Proves that `newSchema` accepts every instance `oldSchema` accepts.
 *
 * @example
 * checkCompatible({ type: 'integer', maximum: 10 }, { type: 'number' }) // { ok: true }
 * checkCompatible({ type: 'string' }, { type: 'string', maxLength: 5 })
 * // { ok: false, path: '', reason: 'maxLength: the new version adds a limit of 5 …' }
 */
export function checkCompatible (oldSchema: JsonSchema, newSchema: JsonSchema, options: Partial<CompatOptions> = {}): CompatResult {
  const ctx: Ctx = { oldRoot: oldSchema, newRoot: newSchema, steps: 0, opts: { ...defaultCompatOptions, ...options }, assumed: new Map(), log: [] }
  try {
    sub(oldSchema, newSchema, ctx, '', 0)
    return { ok: true }
  } catch (err) {
    if (err instanceof Unprovable) return { ok: false, path: err.path, reason: err.message }
    throw err
  }
}

function isObj (v: unknown): v is Obj {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

function tick (ctx: Ctx, path: string, depth: number): void {
  if (++ctx.steps > ctx.opts.maxSteps) throw new Exhausted(path, `the schemas are too complex to compare (more than ${ctx.opts.maxSteps} steps)`)
  if (depth > ctx.opts.maxDepth) throw new Exhausted(path, `the schemas nest too deeply to compare (more than ${ctx.opts.maxDepth} levels)`)
}

/** The constraining keywords of a schema object (annotations dropped). */
function constraints (s: Obj): Obj {
  const out: Obj = {}
  for (const [k, v] of Object.entries(s)) if (!ANNOTATION_KEYWORDS.has(k)) out[k] = v
  return out
}

function hasRef (v: unknown, depth = 0): boolean {
  if (depth > 64) return true
  if (Array.isArray(v)) return v.some((x) => hasRef(x, depth + 1))
  if (!isObj(v)) return false
  if ('$ref' in v) return true
  return Object.values(v).some((x) => hasRef(x, depth + 1))
}

export function deepEqual (a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true
  if (depth > 64) return false
  if (typeof a !== typeof b || a == null || b == null || typeof a !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i], depth + 1))
  }
  const ka = Object.keys(a as Obj)
  const kb = Object.keys(b as Obj)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b as Obj, k) && deepEqual((a as Obj)[k], (b as Obj)[k], depth + 1))
}

/** Resolves a local `#/…` JSON pointer inside `root`. */
export function resolvePointer (root: JsonSchema, ref: string): JsonSchema | undefined {
  if (!ref.startsWith('#')) return undefined
  const frag = ref.slice(1)
  if (frag === '') return root
  if (!frag.startsWith('/')) return undefined
  let cur: unknown = root
  const parts = frag.slice(1).split('/')
  if (parts.length > 64) return undefined
  for (const raw of parts) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(cur)) cur = cur[Number(part)]
    else if (isObj(cur) && Object.hasOwn(cur, part)) cur = cur[part]
    else return undefined
  }
  return typeof cur === 'boolean' || isObj(cur) ? cur as JsonSchema : undefined
}

/** Replaces a `$ref` by its target; siblings are merged in as a wider schema (see mergeWider). */
function expandRef (s: Obj, root: JsonSchema, path: string): JsonSchema {
  let cur: JsonSchema = s
  for (let i = 0; i < 32; i++) {
    if (!isObj(cur) || typeof cur.$ref !== 'string') return cur
    const target = resolvePointer(root, cur.$ref)
    if (target === undefined) throw new Unprovable(path, `$ref ${cur.$ref} does not resolve inside the document`)
    const { $ref: _r, ...siblings } = cur
    const rest = constraints(siblings)
    cur = Object.keys(rest).length === 0 ? target : target === false ? false : target === true ? rest : mergeWider(target, rest)
  }
  throw new Unprovable(path, '$ref chain too long (a reference cycle?)')
}

/**
 * A schema accepting at least every instance that both `s` and `t` accept. Exact for
 * `type` (intersection) and `required` (union); elsewhere, where both have a keyword, `t`'s
 * is kept and `s`'s dropped, which can only widen. `additionalProperties` then applies to
 * fewer names (the union of `properties`), which also only widens.
 */
export function mergeWider (s: Obj, t: Obj): Obj {
  const out: Obj = { ...s, ...t }
  if (s.type !== undefined && t.type !== undefined) {
    const ts = typeList(s.type)
    const tt = typeList(t.type)
    out.type = [...new Set([
      ...ts.filter((x) => tt.includes(x) || (x === 'integer' && tt.includes('number'))),
      ...tt.filter((x) => ts.includes(x) || (x === 'integer' && ts.includes('number')))
    ])]
  }
  if (Array.isArray(s.required) && Array.isArray(t.required)) out.required = [...new Set([...s.required, ...t.required])]
  if (isObj(s.properties) && isObj(t.properties)) out.properties = { ...s.properties, ...t.properties }
  return out
}

function typeList (t: unknown): JsonType[] {
  if (typeof t === 'string') return [t as JsonType]
  if (Array.isArray(t)) return t.filter((x): x is JsonType => typeof x === 'string')
  return []
}

/** The JSON types a schema object admits by its `type` keyword (`integer` stands apart from `number`). */
function typeSet (s: Obj): Set<JsonType> {
  return s.type === undefined ? new Set<JsonType>(ALL_TYPES) : new Set(typeList(s.type))
}

function admitsType (types: Set<JsonType>, t: JsonType): boolean {
  return types.has(t) || (t === 'integer' && types.has('number'))
}

function describe (v: unknown): string {
  const s = JSON.stringify(v)
  return s.length > 60 ? s.slice(0, 57) + '…' : s
}

function sub (a0: JsonSchema, b0: JsonSchema, ctx: Ctx, path: string, depth: number): void {
  tick(ctx, path, depth)
  if (a0 === false) return
  if (b0 === true) return
  if (isObj(b0) && Object.keys(constraints(b0)).length === 0) return
  if (b0 === false) throw new Unprovable(path, 'the new version accepts nothing here, the old one accepted values')
  const a = a0 === true ? {} : a0
  const b = b0 as Obj
  if (!hasRef(a) && !hasRef(b) && deepEqual(constraints(a), constraints(b))) return

  // Coinduction: met again while proving the same pair, the pair is assumed included.
  let seen = ctx.assumed.get(a)
  if (seen?.has(b) === true) return
  if (seen == null) { seen = new Set(); ctx.assumed.set(a, seen) }
  seen.add(b)
  ctx.log.push([a, b])

  if (typeof a.$ref === 'string') return sub(expandRef(a, ctx.oldRoot, path), b, ctx, path, depth + 1)
  if (typeof b.$ref === 'string') {
    const target = resolvePointer(ctx.newRoot, b.$ref)
    if (target === undefined) throw new Unprovable(path, `$ref ${b.$ref} does not resolve inside the new document`)
    const { $ref: _r, ...rest } = b
    sub(a, target, ctx, path, depth + 1)
    return sub(a, rest, ctx, path, depth + 1)
  }

  for (const k of [...Object.keys(a), ...Object.keys(b)]) {
    if (!COMPAT_KEYWORDS.has(k) && !ANNOTATION_KEYWORDS.has(k)) {
      throw new Unprovable(path, `keyword "${k}" is outside what the compatibility checker can prove (the subschemas differ here)`)
    }
  }

  // Old side combinators, made wider where needed.
  if (Array.isArray(a.allOf)) {
    const { allOf, ...rest } = a
    let merged: Obj = rest
    for (const part of allOf as JsonSchema[]) {
      if (part === false) return
      if (isObj(part)) merged = mergeWider(merged, part)
    }
    return sub(merged, b, ctx, path, depth + 1)
  }
  for (const comb of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(a[comb])) {
      // oneOf accepts a subset of what anyOf with the same branches accepts.
      const { [comb]: branches, ...rest } = a
      for (const br of branches as JsonSchema[]) {
        if (br === false) continue
        sub(br === true ? rest : mergeWider(rest, br), b, ctx, path, depth + 1)
      }
      return
    }
  }

  // New side combinators: every part, some branch, or one branch disjoint from the others.
  if (Array.isArray(b.allOf)) {
    const { allOf, ...rest } = b
    for (const part of allOf as JsonSchema[]) sub(a, part, ctx, path, depth + 1)
    return sub(a, rest, ctx, path, depth + 1)
  }
  for (const comb of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(b[comb])) {
      const { [comb]: branches, ...rest } = b
      sub(a, rest, ctx, path, depth + 1)
      const list = branches as JsonSchema[]
      let first: Unprovable | undefined
      for (let j = 0; j < list.length; j++) {
        const mark = ctx.log.length
        try {
          sub(a, list[j], ctx, path, depth + 1)
        } catch (err) {
          if (!(err instanceof Unprovable) || err instanceof Exhausted) throw err
          first ??= err
          rollback(ctx, mark)
          continue
        }
        if (comb === 'anyOf') return
        for (let k = 0; k < list.length; k++) {
          if (k !== j && !disjoint(a, list[k], ctx, path, depth + 1)) {
            throw new Unprovable(path, `oneOf: values the old version accepted match branch ${j} and cannot be shown not to match branch ${k} too`)
          }
        }
        return
      }
      throw new Unprovable(first?.path ?? path, `${comb}: no branch of the new version accepts everything the old one accepted (first failure: ${first?.message ?? 'empty ' + comb})`)
    }
  }

  // Plain schemas on both sides. Finite old schemas are decided value by value.
  const finite = finiteValues(a, ctx.oldRoot)
  if (finite !== undefined) {
    for (const v of finite) {
      if (evaluate(b, v, ctx.newRoot, 0) !== true) throw new Unprovable(path, `the old version accepted ${describe(v)}, the new one ${evaluate(b, v, ctx.newRoot, 0) === false ? 'rejects it' : 'cannot be shown to accept it'}`)
    }
    return
  }
  if (b.enum !== undefined || b.const !== undefined) throw new Unprovable(path, `${b.enum !== undefined ? 'enum' : 'const'}: the new version allows only listed values, the old one accepted more`)

  const ta = typeSet(a)
  const tb = typeSet(b)
  for (const t of ta) {
    if (!admitsType(tb, t)) throw new Unprovable(path, `type: the old version accepted ${t === 'integer' ? 'integers' : t + ' values'}, the new one does not`)
    switch (t) {
      case 'string': strings(a, b, path); break
      case 'number': case 'integer': numbers(a, b, t, path); break
      case 'object': objects(a, b, ctx, path, depth); break
      case 'array': arrays(a, b, ctx, path, depth); break
      default: break // null and boolean carry no further keywords
    }
  }
}

/** Takes back the assumptions made since `mark`: they may rest on a trial that failed. */
function rollback (ctx: Ctx, mark: number): void {
  while (ctx.log.length > mark) {
    const [a, b] = ctx.log.pop() as [object, object]
    ctx.assumed.get(a)?.delete(b)
  }
}

function num (v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

/** A new upper limit must not be lower than the old one (absent = unlimited). */
function upper (kw: string, oldV: number | undefined, newV: number | undefined, path: string): void {
  if (newV === undefined) return
  if (oldV === undefined) throw new Unprovable(path, `${kw}: the new version adds a limit of ${newV}, the old one had none`)
  if (oldV > newV) throw new Unprovable(path, `${kw}: lowered from ${oldV} to ${newV}`)
}

/** A new lower limit must not be higher than the old one (absent = 0). */
function lower (kw: string, oldV: number | undefined, newV: number | undefined, path: string): void {
  if (newV === undefined || newV <= 0) return
  if ((oldV ?? 0) < newV) throw new Unprovable(path, `${kw}: raised from ${oldV ?? 'none'} to ${newV}`)
}

function strings (a: Obj, b: Obj, path: string): void {
  lower('minLength', num(a.minLength), num(b.minLength), path)
  upper('maxLength', num(a.maxLength), num(b.maxLength), path)
  if (b.pattern !== undefined && a.pattern !== b.pattern) {
    throw new Unprovable(path, a.pattern === undefined ? `pattern: the new version adds ${describe(b.pattern)}` : `pattern: changed from ${describe(a.pattern)} to ${describe(b.pattern)} (only identical patterns can be compared)`)
  }
  if (b.format !== undefined && a.format !== b.format) {
    throw new Unprovable(path, a.format === undefined ? `format: the new version adds "${String(b.format)}"` : `format: changed from "${String(a.format)}" to "${String(b.format)}"`)
  }
}

interface Bound { v: number, excl: boolean }

function tightest (incl: unknown, excl: unknown, isLower: boolean): Bound | undefined {
  const i = num(incl)
  const e = num(excl)
  if (i === undefined) return e === undefined ? undefined : { v: e, excl: true }
  if (e === undefined) return { v: i, excl: false }
  if (isLower) return e >= i ? { v: e, excl: true } : { v: i, excl: false }
  return e <= i ? { v: e, excl: true } : { v: i, excl: false }
}

/** For integers, a bound becomes the inclusive integer bound, which makes the comparison exact. */
function intBound (b: Bound | undefined, isLower: boolean): Bound | undefined {
  if (b === undefined) return undefined
  if (isLower) return { v: b.excl ? Math.floor(b.v) + 1 : Math.ceil(b.v), excl: false }
  return { v: b.excl ? Math.ceil(b.v) - 1 : Math.floor(b.v), excl: false }
}

function numbers (a: Obj, b: Obj, t: 'number' | 'integer', path: string): void {
  for (const isLower of [true, false]) {
    let oa = tightest(isLower ? a.minimum : a.maximum, isLower ? a.exclusiveMinimum : a.exclusiveMaximum, isLower)
    let nb = tightest(isLower ? b.minimum : b.maximum, isLower ? b.exclusiveMinimum : b.exclusiveMaximum, isLower)
    if (t === 'integer') { oa = intBound(oa, isLower); nb = intBound(nb, isLower) }
    if (nb === undefined) continue
    const kw = isLower ? 'minimum' : 'maximum'
    const show = (x: Bound): string => `${x.excl ? (isLower ? '>' : '<') : (isLower ? '≥' : '≤')} ${x.v}`
    if (oa === undefined) throw new Unprovable(path, `${kw}: the new version adds the bound ${show(nb)}, the old one had none`)
    const inside = isLower ? oa.v > nb.v : oa.v < nb.v
    const same = oa.v === nb.v && (oa.excl || !nb.excl)
    if (!inside && !same) throw new Unprovable(path, `${kw}: the old version allowed ${show(oa)}, the new one requires ${show(nb)}`)
  }
  const mb = num(b.multipleOf)
  if (mb !== undefined) {
    const ma = num(a.multipleOf) ?? (t === 'integer' ? 1 : undefined)
    if (ma === undefined || !Number.isInteger(ma / mb)) throw new Unprovable(path, `multipleOf: the old version allowed values that are not multiples of ${mb}`)
  }
}

function objects (a: Obj, b: Obj, ctx: Ctx, path: string, depth: number): void {
  const reqA = new Set(Array.isArray(a.required) ? a.required as string[] : [])
  const reqB = Array.isArray(b.required) ? b.required as string[] : []
  for (const r of reqB) if (!reqA.has(r)) throw new Unprovable(`${path}/${r}`, 'required: the new version requires this property, the old one did not')
  const propsA = isObj(a.properties) ? a.properties : {}
  const propsB = isObj(b.properties) ? b.properties : {}
  const addA = (a.additionalProperties ?? true) as JsonSchema
  const addB = (b.additionalProperties ?? true) as JsonSchema
  lower('minProperties', Math.max(num(a.minProperties) ?? 0, reqA.size), num(b.minProperties), path)
  const maxB = num(b.maxProperties)
  if (maxB !== undefined) {
    // A closed old schema cannot have more properties than it names.
    const closedCount = addA === false ? Object.keys(propsA).length : undefined
    const maxA = Math.min(num(a.maxProperties) ?? Infinity, closedCount ?? Infinity)
    upper('maxProperties', Number.isFinite(maxA) ? maxA : undefined, maxB, path)
  }
  const names = new Set([...Object.keys(propsA), ...Object.keys(propsB)])
  for (const name of names) {
    const sa = (Object.hasOwn(propsA, name) ? propsA[name] : addA) as JsonSchema
    const sb = (Object.hasOwn(propsB, name) ? propsB[name] : addB) as JsonSchema
    sub(sa, sb, ctx, `${path}/${name}`, depth + 1)
  }
  sub(addA, addB, ctx, `${path}/{other properties}`, depth + 1)
}

function arrays (a: Obj, b: Obj, ctx: Ctx, path: string, depth: number): void {
  lower('minItems', num(a.minItems), num(b.minItems), path)
  upper('maxItems', num(a.maxItems), num(b.maxItems), path)
  if (b.uniqueItems === true && a.uniqueItems !== true && (num(a.maxItems) ?? 2) > 1) throw new Unprovable(path, 'uniqueItems: the new version requires unique items, the old one did not')
  sub((a.items ?? true) as JsonSchema, (b.items ?? true) as JsonSchema, ctx, `${path}[]`, depth + 1)
}

/**
 * The values a schema can accept, when it can only accept finitely many (enum, const, null,
 * boolean); values it might accept are kept (over-approximation), values it surely rejects dropped.
 */
function finiteValues (s: Obj, root: JsonSchema): unknown[] | undefined {
  let candidates: unknown[] | undefined
  if (s.const !== undefined) candidates = [s.const]
  else if (Array.isArray(s.enum)) candidates = s.enum
  else {
    const ts = typeSet(s)
    if ([...ts].every((t) => t === 'null' || t === 'boolean')) candidates = [null, true, false]
  }
  return candidates?.filter((v) => evaluate(s, v, root, 0) !== false)
}

// ---- evaluation of the subset on one value (three-valued) --------------------------------

type Tri = boolean | undefined

function and (xs: Iterable<() => Tri>): Tri {
  let unknown = false
  for (const x of xs) {
    const r = x()
    if (r === false) return false
    if (r === undefined) unknown = true
  }
  return unknown ? undefined : true
}

function jsonTypeOf (v: unknown): JsonType | undefined {
  if (v === null) return 'null'
  if (typeof v === 'boolean') return 'boolean'
  if (typeof v === 'string') return 'string'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number'
  if (Array.isArray(v)) return 'array'
  if (isObj(v)) return 'object'
  return undefined
}

const regexCache = new WeakMap<Obj, RegExp>()

/**
 * Whether `schema` accepts `value`: true, false, or undefined when the subset cannot tell
 * (an unsupported keyword, a format). Used for enum/const values, which are small.
 */
export function evaluate (schema: JsonSchema, value: unknown, root: JsonSchema, depth: number): Tri {
  if (typeof schema === 'boolean') return schema
  if (depth > 64) return undefined
  const s = schema
  const checks: Array<() => Tri> = []
  for (const k of Object.keys(s)) if (!COMPAT_KEYWORDS.has(k) && !ANNOTATION_KEYWORDS.has(k)) return undefined
  if (typeof s.$ref === 'string') {
    const target = resolvePointer(root, s.$ref)
    if (target === undefined) return undefined
    checks.push(() => evaluate(target, value, root, depth + 1))
  }
  const vt = jsonTypeOf(value)
  if (vt === undefined) return undefined
  if (s.type !== undefined) {
    const ts = new Set(typeList(s.type))
    if (!(ts.has(vt) || (vt === 'integer' && ts.has('number')) || (vt === 'number' && ts.has('integer') && Number.isInteger(value)))) return false
  }
  if (s.const !== undefined && !deepEqual(s.const, value)) return false
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) return false
  if (vt === 'string') {
    const str = value as string
    const len = [...str].length
    if (num(s.minLength) !== undefined && len < (s.minLength as number)) return false
    if (num(s.maxLength) !== undefined && len > (s.maxLength as number)) return false
    if (typeof s.pattern === 'string') {
      let re = regexCache.get(s)
      if (re == null) {
        try { re = linearRegExp(s.pattern) } catch { return undefined }
        regexCache.set(s, re)
      }
      if (!re.test(str)) return false
    }
    if (s.format !== undefined) checks.push(() => undefined)
  }
  if (vt === 'number' || vt === 'integer') {
    const n = value as number
    if (num(s.minimum) !== undefined && n < (s.minimum as number)) return false
    if (num(s.maximum) !== undefined && n > (s.maximum as number)) return false
    if (num(s.exclusiveMinimum) !== undefined && n <= (s.exclusiveMinimum as number)) return false
    if (num(s.exclusiveMaximum) !== undefined && n >= (s.exclusiveMaximum as number)) return false
    if (num(s.multipleOf) !== undefined && !Number.isInteger(n / (s.multipleOf as number))) return false
  }
  if (vt === 'object') {
    const o = value as Obj
    const keys = Object.keys(o)
    if (Array.isArray(s.required) && !s.required.every((r) => typeof r === 'string' && Object.hasOwn(o, r))) return false
    if (num(s.minProperties) !== undefined && keys.length < (s.minProperties as number)) return false
    if (num(s.maxProperties) !== undefined && keys.length > (s.maxProperties as number)) return false
    const props = isObj(s.properties) ? s.properties : {}
    for (const k of keys) {
      const sub = Object.hasOwn(props, k) ? props[k] as JsonSchema : s.additionalProperties as JsonSchema | undefined
      if (sub !== undefined) checks.push(() => evaluate(sub, o[k], root, depth + 1))
    }
  }
  if (vt === 'array') {
    const arr = value as unknown[]
    if (num(s.minItems) !== undefined && arr.length < (s.minItems as number)) return false
    if (num(s.maxItems) !== undefined && arr.length > (s.maxItems as number)) return false
    if (s.uniqueItems === true) {
      for (let i = 0; i < arr.length; i++) for (let j = i + 1; j < arr.length; j++) if (deepEqual(arr[i], arr[j])) return false
    }
    if (s.items !== undefined) for (const item of arr) checks.push(() => evaluate(s.items as JsonSchema, item, root, depth + 1))
  }
  if (Array.isArray(s.allOf)) for (const part of s.allOf) checks.push(() => evaluate(part as JsonSchema, value, root, depth + 1))
  if (Array.isArray(s.anyOf)) {
    checks.push(() => {
      let unknown = false
      for (const br of s.anyOf as JsonSchema[]) {
        const r = evaluate(br, value, root, depth + 1)
        if (r === true) return true
        if (r === undefined) unknown = true
      }
      return unknown ? undefined : false
    })
  }
  if (Array.isArray(s.oneOf)) {
    checks.push(() => {
      let matches = 0
      for (const br of s.oneOf as JsonSchema[]) {
        const r = evaluate(br, value, root, depth + 1)
        if (r === undefined) return undefined
        if (r) matches++
      }
      return matches === 1
    })
  }
  return and(checks)
}

// ---- disjointness (for oneOf in the new schema) ----------------------------------------

/** True when no instance can satisfy both (a from the old document, b from the new). False = not proven. */
function disjoint (a0: JsonSchema, b0: JsonSchema, ctx: Ctx, path: string, depth: number): boolean {
  tick(ctx, path, depth)
  if (a0 === false || b0 === false) return true
  if (a0 === true || b0 === true) return false
  let a: JsonSchema = a0
  let b: JsonSchema = b0
  try {
    a = expandRef(a0, ctx.oldRoot, path)
    b = expandRef(b0, ctx.newRoot, path)
  } catch { return false }
  if (a === false || b === false) return true
  if (a === true || b === true) return false
  // Reason only with the subset: an unknown keyword could widen what the keywords used below say.
  for (const k of [...Object.keys(a), ...Object.keys(b)]) if (!COMPAT_KEYWORDS.has(k) && !ANNOTATION_KEYWORDS.has(k)) return false
  if (Array.isArray(a.anyOf) || Array.isArray(a.oneOf)) {
    const comb = Array.isArray(a.anyOf) ? 'anyOf' : 'oneOf'
    const { [comb]: branches, ...rest } = a
    return (branches as JsonSchema[]).every((br) => br === false || disjoint(br === true ? rest : mergeWider(rest, br), b, ctx, path, depth + 1))
  }
  if (Array.isArray(a.allOf)) {
    const { allOf, ...rest } = a
    let merged: Obj = rest
    for (const part of allOf as JsonSchema[]) { if (part === false) return true; if (isObj(part)) merged = mergeWider(merged, part) }
    return disjoint(merged, b, ctx, path, depth + 1)
  }
  // Types that do not overlap.
  const ta = typeSet(a)
  const tb = typeSet(b)
  const overlap = [...ta].some((t) => admitsType(tb, t) || (t === 'number' && tb.has('integer')))
  if (!overlap) return true
  // Finite sides: no candidate of one is accepted by the other.
  const fa = finiteValues(a, ctx.oldRoot)
  if (fa !== undefined && fa.every((v) => evaluate(b, v, ctx.newRoot, 0) === false)) return true
  const fb = finiteValues(b, ctx.newRoot)
  if (fb !== undefined && fb.every((v) => evaluate(a, v, ctx.oldRoot, 0) === false)) return true
  // Objects both must carry a property whose values cannot agree (tagged unions).
  const objectsOnly = (t: Set<JsonType>): boolean => [...t].every((x) => x === 'object')
  if (objectsOnly(ta) || objectsOnly(tb)) {
    const reqA = Array.isArray(a.required) ? a.required as string[] : []
    const reqB = Array.isArray(b.required) ? b.required as string[] : []
    const pa = isObj(a.properties) ? a.properties : {}
    const pb = isObj(b.properties) ? b.properties : {}
    // The new schema requires a property the old one never has.
    if (objectsOnly(ta) && reqB.some((r) => Object.hasOwn(pa, r) ? pa[r] === false : a.additionalProperties === false)) return true
    if (objectsOnly(tb) && reqA.some((r) => Object.hasOwn(pb, r) ? pb[r] === false : b.additionalProperties === false)) return true
    if (objectsOnly(ta) && objectsOnly(tb)) {
      for (const r of reqA) {
        if (!reqB.includes(r)) continue
        const sa = (Object.hasOwn(pa, r) ? pa[r] : a.additionalProperties ?? true) as JsonSchema
        const sb = (Object.hasOwn(pb, r) ? pb[r] : b.additionalProperties ?? true) as JsonSchema
        if (disjoint(sa, sb, ctx, `${path}/${r}`, depth + 1)) return true
      }
    }
  }
  return false
}

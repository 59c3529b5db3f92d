import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { checkCompatible, type JsonSchema } from '../../src/semantic/index.ts'
import { createAjv } from '../../src/semantic/ajv.ts'

const ok = (a: JsonSchema, b: JsonSchema): void => {
  const r = checkCompatible(a, b)
  assert.ok(r.ok, `expected compatible: ${JSON.stringify(a)} → ${JSON.stringify(b)}: ${r.ok ? '' : `${r.path}: ${r.reason}`}`)
}
const breaks = (a: JsonSchema, b: JsonSchema, reason: RegExp, path?: string): void => {
  const r = checkCompatible(a, b)
  assert.ok(!r.ok, `expected incompatible: ${JSON.stringify(a)} → ${JSON.stringify(b)}`)
  assert.match(r.reason, reason)
  if (path !== undefined) assert.equal(r.path, path)
}

describe('compatibility rules', () => {
  test('type: widening is safe, narrowing breaks', () => {
    ok({ type: 'string' }, { type: ['string', 'null'] })
    ok({ type: 'integer' }, { type: 'number' })
    ok({ type: 'string' }, {})
    breaks({ type: ['string', 'null'] }, { type: 'string' }, /type: the old version accepted null/)
    breaks({ type: 'number' }, { type: 'integer' }, /type/)
    breaks({}, { type: 'object' }, /type/)
  })

  test('required: dropping is safe, adding breaks', () => {
    ok({ type: 'object', required: ['a', 'b'] }, { type: 'object', required: ['a'] })
    breaks({ type: 'object', required: ['a'] }, { type: 'object', required: ['a', 'b'] }, /required/, '/b')
  })

  test('properties: changed types break, with the path; optional additions depend on additionalProperties', () => {
    const old = { type: 'object', properties: { price: { type: 'integer' } } }
    ok(old, { type: 'object', properties: { price: { type: 'number' } } })
    breaks(old, { type: 'object', properties: { price: { type: 'string' } } }, /type/, '/price')
    // An open schema accepted any value under a new name; a closed one accepted none.
    breaks(old, { type: 'object', properties: { price: { type: 'integer' }, note: { type: 'string' } } }, /type/, '/note')
    ok({ ...old, additionalProperties: false }, { type: 'object', properties: { price: { type: 'integer' }, note: { type: 'string' } }, additionalProperties: false })
    breaks({ ...old, additionalProperties: false }, { type: 'object', properties: {}, additionalProperties: false }, /accepts nothing/, '/price')
  })

  test('additionalProperties: opening is safe, closing breaks, schemas compare', () => {
    ok({ type: 'object', additionalProperties: false }, { type: 'object' })
    ok({ type: 'object', additionalProperties: { type: 'integer' } }, { type: 'object', additionalProperties: { type: 'number' } })
    breaks({ type: 'object' }, { type: 'object', additionalProperties: false }, /accepts nothing/, '/{other properties}')
    breaks({ type: 'object', additionalProperties: { type: 'number' } }, { type: 'object', additionalProperties: { type: 'integer' } }, /type/)
  })

  test('items and array lengths', () => {
    ok({ type: 'array', items: { type: 'integer' }, maxItems: 5 }, { type: 'array', items: { type: 'number' }, maxItems: 10 })
    ok({ type: 'array', minItems: 2 }, { type: 'array', minItems: 1 })
    breaks({ type: 'array', items: { type: 'number' } }, { type: 'array', items: { type: 'integer' } }, /type/, '[]')
    breaks({ type: 'array', maxItems: 10 }, { type: 'array', maxItems: 5 }, /maxItems: lowered from 10 to 5/)
    breaks({ type: 'array' }, { type: 'array', minItems: 1 }, /minItems/)
    breaks({ type: 'array' }, { type: 'array', uniqueItems: true }, /uniqueItems/)
    ok({ type: 'array', maxItems: 1 }, { type: 'array', uniqueItems: true })
  })

  test('enum and const: decided value by value', () => {
    ok({ enum: ['a', 'b'] }, { enum: ['a', 'b', 'c'] })
    ok({ const: 'a' }, { enum: ['a', 'b'] })
    ok({ enum: ['a', 'b'] }, { type: 'string', maxLength: 1 })
    ok({ type: 'boolean' }, { enum: [true, false, null] })
    ok({ enum: [1, 'x'], type: 'integer' }, { type: 'integer', minimum: 1 })
    breaks({ enum: ['a', 'b', 'c'] }, { enum: ['a', 'b'] }, /accepted "c"/)
    breaks({ type: 'string' }, { enum: ['a'] }, /enum/)
    breaks({ type: 'boolean' }, { const: true }, /accepted false/)
  })

  test('numeric bounds, exclusive and inclusive, exact for integers', () => {
    ok({ type: 'number', minimum: 5, maximum: 10 }, { type: 'number', minimum: 0, maximum: 20 })
    ok({ type: 'number', exclusiveMinimum: 0 }, { type: 'number', minimum: 0 })
    ok({ type: 'integer', minimum: 1 }, { type: 'integer', exclusiveMinimum: 0 })
    ok({ type: 'integer', maximum: 9 }, { type: 'integer', exclusiveMaximum: 10 })
    breaks({ type: 'number', minimum: 0 }, { type: 'number', exclusiveMinimum: 0 }, /minimum/)
    breaks({ type: 'number', minimum: 0 }, { type: 'number', minimum: 1 }, /minimum: the old version allowed ≥ 0, the new one requires ≥ 1/)
    breaks({ type: 'number', maximum: 10 }, { type: 'number', maximum: 9 }, /maximum/)
    breaks({ type: 'number' }, { type: 'number', maximum: 9 }, /adds the bound/)
    ok({ type: 'integer', multipleOf: 4 }, { type: 'integer', multipleOf: 2 })
    ok({ type: 'integer' }, { type: 'number', multipleOf: 1 })
    breaks({ type: 'integer', multipleOf: 2 }, { type: 'integer', multipleOf: 4 }, /multipleOf/)
  })

  test('string lengths, pattern and format', () => {
    ok({ type: 'string', minLength: 2, maxLength: 5 }, { type: 'string', minLength: 1, maxLength: 10 })
    breaks({ type: 'string', maxLength: 10 }, { type: 'string', maxLength: 5 }, /maxLength: lowered/)
    breaks({ type: 'string' }, { type: 'string', minLength: 1 }, /minLength/)
    ok({ type: 'string', pattern: '^[a-z]+$' }, { type: 'string', pattern: '^[a-z]+$' })
    ok({ type: 'string', pattern: '^[a-z]+$' }, { type: 'string' })
    breaks({ type: 'string', pattern: '^[a-z]+$' }, { type: 'string', pattern: '^[a-z0-9]+$' }, /only identical patterns/)
    breaks({ type: 'string' }, { type: 'string', pattern: '^a' }, /adds/)
    breaks({ type: 'string' }, { type: 'string', format: 'email' }, /format/)
    ok({ type: 'string', format: 'email' }, { type: 'string', format: 'email' })
    ok({ enum: ['abc', 'abd'] }, { type: 'string', pattern: '^ab' })
  })

  test('nested objects and arrays report the instance path', () => {
    const mk = (max: number): JsonSchema => ({
      type: 'object',
      properties: { lines: { type: 'array', items: { type: 'object', properties: { qty: { type: 'integer', maximum: max } }, required: ['qty'] } } }
    })
    ok(mk(10), mk(100))
    breaks(mk(100), mk(10), /maximum/, '/lines[]/qty')
  })

  test('anyOf / oneOf widening', () => {
    ok({ type: 'string' }, { anyOf: [{ type: 'string' }, { type: 'null' }] })
    ok({ anyOf: [{ type: 'string' }, { type: 'integer' }] }, { type: ['string', 'number'] })
    ok({ oneOf: [{ type: 'string' }, { type: 'integer' }] }, { anyOf: [{ type: 'string' }, { type: 'number' }] })
    breaks({ anyOf: [{ type: 'string' }, { type: 'integer' }] }, { type: 'string' }, /type/)
    breaks({ type: ['string', 'integer'] }, { anyOf: [{ type: 'string' }, { type: 'boolean' }] }, /anyOf: no branch/)
    // oneOf: the branch taken must be provably disjoint from the others.
    ok({ type: 'string' }, { oneOf: [{ type: 'string' }, { type: 'integer' }] })
    const tagged = (kinds: string[]): JsonSchema => ({
      oneOf: kinds.map((k) => ({ type: 'object', properties: { kind: { const: k }, v: { type: 'integer' } }, required: ['kind'] }))
    })
    ok(tagged(['a']), tagged(['a', 'b']))
    breaks({ type: 'integer' }, { oneOf: [{ type: 'integer' }, { type: 'number' }] }, /oneOf/)
    // anyOf with sibling constraints on the old side.
    ok({ type: 'object', required: ['id'], anyOf: [{ required: ['a'] }, { required: ['b'] }] }, { type: 'object', required: ['id'] })
  })

  test('allOf on either side', () => {
    ok({ allOf: [{ type: 'object' }, { required: ['a'] }] }, { type: 'object', required: ['a'] })
    ok({ type: 'object', required: ['a', 'b'] }, { allOf: [{ type: 'object', required: ['a'] }, { required: ['b'] }] })
    breaks({ type: 'object', required: ['a'] }, { allOf: [{ type: 'object' }, { required: ['b'] }] }, /required/)
  })

  test('local $ref, including recursive schemas', () => {
    const tree = (max: number): JsonSchema => ({
      $defs: { node: { type: 'object', properties: { v: { type: 'integer', maximum: max }, children: { type: 'array', items: { $ref: '#/$defs/node' } } } } },
      $ref: '#/$defs/node'
    })
    ok(tree(10), tree(10))
    ok(tree(10), tree(20))
    breaks(tree(20), tree(10), /maximum/, '/v')
    const deep = (max: number): JsonSchema => ({ ...(tree(1000) as object), $defs: { node: { type: 'object', properties: { children: { type: 'array', items: { $ref: '#/$defs/leaf' } } } }, leaf: { type: 'object', properties: { v: { type: 'integer', maximum: max } } } } })
    breaks(deep(20), deep(10), /maximum/, '/children[]/v')
    breaks({ $ref: '#/$defs/missing' }, { type: 'string' }, /does not resolve/)
  })

  test('boolean schemas', () => {
    ok(false, { type: 'string' })
    ok({ type: 'string' }, true)
    breaks(true, { type: 'object' }, /type/)
    breaks({ type: 'string' }, false, /accepts nothing/)
  })

  test('keywords outside the subset: identical is fine, any difference is refused, naming the keyword', () => {
    const s = { type: 'object', patternProperties: { '^x-': { type: 'string' } } }
    ok(s, structuredClone(s))
    breaks(s, { type: 'object', patternProperties: { '^x-': { type: 'number' } } }, /keyword "patternProperties"/)
    breaks({ type: 'string' }, { type: 'string', not: { const: 'a' } }, /keyword "not"/)
    breaks({ type: 'object', properties: { a: { type: 'string', not: { const: 'x' } } } }, { type: 'object', properties: { a: { type: 'string' } } }, /keyword "not"/, '/a')
  })

  test('annotations are ignored', () => {
    ok({ type: 'string', title: 'A', description: 'old' }, { type: 'string', description: 'new', examples: ['x'], default: 'y' })
  })

  test('pathological inputs end with "too complex" instead of hanging', () => {
    let a: JsonSchema = { type: 'string' }
    let b: JsonSchema = { type: 'string' }
    for (let i = 0; i < 12; i++) { a = { anyOf: [a, a] }; b = { anyOf: [{ type: 'integer' }, b] } }
    const t0 = performance.now()
    const r = checkCompatible(a, b, { maxSteps: 5_000 })
    assert.ok(performance.now() - t0 < 2_000)
    assert.ok(r.ok || /too complex|nest too deeply/.test(r.reason))
  })
})

// ---- soundness: whenever the checker says compatible, Ajv must agree on random instances ----

function rng (seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}

function randomSchema (r: () => number, depth: number): JsonSchema {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const kind = depth > 2 ? pick(['integer', 'number', 'string', 'boolean', 'null', 'enum']) : pick(['integer', 'number', 'string', 'object', 'array', 'enum', 'anyOf', 'oneOf', 'multi', 'any'])
  const maybe = (p: number): boolean => r() < p
  switch (kind) {
    case 'integer': case 'number': {
      const s: Record<string, unknown> = { type: kind }
      if (maybe(0.5)) s[maybe(0.5) ? 'minimum' : 'exclusiveMinimum'] = Math.floor(r() * 6) - 2
      if (maybe(0.5)) s[maybe(0.5) ? 'maximum' : 'exclusiveMaximum'] = Math.floor(r() * 6) + 2
      if (maybe(0.2)) s.multipleOf = pick([1, 2, 0.5])
      return s
    }
    case 'string': {
      const s: Record<string, unknown> = { type: 'string' }
      if (maybe(0.4)) s.minLength = Math.floor(r() * 3)
      if (maybe(0.4)) s.maxLength = Math.floor(r() * 4) + 1
      if (maybe(0.2)) s.pattern = pick(['^a', 'b$'])
      return s
    }
    case 'boolean': case 'null': return { type: kind }
    case 'enum': return { enum: [pick([0, 1, 2]), pick(['a', 'b', 'ab']), ...(maybe(0.3) ? [null, true] : [])] }
    case 'object': {
      const props: Record<string, JsonSchema> = {}
      for (const k of ['a', 'b', 'c']) if (maybe(0.5)) props[k] = randomSchema(r, depth + 1)
      const s: Record<string, unknown> = { type: 'object', properties: props }
      const req = Object.keys(props).filter(() => maybe(0.4))
      if (req.length > 0) s.required = req
      if (maybe(0.4)) s.additionalProperties = maybe(0.5) ? false : randomSchema(r, depth + 1)
      return s
    }
    case 'array': {
      const s: Record<string, unknown> = { type: 'array' }
      if (maybe(0.7)) s.items = randomSchema(r, depth + 1)
      if (maybe(0.3)) s.minItems = Math.floor(r() * 2)
      if (maybe(0.3)) s.maxItems = Math.floor(r() * 3) + 1
      return s
    }
    case 'anyOf': case 'oneOf': return { [kind]: [randomSchema(r, depth + 1), randomSchema(r, depth + 1)] }
    case 'multi': return { type: [pick(['string', 'integer']), pick(['null', 'number', 'boolean'])] }
    default: return {}
  }
}

function randomValue (r: () => number, depth: number): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const k = pick(depth > 2 ? ['int', 'num', 'str', 'bool', 'null'] : ['int', 'num', 'str', 'bool', 'null', 'obj', 'arr', 'int', 'str'])
  switch (k) {
    case 'int': return Math.floor(r() * 10) - 4
    case 'num': return Math.round((r() * 10 - 4) * 4) / 4
    case 'str': return pick(['', 'a', 'b', 'ab', 'ba', 'abc', 'aab', 'abcd'])
    case 'bool': return r() < 0.5
    case 'null': return null
    case 'obj': { const o: Record<string, unknown> = {}; for (const key of ['a', 'b', 'c', 'd']) if (r() < 0.5) o[key] = randomValue(r, depth + 1); return o }
    default: return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1))
  }
}

test('soundness on random schema pairs: "compatible" is never contradicted by Ajv (seeded)', () => {
  const r = rng(20260101)
  const ajv = createAjv()
  let proved = 0
  for (let i = 0; i < 1500; i++) {
    const a = randomSchema(r, 0)
    // Half the time derive b from a by a random edit, so that compatible pairs are common.
    const b = r() < 0.5 ? randomSchema(r, 0) : mutate(structuredClone(a), r)
    const res = checkCompatible(a, b)
    if (!res.ok) continue
    proved++
    const va = ajv.compile(a as object)
    const vb = ajv.compile(b as object)
    for (let j = 0; j < 150; j++) {
      const v = randomValue(r, 0)
      if (va(v) && !vb(v)) assert.fail(`unsound: ${JSON.stringify(a)} ⊆ ${JSON.stringify(b)} but ${JSON.stringify(v)} passes only the old one`)
    }
  }
  assert.ok(proved > 200, `only ${proved} pairs proved compatible`)
})

function mutate (s: JsonSchema, r: () => number): JsonSchema {
  if (typeof s === 'boolean') return s
  const o = s as Record<string, unknown>
  const edits = [
    () => { delete o.required },
    () => { delete o.maxLength; delete o.maximum; delete o.maxItems },
    () => { if (typeof o.minimum === 'number') o.minimum -= 1 },
    () => { if (typeof o.maximum === 'number') o.maximum -= 1 },
    () => { if (o.additionalProperties === false) delete o.additionalProperties },
    () => { if (Array.isArray(o.enum)) o.enum = [...o.enum, 'zz'] },
    () => { if (Array.isArray(o.enum)) o.enum = o.enum.slice(1) },
    () => { if (typeof o.type === 'string') o.type = [o.type, 'null'] },
    () => { if (o.type === 'integer') o.type = 'number' },
    () => { if (o.type === 'number') o.type = 'integer' },
    () => { o.minLength = 1 },
    () => { if (o.properties != null) (o.properties as Record<string, unknown>).d = { type: 'string' } }
  ]
  edits[Math.floor(r() * edits.length)]()
  return o
}

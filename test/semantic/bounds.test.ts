import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import v8 from 'node:v8'
import vm from 'node:vm'
import { gzipSync } from 'node:zlib'
import {
  scanJson, createPayloadLimits, defaultPayloadLimits, linearRegExp, checkSchemaShape, createSchemaRegistry, createValidation,
  type PayloadLimits, type PayloadCarrier
} from '../../src/semantic/index.ts'

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
const keyword = (bytes: Uint8Array, limits?: PayloadLimits): string => {
  const r = scanJson(bytes, limits)
  return r.ok ? 'ok' : r.issue.keyword ?? '?'
}

describe('scanJson', () => {
  const small = createPayloadLimits({ maxDepth: 3, maxProperties: 2, maxStringLength: 5, maxArrayLength: 3, maxNumberLength: 4, maxBytes: 200 })

  test('accepts ordinary JSON within the limits', () => {
    for (const s of ['{}', '[]', '1', '"abc"', 'null', '{"a":[1,2,3],"b":{"c":"x"}}', ' [ {"a" : "b\\"c"} , [ ] ] ']) assert.equal(keyword(utf8(s), small), 'ok', s)
  })

  test('each limit, at and one over', () => {
    assert.equal(keyword(utf8('[[[1]]]'), small), 'ok')
    assert.equal(keyword(utf8('[[[[1]]]]'), small), 'maxDepth')
    assert.equal(keyword(utf8('{"a":1,"b":2}'), small), 'ok')
    assert.equal(keyword(utf8('{"a":1,"b":2,"c":3}'), small), 'maxProperties')
    assert.equal(keyword(utf8('"abcde"'), small), 'ok')
    assert.equal(keyword(utf8('"abcdef"'), small), 'maxStringLength')
    assert.equal(keyword(utf8('{"abcdef":1}'), small), 'maxStringLength')
    assert.equal(keyword(utf8('[1,2,3]'), small), 'ok')
    assert.equal(keyword(utf8('[1,2,3,4]'), small), 'maxArrayLength')
    assert.equal(keyword(utf8('["a",{},[],null]'), small), 'maxArrayLength')
    assert.equal(keyword(utf8('1234'), small), 'ok')
    assert.equal(keyword(utf8('12345'), small), 'maxNumberLength')
    assert.equal(keyword(new Uint8Array(201).fill(0x20), small), 'maxBytes')
  })

  test('forbidden keys, also when escaped; allowed as values', () => {
    for (const k of ['__proto__', 'constructor', 'prototype', '__proto\\u005f_', '\\u0063onstructor']) {
      assert.equal(keyword(utf8(`{"a":{"${k}":{}}}`)), 'forbiddenKey', k)
    }
    assert.equal(keyword(utf8('{"a":"__proto__","b":["constructor"]}')), 'ok')
    assert.equal(keyword(utf8('{"__proto":1,"constructors":2}')), 'ok')
  })

  test('reports a JSON pointer to the offending place', () => {
    const r = scanJson(utf8('{"a":[1,{"b~/":"toolong"}]}'), small)
    assert.ok(!r.ok)
    assert.equal(r.issue.path, '/a/1/b~0~1')
    assert.equal(r.issue.keyword, 'maxStringLength')
  })

  test('unbalanced or unterminated input is a syntax problem, never a throw', () => {
    for (const s of ['[', ']', '{"a":1]', '"abc', '[1,2', '}']) assert.equal(keyword(utf8(s)), 'syntax', s)
  })

  test('limits are validated', () => {
    assert.throws(() => createPayloadLimits({ maxDepth: 0 }), /maxDepth/)
    assert.throws(() => createPayloadLimits({ maxBytes: 2 * 1024 * 1024 }), /maxBytes/)
    assert.deepEqual(createPayloadLimits(), { ...defaultPayloadLimits })
  })
})

describe('payload bombs', () => {
  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc') as () => void
  const MiB = 1024 * 1024
  const registry = createSchemaRegistry()
  const validation = createValidation(registry)
  const rfp = (body: Uint8Array, enc?: 'gzip'): PayloadCarrier => ({ schema: 'market/rfp@1.0.0', ct: 'application/json', body, ...(enc != null ? { enc } : {}) })
  const fill = (n: number, s: string): Uint8Array => new Uint8Array(Buffer.alloc(n, s))
  const wide = (): Uint8Array => {
    const parts: string[] = []
    for (let i = 0, n = 0; n < MiB - 64; i++) { const p = `"k${i}":0`; parts.push(p); n += p.length + 1 }
    return utf8('{' + parts.join(',') + '}')
  }
  const bombs: Array<[string, PayloadCarrier]> = [
    ['depth (1 MiB of [)', rfp(fill(MiB - 16, '['))],
    ['width (1 MiB object)', rfp(wide())],
    ['long string', rfp(utf8('{"item":"' + 'x'.repeat(MiB - 32) + '"}'))],
    ['long array', rfp(utf8('[' + '0,'.repeat((MiB - 8) / 2) + '0]'))],
    ['gzip of 64 MiB', rfp(new Uint8Array(gzipSync(Buffer.alloc(64 * MiB, '['))), 'gzip')],
    ['__proto__', rfp(utf8('{"item":"x","quantity":1,"currency":"EUR","__proto__":{"polluted":true}}'))],
    ['too large', rfp(fill(MiB + 1, ' '))]
  ]

  test('every bomb is refused as payload-bomb, quickly, with the heap bounded', async () => {
    // Warm up (compilation of the code paths), then measure without collecting: parsing even
    // one of these payloads would leave megabytes behind.
    for (const [, env] of bombs) await validation.checkIncoming(env)
    gc()
    const before = process.memoryUsage().heapUsed
    for (const [name, env] of bombs) {
      const t0 = performance.now()
      for (let i = 0; i < 20; i++) {
        const r = await validation.checkIncoming(env)
        assert.ok(!r.ok, name)
        assert.equal(r.reason, 'payload-bomb', name)
      }
      const ms = (performance.now() - t0) / 20
      assert.ok(ms < 50, `${name}: ${ms.toFixed(1)} ms per check`)
    }
    const grown = process.memoryUsage().heapUsed - before
    // 140 checks of 1 MiB payloads (about 10 KiB each here); JSON.parse of the wide and long
    // ones alone leaves more than 8 MiB behind between collections.
    assert.ok(grown < 4 * MiB, `heap grew by ${(grown / MiB).toFixed(1)} MiB`)
    assert.equal(({} as Record<string, unknown>).polluted, undefined)
  })

  test('the same payloads fail the SDK call with PayloadLimitError', async () => {
    for (const [name, env] of bombs) {
      await assert.rejects(validation.checkOutgoing(env), (err: Error & { code?: string, details?: { errors?: unknown[] } }) => {
        assert.equal(err.code, 'PayloadLimitError', name)
        assert.ok((err.details?.errors ?? []).length > 0)
        return true
      })
    }
  })

  test('a pattern that backtracks exponentially elsewhere runs in linear time here', async () => {
    const re = linearRegExp('^(a+)+$')
    const t0 = performance.now()
    assert.equal(re.test('a'.repeat(60_000) + '!'), false)
    assert.ok(performance.now() - t0 < 500)
    for (const bad of ['(a)\\1', '(?=a)a', 'a{1,64}', '\\p{L}+', '[', 'x'.repeat(600)]) assert.throws(() => linearRegExp(bad), bad)
  })
})

describe('schema shape limits', () => {
  test('ordinary schemas pass', () => {
    assert.equal(checkSchemaShape({ type: 'object', properties: { $id: { type: 'string' }, a: { $ref: '#/$defs/x' } }, $defs: { x: { enum: [{ $id: 1 }] } } }), undefined)
  })
  test('remote references, ids, anchors, bad patterns, forbidden keys, depth and size are refused', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ $ref: 'https://example.com/s.json' }, /local references/],
      [{ properties: { a: { $ref: 'other.json#/x' } } }, /local references/],
      [{ $id: 'https://x' }, /\$id/],
      [{ $defs: { a: { $anchor: 'x' } } }, /\$anchor/],
      [{ $dynamicRef: '#x' }, /\$dynamicRef/],
      [{ $schema: 'http://json-schema.org/draft-07/schema#' }, /\$schema/],
      [{ pattern: '(a)\\1' }, /linear time/],
      [{ patternProperties: { '(?=a)b': {} } }, /linear time/],
      [JSON.parse('{"properties":{"__proto__":{}}}'), /__proto__/],
      [{ items: { items: { items: { items: {} } } } }, /deeper/],
      [{ enum: Array.from({ length: 50 }, (_, i) => i) }, /nodes/]
    ]
    for (const [schema, re] of cases) assert.match(checkSchemaShape(schema, { maxDocumentBytes: 65536, maxDepth: 4, maxNodes: 40 }) ?? 'ok', re)
  })
})

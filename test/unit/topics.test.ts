import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { parseTopic, parsePattern, isTopic, topicMatches, MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS } from '../../src/core/topics.ts'
import { InvalidTopicError } from '../../src/core/errors.ts'
import { referenceMatch } from '../helpers/reference.ts'

const levels = (n: number, level = 'a'): string => Array(n).fill(level).join('/')

describe('topics', () => {
  test('limits are the documented ones', () => {
    assert.equal(MAX_TOPIC_LENGTH, 256)
    assert.equal(MAX_TOPIC_LEVELS, 16)
  })

  test('valid topics', () => {
    const ok = [
      'a', 'a/b/c', 'weather/paris', 'météo/paris', '+', 'a+b/c', 'a.b-c_d:e@f', 'A/B', '1/2/3', '数据/流',
      levels(MAX_TOPIC_LEVELS), 'x'.repeat(MAX_TOPIC_LENGTH), `${'x'.repeat(MAX_TOPIC_LENGTH - 2)}/y`
    ]
    for (const t of ok) {
      assert.equal(parseTopic(t), t, t)
      assert.equal(isTopic(t), true, t)
    }
  })

  test('invalid topics', () => {
    const bad: unknown[] = [
      '', '/', 'a//b', '/a', 'a/', 'a b', ' a', 'a\tb', 'a\nb', 'a\u0000b', 'a\u001fb', 'a\u007fb', 'a\u00a0b', 'a\u2028b',
      '#', '*', 'a/#', 'a/*', '*/a', 'a*', '*a', 'a#', 'a#b', 'a/b*/c',
      'x'.repeat(MAX_TOPIC_LENGTH + 1), levels(MAX_TOPIC_LEVELS + 1),
      42, null, undefined, {}, ['a'], new Uint8Array([0x61])
    ]
    for (const t of bad) {
      assert.throws(() => parseTopic(t), (err: unknown) => err instanceof InvalidTopicError && (err as { code?: string }).code === 'InvalidTopicError', JSON.stringify(t))
      assert.equal(isTopic(t), false, JSON.stringify(t))
    }
  })

  test('valid patterns', () => {
    const ok = [
      '#', '*', 'a', 'a/#', 'a/*', '*/b', 'a/*/c', '*/*/*', 'a/*/#', '*/#', '+/#', levels(MAX_TOPIC_LEVELS - 1) + '/#',
      levels(MAX_TOPIC_LEVELS, '*'), 'x'.repeat(MAX_TOPIC_LENGTH)
    ]
    for (const p of ok) assert.equal(parsePattern(p), p, p)
  })

  test('invalid patterns', () => {
    const bad: unknown[] = [
      '', '/', '/#', 'a/', 'a//#', '#/', '#/a', 'a/#/b', '#/#', 'a*', '*a', 'a*b', 'a#', '#a', '**', '##', 'a/**', 'a/b#',
      'a b/#', 'a\u0000/#', 'x'.repeat(MAX_TOPIC_LENGTH + 1), levels(MAX_TOPIC_LEVELS, '*') + '/#', levels(MAX_TOPIC_LEVELS + 1),
      7, null, undefined
    ]
    for (const p of bad) assert.throws(() => parsePattern(p), InvalidTopicError, JSON.stringify(p))
  })

  test('matching: wildcard edge cases', () => {
    const cases: Array<[string, string, boolean]> = [
      // exact
      ['a', 'a', true], ['a', 'A', false], ['a/b', 'a/bc', false], ['a/b', 'a/b/c', false], ['a/b/c', 'a/b', false],
      // `#` alone and as the last level: one or more levels
      ['#', 'a', true], ['#', 'a/b/c', true], ['#', levels(MAX_TOPIC_LEVELS), true],
      ['a/#', 'a', false], ['a/#', 'a/b', true], ['a/#', 'a/b/c/d', true], ['a/#', 'ab/c', false], ['a/#', 'b/a/c', false],
      ['a/b/#', 'a/b', false], ['a/b/#', 'a/b/c', true], ['a/b/#', 'a/c/d', false],
      // `*` at each position of a three-level topic
      ['*/b/c', 'a/b/c', true], ['a/*/c', 'a/b/c', true], ['a/b/*', 'a/b/c', true],
      ['*/b/c', 'a/x/c', false], ['a/*/c', 'a/b/d', false], ['a/b/*', 'x/b/c', false],
      ['*/b/c', 'b/c', false], ['a/*/c', 'a/c', false], ['a/*/c', 'a/b/b/c', false], ['a/b/*', 'a/b', false], ['a/b/*', 'a/b/c/d', false],
      ['*', 'a', true], ['*', 'a/b', false], ['*/*', 'a', false], ['*/*', 'a/b', true], ['*/*/*', 'a/b/c', true],
      // `*` and `#` together
      ['a/*/#', 'a/b/c', true], ['a/*/#', 'a/b', false], ['a/*/#', 'a/b/c/d', true], ['*/#', 'a', false], ['*/#', 'a/b', true],
      // `+` is not a wildcard
      ['+', 'a', false], ['+', '+', true], ['a/+', 'a/b', false]
    ]
    for (const [p, t, want] of cases) {
      assert.equal(topicMatches(parsePattern(p), parseTopic(t)), want, `${p} vs ${t}`)
      assert.equal(referenceMatch(p, t), want, `reference: ${p} vs ${t}`)
    }
  })

  test('matching agrees with a regular-expression reference on every small case', () => {
    // Every topic of 1–4 levels over {a, b} and every pattern of 1–4 levels over {a, b, *}
    // (optionally ending in #): 30 topics × 150 patterns.
    const expand = (alphabet: string[], n: number): string[][] =>
      n === 0 ? [[]] : expand(alphabet, n - 1).flatMap(prefix => alphabet.map(l => [...prefix, l]))
    const topics = [1, 2, 3, 4].flatMap(n => expand(['a', 'b'], n)).map(l => l.join('/'))
    const patterns = [1, 2, 3, 4].flatMap(n => expand(['a', 'b', '*'], n).map(l => l.join('/')))
    patterns.push('#', ...[1, 2, 3].flatMap(n => expand(['a', 'b', '*'], n).map(l => [...l, '#'].join('/'))))
    let matches = 0
    for (const p of patterns) {
      parsePattern(p)
      for (const t of topics) {
        const want = referenceMatch(p, t)
        if (want) matches++
        assert.equal(topicMatches(p, t), want, `${p} vs ${t}`)
      }
    }
    assert.ok(matches > 100 && matches < patterns.length * topics.length, 'the sample has both outcomes')
  })
})

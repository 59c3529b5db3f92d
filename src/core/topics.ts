/**
 * Hierarchical topics `a/b/c` and subscription patterns with wildcards:
 * `*` matches exactly one level, `#` (last level only) matches one or more levels below.
 * `#` alone matches every topic. Matching is a pure function over split levels.
 */
import type { Topic } from './ids.ts'
import { InvalidTopicError } from './errors.ts'

export const MAX_TOPIC_LENGTH = 256
export const MAX_TOPIC_LEVELS = 16
// Levels are printable, without wildcards, slashes or whitespace.
const LEVEL_RE = /^[^\s/*#\u0000-\u001f\u007f]+$/

export type TopicPattern = string & { readonly __brand: 'TopicPattern' }

function checkShape (s: unknown, what: string): string[] {
  if (typeof s !== 'string' || s.length === 0) throw new InvalidTopicError(`${what} must be a non-empty string`)
  if (s.length > MAX_TOPIC_LENGTH) throw new InvalidTopicError(`${what} longer than ${MAX_TOPIC_LENGTH} characters`)
  const levels = s.split('/')
  if (levels.length > MAX_TOPIC_LEVELS) throw new InvalidTopicError(`${what} has more than ${MAX_TOPIC_LEVELS} levels`)
  return levels
}

/** Topics found valid recently: a publisher or a subscriber sees the same few again and again. */
const validTopics = new Set<string>()
const MAX_VALID_TOPICS = 4096

/** Validates a concrete topic (no wildcards); throws InvalidTopicError. */
export function parseTopic (s: unknown): Topic {
  if (typeof s === 'string' && validTopics.has(s)) return s as Topic
  const levels = checkShape(s, 'topic')
  for (const level of levels) {
    if (!LEVEL_RE.test(level)) throw new InvalidTopicError(`invalid topic level ${JSON.stringify(level)} in ${JSON.stringify(s)}`)
  }
  if (validTopics.size >= MAX_VALID_TOPICS) validTopics.clear()
  validTopics.add(s as string)
  return s as Topic
}

export function isTopic (s: unknown): s is Topic {
  if (typeof s === 'string' && validTopics.has(s)) return true
  try { parseTopic(s); return true } catch { return false }
}

/** Validates a subscription pattern; throws InvalidTopicError. */
export function parsePattern (s: unknown): TopicPattern {
  const levels = checkShape(s, 'pattern')
  levels.forEach((level, i) => {
    if (level === '*') return
    if (level === '#') {
      if (i !== levels.length - 1) throw new InvalidTopicError(`'#' must be the last level of ${JSON.stringify(s)}`)
      return
    }
    if (!LEVEL_RE.test(level)) throw new InvalidTopicError(`invalid pattern level ${JSON.stringify(level)} in ${JSON.stringify(s)}`)
  })
  return s as TopicPattern
}

/** Does `topic` match `pattern`? Both are assumed valid. */
export function topicMatches (pattern: string, topic: string): boolean {
  if (pattern === topic) return true
  const p = pattern.split('/')
  const t = topic.split('/')
  for (let i = 0; i < p.length; i++) {
    const level = p[i]
    if (level === '#') return t.length > i
    if (i >= t.length) return false
    if (level !== '*' && level !== t[i]) return false
  }
  return p.length === t.length
}

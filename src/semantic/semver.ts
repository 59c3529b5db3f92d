/**
 * Semantic versions (semver 2.0.0 precedence, no build metadata) and registry URIs
 * `namespace/name@version`. Pure.
 */
import { isSchemaUri, type SchemaUri } from '../core/ids.ts'

export interface SemVer {
  readonly major: number
  readonly minor: number
  readonly patch: number
  /** Pre-release identifiers (`1.0.0-rc.1` → `['rc', '1']`); empty for a release. */
  readonly pre: readonly string[]
}

const SEMVER_RE = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-((?:0|[1-9]\d{0,8}|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d{0,8}|\d*[A-Za-z-][0-9A-Za-z-]*))*))?$/

/** Parses `1.2.3` or `1.2.3-rc.1`; undefined when not strict semver (leading zeros, build metadata, …). */
export function parseSemver (s: string): SemVer | undefined {
  if (s.length > 64) return undefined
  const m = SEMVER_RE.exec(s)
  if (m == null) return undefined
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre: m[4] != null ? m[4].split('.') : [] }
}

export function formatSemver (v: SemVer): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre.length > 0 ? '-' + v.pre.join('.') : ''}`
}

/** Semver precedence: negative when a < b, 0 when equal, positive when a > b. */
export function compareSemver (a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major - b.major
  if (a.minor !== b.minor) return a.minor - b.minor
  if (a.patch !== b.patch) return a.patch - b.patch
  // A pre-release sorts before its release.
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length
  const n = Math.min(a.pre.length, b.pre.length)
  for (let i = 0; i < n; i++) {
    const x = a.pre[i]
    const y = b.pre[i]
    if (x === y) continue
    const xn = /^\d+$/.test(x)
    const yn = /^\d+$/.test(y)
    if (xn && yn) return Number(x) - Number(y)
    if (xn) return -1
    if (yn) return 1
    return x < y ? -1 : 1
  }
  return a.pre.length - b.pre.length
}

export const isPrerelease = (v: SemVer): boolean => v.pre.length > 0

/** A registry URI taken apart: `market/rfp@1.0.0` → name `market/rfp`, namespace `market`. */
export interface ParsedUri {
  readonly uri: SchemaUri
  /** Everything before `@`: `namespace/name` (possibly with more `/` segments). */
  readonly name: string
  /** The first path segment. */
  readonly namespace: string
  readonly version: SemVer
}

/** Parses a schema or protocol URI; undefined unless it is `ns/name@semver` with strict semver. */
export function parseUri (uri: string): ParsedUri | undefined {
  if (!isSchemaUri(uri)) return undefined
  const at = uri.lastIndexOf('@')
  const version = parseSemver(uri.slice(at + 1))
  if (version == null) return undefined
  const name = uri.slice(0, at)
  return { uri, name, namespace: name.slice(0, name.indexOf('/')), version }
}

export function makeUri (name: string, version: SemVer | string): SchemaUri | undefined {
  const uri = `${name}@${typeof version === 'string' ? version : formatSemver(version)}`
  return parseUri(uri)?.uri
}

/** Same name and same major version: the versions a message may use for a transition (docs/SEMANTIC.md). */
export function sameMajor (a: ParsedUri, b: ParsedUri): boolean {
  return a.name === b.name && a.version.major === b.version.major
}

/**
 * Capability and protocol negotiation. Agents advertise the schema and protocol URIs they
 * speak; the version two agents use is the highest they share:
 *
 * - the highest major version both list for that name, then
 * - within it, the lower of the two sides' highest versions: a minor/patch version accepts
 *   everything earlier ones of its major accepted (the registry enforces it), so an agent
 *   that speaks 1.4.0 understands 1.2.0, and 1.2.0 is the highest both understand.
 *
 * Pre-release versions are never picked (they are exempt from the compatibility rules), but
 * an identical pre-release URI on both sides is used when nothing else is shared. Pure.
 */
import type { SchemaUri } from '../core/ids.ts'
import { NoCommonVersionError } from './errors.ts'
import { compareSemver, isPrerelease, parseUri, type ParsedUri } from './semver.ts'

export interface Capabilities {
  /** Schema URIs `ns/name@semver` this agent can send and understand. */
  schemas: readonly string[]
  /** Protocol URIs `proto/name@semver` this agent can take part in. */
  protocols: readonly string[]
}

function versionsOf (list: readonly string[], name: string): ParsedUri[] {
  const out: ParsedUri[] = []
  for (const u of list) {
    const p = parseUri(u)
    if (p != null && p.name === name) out.push(p)
  }
  return out
}

/** The highest version per major (releases only). */
function highestPerMajor (versions: readonly ParsedUri[]): Map<number, ParsedUri> {
  const out = new Map<number, ParsedUri>()
  for (const p of versions) {
    if (isPrerelease(p.version)) continue
    const cur = out.get(p.version.major)
    if (cur == null || compareSemver(p.version, cur.version) > 0) out.set(p.version.major, p)
  }
  return out
}

/**
 * The version of `name` both sides speak, from lists of URIs. `name` is `ns/name` (for
 * protocols `proto/name`). Throws NoCommonVersionError with both lists in `details`.
 *
 * @example
 * negotiateVersion(['market/rfp@1.4.0', 'market/rfp@2.0.0'], ['market/rfp@1.2.0'], 'market/rfp') // 'market/rfp@1.2.0'
 */
export function negotiateVersion (mine: readonly string[], theirs: readonly string[], name: string): SchemaUri {
  const a = versionsOf(mine, name)
  const b = versionsOf(theirs, name)
  const ha = highestPerMajor(a)
  const hb = highestPerMajor(b)
  const majors = [...ha.keys()].filter((m) => hb.has(m)).sort((x, y) => y - x)
  if (majors.length > 0) {
    const x = ha.get(majors[0]) as ParsedUri
    const y = hb.get(majors[0]) as ParsedUri
    return (compareSemver(x.version, y.version) <= 0 ? x : y).uri
  }
  const samePre = a.filter((p) => isPrerelease(p.version) && b.some((q) => q.uri === p.uri)).sort((x, y) => compareSemver(y.version, x.version))
  if (samePre.length > 0) return samePre[0].uri
  throw new NoCommonVersionError(
    `no common version of ${name}: we speak ${a.map((p) => p.uri).join(', ') || 'none'}, they speak ${b.map((p) => p.uri).join(', ') || 'none'}`,
    { details: { name, mine: a.map((p) => p.uri), theirs: b.map((p) => p.uri) } }
  )
}

/**
 * The version of a schema (`ns/name`) or protocol (`proto/name`) both agents speak, from
 * their advertised capabilities. Throws NoCommonVersionError.
 */
export function negotiate (mine: Capabilities, theirs: Capabilities, name: string): SchemaUri {
  const kind = name.startsWith('proto/') ? 'protocols' : 'schemas'
  return negotiateVersion(mine[kind], theirs[kind], name)
}

/** Negotiates several names at once; throws on the first without a common version. */
export function negotiateAll (mine: Capabilities, theirs: Capabilities, names: readonly string[]): Record<string, SchemaUri> {
  const out: Record<string, SchemaUri> = {}
  for (const n of names) out[n] = negotiate(mine, theirs, n)
  return out
}

/** The capability list as agent-record `caps` strings (`schema:<uri>`, `proto:<uri>`), and back. */
export function capabilitiesToCaps (c: Capabilities): string[] {
  return [...c.schemas.map((s) => `schema:${s}`), ...c.protocols.map((p) => `proto:${p}`)]
}

export function capabilitiesFromCaps (caps: readonly string[]): Capabilities {
  const schemas: string[] = []
  const protocols: string[] = []
  for (const c of caps) {
    if (c.startsWith('schema:') && parseUri(c.slice(7)) != null) schemas.push(c.slice(7))
    else if (c.startsWith('proto:') && parseUri(c.slice(6)) != null) protocols.push(c.slice(6))
  }
  return { schemas, protocols }
}

/**
 * Interaction protocols as declarative state machines.
 *
 * A definition names roles and states and lists transitions labelled with a performative,
 * the sending role and optionally a schema; timeouts move a state elsewhere after a delay.
 * Definitions are data: validated on load (`parseProtocol`), published to the registry as
 * documents under `proto/<name>@<version>`, and interpreted by the pure tracker in
 * conversation.ts. The built-in protocols are at the end of this file.
 */
import type { SchemaUri } from '../core/ids.ts'
import { InvalidProtocolError } from './errors.ts'
import { isPerformative, type Performative } from './performatives.ts'
import { parseSemver, parseUri, sameMajor } from './semver.ts'
import type { CompatResult } from './compat.ts'

export interface Transition {
  readonly from: string
  readonly to: string
  readonly performative: Performative
  /** The role that sends this message. */
  readonly sender: string
  /** Schema the payload must name: any version with the same name and major (docs/SEMANTIC.md). Absent: any or none. */
  readonly schema?: SchemaUri
  readonly description?: string
}

export interface Timeout {
  /** Milliseconds after entering the state. */
  readonly after: number
  /** The state the conversation moves to. */
  readonly to: string
}

export interface ProtocolDefinition {
  /** `[a-z0-9][a-z0-9._-]*`, optionally with `/` segments; the registry URI is `proto/<name>@<version>`. */
  readonly name: string
  /** Semver. */
  readonly version: string
  readonly description?: string
  readonly roles: readonly string[]
  readonly states: readonly string[]
  readonly initial: string
  readonly terminal: readonly string[]
  readonly transitions: readonly Transition[]
  readonly timeouts?: Readonly<Record<string, Timeout>>
}

export const PROTOCOL_LIMITS = Object.freeze({ maxRoles: 16, maxStates: 128, maxTransitions: 512, maxDescription: 2000, maxTimeoutMs: 7 * 24 * 3600 * 1000 })

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}(\/[a-z0-9][a-z0-9._-]{0,63}){0,3}$/
const IDENT_RE = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/
const DEF_KEYS = new Set(['name', 'version', 'description', 'roles', 'states', 'initial', 'terminal', 'transitions', 'timeouts'])
const TRANSITION_KEYS = new Set(['from', 'to', 'performative', 'sender', 'schema', 'description'])

/** The registry URI of a protocol. */
export function protocolUri (def: Pick<ProtocolDefinition, 'name' | 'version'>): SchemaUri {
  return `proto/${def.name}@${def.version}` as SchemaUri
}

const isObj = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v)

function identList (v: unknown, what: string, max: number, problems: string[]): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > max) { problems.push(`${what} must list 1–${max} names`); return [] }
  const out: string[] = []
  for (const x of v) {
    if (typeof x !== 'string' || !IDENT_RE.test(x)) { problems.push(`${what}: ${JSON.stringify(x)} is not a name ([A-Za-z][A-Za-z0-9._-]*, ≤ 64)`); continue }
    if (out.includes(x)) problems.push(`${what}: ${x} is listed twice`)
    else out.push(x)
  }
  return out
}

/**
 * Every problem with a protocol definition, as messages (empty when valid): shape, names,
 * references to undeclared states and roles, ambiguous transitions (two transitions a message
 * could both match), states that cannot be reached, and states from which no terminal state
 * can be reached. Pure; loops bounded by the limits above.
 */
export function validateProtocol (value: unknown): string[] {
  const problems: string[] = []
  if (!isObj(value)) return ['a protocol definition must be an object']
  for (const k of Object.keys(value)) if (!DEF_KEYS.has(k)) problems.push(`unknown field ${JSON.stringify(k)}`)
  if (typeof value.name !== 'string' || !NAME_RE.test(value.name)) problems.push('name must be lowercase [a-z0-9._-], optionally with / segments')
  if (typeof value.version !== 'string' || parseSemver(value.version) == null) problems.push('version must be semver (1.0.0)')
  else if (typeof value.name === 'string' && parseUri(`proto/${value.name}@${value.version}`) == null) problems.push('name@version does not form a valid registry URI')
  if (value.description !== undefined && (typeof value.description !== 'string' || value.description.length > PROTOCOL_LIMITS.maxDescription)) problems.push(`description must be a string of at most ${PROTOCOL_LIMITS.maxDescription} characters`)
  const roles = identList(value.roles, 'roles', PROTOCOL_LIMITS.maxRoles, problems)
  if (roles.length === 1) problems.push('a protocol needs at least two roles')
  const states = identList(value.states, 'states', PROTOCOL_LIMITS.maxStates, problems)
  const stateSet = new Set(states)
  const roleSet = new Set(roles)
  if (typeof value.initial !== 'string' || !stateSet.has(value.initial)) problems.push('initial must be one of the states')
  const terminal = identList(value.terminal, 'terminal', PROTOCOL_LIMITS.maxStates, problems)
  for (const t of terminal) if (!stateSet.has(t)) problems.push(`terminal state ${t} is not among the states`)
  const terminalSet = new Set(terminal)
  if (typeof value.initial === 'string' && terminalSet.has(value.initial)) problems.push('the initial state cannot be terminal')

  const transitions: Transition[] = []
  if (!Array.isArray(value.transitions) || value.transitions.length === 0 || value.transitions.length > PROTOCOL_LIMITS.maxTransitions) {
    problems.push(`transitions must list 1–${PROTOCOL_LIMITS.maxTransitions} transitions`)
  } else {
    value.transitions.forEach((t: unknown, i: number) => {
      const at = `transitions[${i}]`
      if (!isObj(t)) { problems.push(`${at} must be an object`); return }
      for (const k of Object.keys(t)) if (!TRANSITION_KEYS.has(k)) problems.push(`${at}: unknown field ${JSON.stringify(k)}`)
      const bad = problems.length
      if (typeof t.from !== 'string' || !stateSet.has(t.from)) problems.push(`${at}: from ${JSON.stringify(t.from)} is not a state`)
      else if (terminalSet.has(t.from)) problems.push(`${at}: leaves terminal state ${t.from}`)
      if (typeof t.to !== 'string' || !stateSet.has(t.to)) problems.push(`${at}: to ${JSON.stringify(t.to)} is not a state`)
      if (!isPerformative(t.performative)) problems.push(`${at}: ${JSON.stringify(t.performative)} is not a FIPA performative`)
      if (typeof t.sender !== 'string' || !roleSet.has(t.sender)) problems.push(`${at}: sender ${JSON.stringify(t.sender)} is not a role`)
      if (t.schema !== undefined && parseUri(t.schema as string) == null) problems.push(`${at}: schema ${JSON.stringify(t.schema)} is not a schema URI ns/name@semver`)
      if (t.schema !== undefined && typeof t.schema === 'string' && t.schema.startsWith('proto/')) problems.push(`${at}: schema names a protocol`)
      if (t.description !== undefined && (typeof t.description !== 'string' || t.description.length > PROTOCOL_LIMITS.maxDescription)) problems.push(`${at}: description too long`)
      if (problems.length === bad) transitions.push(t as unknown as Transition)
    })
  }
  // Determinism: one message must match at most one transition.
  for (let i = 0; i < transitions.length; i++) {
    for (let j = i + 1; j < transitions.length; j++) {
      const a = transitions[i]
      const b = transitions[j]
      if (a.from !== b.from || a.performative !== b.performative || a.sender !== b.sender) continue
      const pa = a.schema != null ? parseUri(a.schema) : undefined
      const pb = b.schema != null ? parseUri(b.schema) : undefined
      if (pa == null || pb == null || sameMajor(pa, pb)) {
        problems.push(`transitions[${i}] and transitions[${j}] are ambiguous: both match ${a.performative} from ${a.sender} in state ${a.from}${pa != null && pb != null ? ' with the same schema name and major' : ''}`)
      }
    }
  }
  const timeouts: Record<string, Timeout> = {}
  if (value.timeouts !== undefined) {
    if (!isObj(value.timeouts)) problems.push('timeouts must map states to { after, to }')
    else {
      for (const [state, t] of Object.entries(value.timeouts)) {
        const at = `timeouts.${state}`
        if (!stateSet.has(state)) { problems.push(`${at}: not a state`); continue }
        if (terminalSet.has(state)) { problems.push(`${at}: terminal states have no timeout`); continue }
        if (!isObj(t) || Object.keys(t).some((k) => k !== 'after' && k !== 'to')) { problems.push(`${at} must be { after, to }`); continue }
        if (!Number.isSafeInteger(t.after) || (t.after as number) < 1 || (t.after as number) > PROTOCOL_LIMITS.maxTimeoutMs) { problems.push(`${at}.after must be 1…${PROTOCOL_LIMITS.maxTimeoutMs} ms`); continue }
        if (typeof t.to !== 'string' || !stateSet.has(t.to)) { problems.push(`${at}.to is not a state`); continue }
        timeouts[state] = t as unknown as Timeout
      }
    }
  }
  if (problems.length > 0 || typeof value.initial !== 'string') return problems

  // Reachability, forwards from the initial state and backwards from the terminal states.
  const next = new Map<string, string[]>(states.map((s) => [s, []]))
  for (const t of transitions) next.get(t.from)?.push(t.to)
  for (const [s, t] of Object.entries(timeouts)) next.get(s)?.push(t.to)
  const reached = closure([value.initial], (s) => next.get(s) ?? [])
  for (const s of states) if (!reached.has(s)) problems.push(`state ${s} cannot be reached from ${value.initial}`)
  const prev = new Map<string, string[]>(states.map((s) => [s, []]))
  for (const [s, outs] of next) for (const o of outs) prev.get(o)?.push(s)
  const canFinish = closure(terminal, (s) => prev.get(s) ?? [])
  for (const s of states) if (!canFinish.has(s)) problems.push(`no terminal state can be reached from ${s}`)
  return problems
}

function closure (start: readonly string[], edges: (s: string) => readonly string[]): Set<string> {
  const seen = new Set(start)
  const stack = [...start]
  while (stack.length > 0) {
    const s = stack.pop() as string
    for (const o of edges(s)) if (!seen.has(o)) { seen.add(o); stack.push(o) }
  }
  return seen
}

/** Validates and returns a frozen copy; throws InvalidProtocolError with `details.problems`. */
export function parseProtocol (value: unknown): ProtocolDefinition {
  const problems = validateProtocol(value)
  if (problems.length > 0) {
    throw new InvalidProtocolError(`invalid protocol definition: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`, { details: { problems } })
  }
  return deepFreeze(structuredClone(value) as ProtocolDefinition)
}

function deepFreeze<T> (v: T): T {
  if (v != null && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

/** The role sending the opening message; undefined when several roles may open. */
export function initiatorRole (def: ProtocolDefinition): string | undefined {
  const senders = new Set(def.transitions.filter((t) => t.from === def.initial).map((t) => t.sender))
  return senders.size === 1 ? [...senders][0] : undefined
}

/** The other role of a two-role protocol. */
export function counterpartRole (def: ProtocolDefinition, role: string): string | undefined {
  if (def.roles.length !== 2 || !def.roles.includes(role)) return undefined
  return def.roles[0] === role ? def.roles[1] : def.roles[0]
}

/** The schema URIs a protocol's transitions name (for capability advertisement). */
export function protocolSchemas (def: ProtocolDefinition): SchemaUri[] {
  return [...new Set(def.transitions.flatMap((t) => t.schema != null ? [t.schema] : []))]
}

/**
 * Compatibility of a new minor/patch version of a protocol: every conversation the old
 * version allowed must still be allowed, step by step and at the same times. Sufficient
 * (and checked): same initial state; old roles and states kept; old terminal states stay
 * terminal and old non-terminal ones non-terminal; every old transition kept with the same
 * from, to, performative and sender, and a schema of the same name and major (or none);
 * the timeouts of old states unchanged. New states, roles and transitions may be added.
 */
export function checkProtocolCompatible (oldDef: ProtocolDefinition, newDef: ProtocolDefinition): CompatResult {
  const no = (path: string, reason: string): CompatResult => ({ ok: false, path, reason })
  if (oldDef.initial !== newDef.initial) return no('/initial', `initial state changed from ${oldDef.initial} to ${newDef.initial}`)
  for (const r of oldDef.roles) if (!newDef.roles.includes(r)) return no('/roles', `role ${r} was removed`)
  for (const s of oldDef.states) {
    if (!newDef.states.includes(s)) return no('/states', `state ${s} was removed`)
    if (oldDef.terminal.includes(s) !== newDef.terminal.includes(s)) return no(`/states/${s}`, `state ${s} ${oldDef.terminal.includes(s) ? 'is no longer' : 'became'} terminal`)
    const ot = oldDef.timeouts?.[s]
    const nt = newDef.timeouts?.[s]
    if ((ot == null) !== (nt == null) || (ot != null && nt != null && (ot.after !== nt.after || ot.to !== nt.to))) {
      return no(`/timeouts/${s}`, `the timeout of state ${s} changed`)
    }
  }
  for (const t of oldDef.transitions) {
    const label = `${t.from} --${t.performative} by ${t.sender}--> ${t.to}`
    const match = newDef.transitions.find((n) => n.from === t.from && n.to === t.to && n.performative === t.performative && n.sender === t.sender)
    if (match == null) return no(`/transitions/${t.from}`, `transition ${label} was removed or changed`)
    if (match.schema == null) continue
    const ps = t.schema != null ? parseUri(t.schema) : undefined
    const pn = parseUri(match.schema)
    if (ps == null || pn == null || !sameMajor(ps, pn)) return no(`/transitions/${t.from}`, `transition ${label} now requires schema ${match.schema}${t.schema != null ? ` instead of ${t.schema}` : ''}`)
  }
  return { ok: true }
}

// ---- built-in protocols ----------------------------------------------------------------

const t = (from: string, performative: Performative, sender: string, to: string, schema?: string, description?: string): Transition => ({
  from, to, performative, sender, ...(schema != null ? { schema: schema as SchemaUri } : {}), ...(description != null ? { description } : {})
})

/** FIPA request: the participant agrees (then informs or fails), refuses, or answers at once. */
export const REQUEST_PROTOCOL: ProtocolDefinition = parseProtocol({
  name: 'request',
  version: '1.0.0',
  description: 'FIPA request: the initiator asks the participant to perform an action.',
  roles: ['initiator', 'participant'],
  states: ['start', 'requested', 'agreed', 'done', 'refused', 'failed', 'timed-out'],
  initial: 'start',
  terminal: ['done', 'refused', 'failed', 'timed-out'],
  transitions: [
    t('start', 'request', 'initiator', 'requested'),
    t('requested', 'agree', 'participant', 'agreed', undefined, 'will do it, result follows'),
    t('requested', 'refuse', 'participant', 'refused'),
    t('requested', 'inform', 'participant', 'done', undefined, 'done at once; the result'),
    t('requested', 'failure', 'participant', 'failed'),
    t('agreed', 'inform', 'participant', 'done'),
    t('agreed', 'failure', 'participant', 'failed'),
    t('agreed', 'cancel', 'initiator', 'failed', undefined, 'the initiator withdraws the request')
  ],
  timeouts: { requested: { after: 30_000, to: 'timed-out' }, agreed: { after: 300_000, to: 'timed-out' } }
})

/** FIPA query: query-if (is it true?) or query-ref (what is it?), answered by inform. */
export const QUERY_PROTOCOL: ProtocolDefinition = parseProtocol({
  name: 'query',
  version: '1.0.0',
  description: 'FIPA query: the initiator asks whether a proposition holds (query-if) or for the objects a description refers to (query-ref).',
  roles: ['initiator', 'participant'],
  states: ['start', 'queried', 'answered', 'refused', 'failed', 'timed-out'],
  initial: 'start',
  terminal: ['answered', 'refused', 'failed', 'timed-out'],
  transitions: [
    t('start', 'query-if', 'initiator', 'queried'),
    t('start', 'query-ref', 'initiator', 'queried'),
    t('queried', 'inform', 'participant', 'answered'),
    t('queried', 'refuse', 'participant', 'refused'),
    t('queried', 'failure', 'participant', 'failed')
  ],
  timeouts: { queried: { after: 30_000, to: 'timed-out' } }
})

/**
 * FIPA contract net, tracked per initiator–participant pair: cfp → propose or refuse →
 * accept-proposal or reject-proposal → inform (done) or failure.
 */
export const CONTRACT_NET_PROTOCOL: ProtocolDefinition = parseProtocol({
  name: 'contract-net',
  version: '1.0.0',
  description: 'FIPA contract net: the initiator calls for proposals, participants propose or refuse, the initiator accepts or rejects each, accepted participants report the result.',
  roles: ['initiator', 'participant'],
  states: ['start', 'cfp', 'proposed', 'accepted', 'done', 'refused', 'rejected', 'failed', 'expired'],
  initial: 'start',
  terminal: ['done', 'refused', 'rejected', 'failed', 'expired'],
  transitions: [
    t('start', 'cfp', 'initiator', 'cfp'),
    t('cfp', 'propose', 'participant', 'proposed'),
    t('cfp', 'refuse', 'participant', 'refused'),
    t('cfp', 'cancel', 'initiator', 'expired', undefined, 'the call is withdrawn'),
    t('proposed', 'accept-proposal', 'initiator', 'accepted'),
    t('proposed', 'reject-proposal', 'initiator', 'rejected'),
    t('accepted', 'inform', 'participant', 'done'),
    t('accepted', 'failure', 'participant', 'failed')
  ],
  timeouts: { cfp: { after: 60_000, to: 'expired' }, proposed: { after: 60_000, to: 'expired' }, accepted: { after: 300_000, to: 'failed' } }
})

/** FIPA subscribe: after agree, the publisher informs (notifies) until the subscriber cancels. */
export const SUBSCRIBE_PROTOCOL: ProtocolDefinition = parseProtocol({
  name: 'subscribe',
  version: '1.0.0',
  description: 'FIPA subscribe: the subscriber asks to be notified of changes; the publisher agrees and then informs on every change until the subscriber cancels.',
  roles: ['subscriber', 'publisher'],
  states: ['start', 'requested', 'active', 'cancelled', 'refused', 'failed', 'timed-out'],
  initial: 'start',
  terminal: ['cancelled', 'refused', 'failed', 'timed-out'],
  transitions: [
    t('start', 'subscribe', 'subscriber', 'requested'),
    t('requested', 'agree', 'publisher', 'active'),
    t('requested', 'refuse', 'publisher', 'refused'),
    t('requested', 'failure', 'publisher', 'failed'),
    t('active', 'inform', 'publisher', 'active', undefined, 'a notification'),
    t('active', 'cancel', 'subscriber', 'cancelled'),
    t('active', 'failure', 'publisher', 'failed')
  ],
  timeouts: { requested: { after: 30_000, to: 'timed-out' } }
})

export const MARKET_RFP = 'market/rfp@1.0.0' as SchemaUri
export const MARKET_PROPOSAL = 'market/proposal@1.0.0' as SchemaUri
export const MARKET_CONTRACT = 'market/contract@2.0.1' as SchemaUri

/**
 * The market protocol, per buyer–seller pair. The buyer sends an RFP (cfp); the seller
 * proposes or declines; both may counter-propose in turn; the side that accepts sends the
 * contract signed by itself (accept-proposal), and the other side returns it countersigned
 * (inform) — or refuses to sign. Each waiting state expires.
 */
export const MARKET_PROTOCOL: ProtocolDefinition = parseProtocol({
  name: 'market',
  version: '1.0.0',
  description: 'Buyer RFP, seller proposals, counter-proposals by either side, and a contract signed by both parties.',
  roles: ['buyer', 'seller'],
  states: ['start', 'rfp', 'offered', 'countered', 'seller-signing', 'buyer-signing', 'agreed', 'declined', 'rejected', 'cancelled', 'expired'],
  initial: 'start',
  terminal: ['agreed', 'declined', 'rejected', 'cancelled', 'expired'],
  transitions: [
    t('start', 'cfp', 'buyer', 'rfp', MARKET_RFP, 'the request for proposals'),
    t('rfp', 'propose', 'seller', 'offered', MARKET_PROPOSAL, 'the seller\'s offer'),
    t('rfp', 'refuse', 'seller', 'declined', undefined, 'the seller does not bid'),
    t('rfp', 'cancel', 'buyer', 'cancelled'),
    t('offered', 'propose', 'buyer', 'countered', MARKET_PROPOSAL, 'the buyer\'s counter-proposal'),
    t('offered', 'reject-proposal', 'buyer', 'rejected'),
    t('offered', 'accept-proposal', 'buyer', 'seller-signing', MARKET_CONTRACT, 'the buyer accepts and sends the contract signed by the buyer'),
    t('countered', 'propose', 'seller', 'offered', MARKET_PROPOSAL, 'the seller\'s counter-proposal'),
    t('countered', 'reject-proposal', 'seller', 'rejected'),
    t('countered', 'accept-proposal', 'seller', 'buyer-signing', MARKET_CONTRACT, 'the seller accepts and sends the contract signed by the seller'),
    t('seller-signing', 'inform', 'seller', 'agreed', MARKET_CONTRACT, 'the contract signed by both'),
    t('seller-signing', 'refuse', 'seller', 'declined', undefined, 'the seller does not sign'),
    t('buyer-signing', 'inform', 'buyer', 'agreed', MARKET_CONTRACT, 'the contract signed by both'),
    t('buyer-signing', 'refuse', 'buyer', 'declined', undefined, 'the buyer does not sign')
  ],
  timeouts: {
    rfp: { after: 60_000, to: 'expired' },
    offered: { after: 60_000, to: 'expired' },
    countered: { after: 60_000, to: 'expired' },
    'seller-signing': { after: 60_000, to: 'expired' },
    'buyer-signing': { after: 60_000, to: 'expired' }
  }
})

export const BUILTIN_PROTOCOLS: readonly ProtocolDefinition[] = Object.freeze([REQUEST_PROTOCOL, QUERY_PROTOCOL, CONTRACT_NET_PROTOCOL, SUBSCRIBE_PROTOCOL, MARKET_PROTOCOL])

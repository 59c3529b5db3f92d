/**
 * Audit and replay: a finished conversation, as the ordered wire bytes of its envelopes
 * (from the message log or an export), re-validated step by step by someone who trusts
 * none of the parties: signatures (decodeEnvelope), membership in the conversation,
 * payload schemas (the registry), protocol transitions (the pure tracker, with timeouts
 * measured between the envelopes' own timestamps) and payload checks such as the market
 * contract's signatures. The report says, per step, ok or the first failure.
 *
 * The audit covers one conversation between two parties (tracking is per pair); a
 * multicast opener is part of each pair's conversation.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { decodeEnvelope, type Envelope } from '../core/envelope.ts'
import type { AgentId } from '../core/ids.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { startConversation, step, type ConversationState, type TimeoutFired } from './conversation.ts'
import { verifyContract, type Contract } from './market.ts'
import { counterpartRole, initiatorRole, type ProtocolDefinition } from './protocols.ts'
import type { SchemaRegistry } from './registry.ts'
import { parseUri } from './semver.ts'
import { createValidation, type Validation } from './validate.ts'

export type AuditStage = 'signature' | 'conversation' | 'schema' | 'transition' | 'payload'

export interface AuditStep {
  index: number
  id?: string
  from?: AgentId
  role?: string
  performative?: string
  schema?: string
  /** State before and after the step (after = before when the step failed). */
  before?: string
  after?: string
  /** Timeouts that fired before this step, by the envelopes' timestamps. */
  timeouts?: TimeoutFired[]
  ok: boolean
  failure?: { stage: AuditStage, reason: string, detail: string }
}

export interface AuditReport {
  ok: boolean
  conv?: string
  protocol?: string
  /** Role → agent. */
  parties: Record<string, AgentId>
  steps: AuditStep[]
  final?: ConversationState
}

export interface PayloadCheckContext {
  env: Envelope
  /** Role → agent, as far as known. */
  parties: Readonly<Record<string, AgentId>>
  /** The state the step leads to. */
  to: string
}

/** A check of a payload's meaning, by schema name: the problem, or undefined. */
export type PayloadCheck = (value: unknown, ctx: PayloadCheckContext) => string | undefined

/**
 * The market contract: signatures valid, parties those of the conversation, and — once the
 * conversation reaches `agreed` — signed by both.
 */
export const marketContractCheck: PayloadCheck = (value, ctx) => {
  const c = value as Contract
  const r = verifyContract(c, { requireBoth: ctx.to === 'agreed' })
  if (!r.ok) return r.reason
  if (ctx.parties.buyer != null && c.terms.buyer !== ctx.parties.buyer) return `the contract's buyer ${c.terms.buyer} is not the buyer of the conversation`
  if (ctx.parties.seller != null && c.terms.seller !== ctx.parties.seller) return `the contract's seller ${c.terms.seller} is not the seller of the conversation`
  if (!c.signatures.some((s) => s.signer === ctx.env.from)) return 'the sender has not signed the contract it sends'
  return undefined
}

export const defaultPayloadChecks: Readonly<Record<string, PayloadCheck>> = Object.freeze({ 'market/contract': marketContractCheck })

export interface AuditOptions {
  registry: SchemaRegistry
  validation?: Validation
  /** The protocol; by default the one the first envelope names in `proto`, from the registry. */
  protocol?: ProtocolDefinition
  /** Role → agent, when known; otherwise the opener's sender takes the opening role and the first other sender the counterpart. */
  parties?: Record<string, AgentId>
  /** Checks by schema name (default: the market contract). */
  payloadChecks?: Readonly<Record<string, PayloadCheck>>
  /** Let timeouts fire by the envelopes' timestamps (default true). */
  timeouts?: boolean
  signal?: AbortSignal
}

export const MAX_AUDIT_STEPS = 10_000

/**
 * Re-validates a conversation step by step.
 *
 * @example
 * const report = await auditConversation(log.map((e) => e.bytes), { registry })
 * if (!report.ok) console.log(report.steps.find((s) => !s.ok))
 */
export async function auditConversation (wires: readonly Uint8Array[], opts: AuditOptions): Promise<AuditReport> {
  if (wires.length > MAX_AUDIT_STEPS) throw new InvalidArgumentError(`at most ${MAX_AUDIT_STEPS} steps per audit`)
  const validation = opts.validation ?? createValidation(opts.registry)
  const checks = opts.payloadChecks ?? defaultPayloadChecks
  const parties: Record<string, AgentId> = { ...(opts.parties ?? {}) }
  const report: AuditReport = { ok: true, parties, steps: [] }
  let def = opts.protocol
  let conv: ConversationState | undefined
  let convId: string | undefined
  let opener: Envelope | undefined

  const fail = (s: AuditStep, stage: AuditStage, reason: string, detail: string): AuditStep => {
    s.ok = false
    s.failure = { stage, reason, detail }
    report.ok = false
    return s
  }

  for (let i = 0; i < wires.length; i++) {
    const s: AuditStep = { index: i, ok: true }
    report.steps.push(s)
    const decoded = decodeEnvelope(wires[i])
    if (!decoded.ok) { fail(s, 'signature', decoded.reason, decoded.detail); continue }
    const env = decoded.envelope
    Object.assign(s, { id: env.id, from: env.from, performative: env.type, ...(env.schema != null ? { schema: env.schema } : {}) })

    // The conversation: same id, same protocol, between the same two parties.
    if (convId == null) {
      convId = env.conv
      report.conv = env.conv
      if (convId == null) { fail(s, 'conversation', 'no-conversation-id', 'the envelope has no conv'); continue }
    } else if (env.conv !== convId) { fail(s, 'conversation', 'wrong-conversation', `conv ${env.conv ?? '(none)'} is not ${convId}`); continue }
    if (def == null) {
      if (env.proto == null || parseUri(env.proto) == null) { fail(s, 'conversation', 'no-protocol', 'the first envelope names no protocol (proto) and none was given'); continue }
      try {
        def = await opts.registry.protocol(env.proto, { signal: opts.signal })
      } catch (err) {
        fail(s, 'conversation', 'protocol-unknown', (err as Error).message)
        continue
      }
    }
    report.protocol ??= `proto/${def.name}@${def.version}`
    if (env.proto != null && env.proto !== report.protocol) { fail(s, 'conversation', 'wrong-protocol', `proto ${env.proto} is not ${report.protocol}`); continue }
    conv ??= startConversation(def, initiatorRole(def) ?? def.roles[0], env.ts)
    const role = roleOf(def, parties, env.from)
    if (role == null) { fail(s, 'conversation', 'not-a-party', `${env.from} is not one of the two parties (${Object.values(parties).join(', ')})`); continue }
    s.role = role
    const other = counterpartRole(def, role)
    const otherAgent = other != null ? parties[other] : undefined
    if (otherAgent != null && env.to != null && !env.to.includes(otherAgent)) { fail(s, 'conversation', 'wrong-recipient', `not addressed to the ${other} ${otherAgent}`); continue }
    if (opener != null && otherAgent != null && opener.to != null && !opener.to.includes(otherAgent) && opener.from !== otherAgent) {
      fail(report.steps[0], 'conversation', 'wrong-recipient', `the opening message was not addressed to ${otherAgent}`)
    }
    opener ??= env

    // The payload against its schema.
    const v = await validation.checkIncoming(env, { signal: opts.signal })
    if (!v.ok) { fail(s, 'schema', v.reason, v.errors.map((e) => `${e.path || '(root)'}: ${e.message}`).join('; ')); continue }

    // The transition, after the timeouts due by this envelope's timestamp.
    // Without timeouts, the gap before this step is ignored by restarting the state's clock.
    if (opts.timeouts === false) conv = { ...conv, since: env.ts }
    const r = step(def, conv, { performative: env.type, schema: env.schema, sender: role }, env.ts)
    s.before = r.timeouts.length > 0 ? r.timeouts[r.timeouts.length - 1].to : conv.state
    if (r.timeouts.length > 0) s.timeouts = r.timeouts
    if (!r.ok) {
      conv = r.state
      s.after = conv.state
      fail(s, 'transition', r.reason, `${r.detail}; expected ${r.expected.map((e) => `${e.performative} by ${e.sender}${e.schema != null ? ` (${e.schema})` : ''}`).join(', ') || 'nothing'}`)
      continue
    }
    // What the payload means, before the step is committed: a receiver would refuse it otherwise.
    const name = env.schema != null ? parseUri(env.schema)?.name : undefined
    const check = name != null ? checks[name] : undefined
    if (check != null) {
      const problem = check(v.value, { env, parties, to: r.state.state })
      if (problem != null) { s.after = s.before; fail(s, 'payload', 'payload-check', problem); continue }
    }
    conv = r.state
    s.after = conv.state
  }
  report.final = conv
  return report
}

/** The sender's role: known, or assigned on first appearance (opener first, then the counterpart). */
function roleOf (def: ProtocolDefinition, parties: Record<string, AgentId>, from: AgentId): string | undefined {
  for (const [role, agent] of Object.entries(parties)) if (agent === from) return role
  const opening = initiatorRole(def) ?? def.roles[0]
  if (parties[opening] == null) { parties[opening] = from; return opening }
  const other = counterpartRole(def, opening)
  if (other != null && parties[other] == null) { parties[other] = from; return other }
  return undefined
}

// ---- export / import ------------------------------------------------------------------

export interface ConversationExport {
  v: 1
  conv?: string
  proto?: string
  steps: Uint8Array[]
}

export const MAX_EXPORT_BYTES = 64 * 1024 * 1024

/** A conversation as one DAG-CBOR file: `{v: 1, conv?, proto?, steps: [wire bytes…]}`. */
export function exportConversation (envelopes: ReadonlyArray<Uint8Array | Pick<Envelope, 'bytes'>>, meta: { conv?: string, proto?: string } = {}): Uint8Array {
  const steps = envelopes.map((e) => e instanceof Uint8Array ? e : e.bytes)
  const out: Record<string, unknown> = { v: 1, steps }
  if (meta.conv != null) out.conv = meta.conv
  if (meta.proto != null) out.proto = meta.proto
  return dagCbor.encode(out)
}

export function importConversation (bytes: Uint8Array): ConversationExport {
  if (bytes.length > MAX_EXPORT_BYTES) throw new InvalidArgumentError(`export larger than ${MAX_EXPORT_BYTES} bytes`)
  let v: unknown
  try {
    v = dagCbor.decode(bytes)
  } catch (err) {
    throw new InvalidArgumentError(`not a conversation export: ${(err as Error).message}`, { cause: err })
  }
  const o = v as Partial<ConversationExport>
  if (o == null || typeof o !== 'object' || o.v !== 1 || !Array.isArray(o.steps) || o.steps.length > MAX_AUDIT_STEPS || !o.steps.every((s) => s instanceof Uint8Array)) {
    throw new InvalidArgumentError('not a conversation export {v: 1, steps: [bytes…]}')
  }
  return { v: 1, steps: o.steps, ...(typeof o.conv === 'string' ? { conv: o.conv } : {}), ...(typeof o.proto === 'string' ? { proto: o.proto } : {}) }
}

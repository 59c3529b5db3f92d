/**
 * The FIPA ACL communicative acts (FIPA SC00037J), which fedmesh carries in an envelope's
 * `type`. Their meanings are the contract between agents built by different people: an
 * `agree` commits the sender, a `refuse` declines, a `not-understood` says the message the
 * receiver sent could not be processed (here: it was not a legal next step of the
 * conversation, or did not validate). Protocols (protocols.ts) say which act may follow
 * which; this module only names and describes them, and builds replies.
 */
import { PERFORMATIVES, type EnvelopeFields, type Performative } from '../core/envelope.ts'
import type { AgentId, SchemaUri } from '../core/ids.ts'
import { isAgentId } from '../core/keys.ts'

export { PERFORMATIVES, type Performative }

/** Speech-act family, after Searle as used by FIPA. */
export type PerformativeCategory = 'assertive' | 'directive' | 'commissive' | 'declining' | 'meta'

export interface PerformativeInfo {
  readonly name: Performative
  readonly category: PerformativeCategory
  /** What the sender means by it (FIPA ACL, summarised). */
  readonly meaning: string
  /** What the receiver may answer with, in the common protocols (empty: no answer is expected). */
  readonly replies: readonly Performative[]
}

const info = (name: Performative, category: PerformativeCategory, meaning: string, replies: Performative[]): PerformativeInfo =>
  Object.freeze({ name, category, meaning, replies: Object.freeze(replies) })

/** Every performative with its meaning. */
export const PERFORMATIVE_INFO: Readonly<Record<Performative, PerformativeInfo>> = Object.freeze({
  inform: info('inform', 'assertive', 'The sender tells the receiver that a proposition is true (a fact, a result, a notification).', []),
  request: info('request', 'directive', 'The sender asks the receiver to perform an action.', ['agree', 'refuse', 'inform', 'failure', 'not-understood']),
  'query-if': info('query-if', 'directive', 'The sender asks whether a proposition is true.', ['inform', 'refuse', 'failure', 'not-understood']),
  'query-ref': info('query-ref', 'directive', 'The sender asks for the object(s) a description refers to (a lookup, a query).', ['inform', 'refuse', 'failure', 'not-understood']),
  propose: info('propose', 'commissive', 'The sender offers to perform an action under stated conditions (an offer, or a counter-offer in a negotiation).', ['accept-proposal', 'reject-proposal', 'propose', 'not-understood']),
  'accept-proposal': info('accept-proposal', 'commissive', 'The sender accepts a proposal the receiver made earlier; the receiver is now expected to perform it.', ['inform', 'failure', 'not-understood']),
  'reject-proposal': info('reject-proposal', 'declining', 'The sender rejects a proposal the receiver made earlier; the negotiation on it ends.', []),
  agree: info('agree', 'commissive', 'The sender agrees to perform a requested action (possibly later); it commits to a following inform or failure.', ['cancel', 'not-understood']),
  refuse: info('refuse', 'declining', 'The sender refuses to perform a requested action, and says why.', []),
  failure: info('failure', 'assertive', 'The sender tells the receiver that it attempted an action and the attempt failed, and why.', []),
  cfp: info('cfp', 'directive', 'Call for proposals: the sender asks for offers to perform an action under conditions.', ['propose', 'refuse', 'not-understood']),
  subscribe: info('subscribe', 'directive', 'The sender asks to be informed whenever what a description refers to changes.', ['agree', 'refuse', 'inform', 'failure', 'not-understood']),
  cancel: info('cancel', 'directive', 'The sender no longer wants the receiver to perform an action it asked for (or ends a subscription).', ['inform', 'failure', 'not-understood']),
  'not-understood': info('not-understood', 'meta', 'The sender could not process a message the receiver sent: it was not a legal next step, or did not validate. The payload says what was expected.', [])
})

export function isPerformative (s: unknown): s is Performative {
  return typeof s === 'string' && (PERFORMATIVES as readonly string[]).includes(s)
}

export function describePerformative (p: Performative): PerformativeInfo {
  return PERFORMATIVE_INFO[p]
}

/** The usual answers to `p` (FIPA's interaction protocols; a protocol definition may allow others). */
export function repliesTo (p: Performative): readonly Performative[] {
  return PERFORMATIVE_INFO[p].replies
}

/** Whether `reply` is one of the usual answers to `to`. */
export function isReplyTo (reply: Performative, to: Performative): boolean {
  return PERFORMATIVE_INFO[to].replies.includes(reply)
}

/** The message a reply answers: what the reply copies from it. */
export type Answerable = Pick<EnvelopeFields, 'from' | 'replyTo' | 'conv' | 'proto'> & { readonly id: string }

/**
 * The fields of a reply to `original` with performative `type`: a direct message to its
 * `replyTo` (when that is an agent) or sender, in the same conversation and protocol,
 * correlated to its id. The SDK adds the rest (payload, ts, signature).
 */
export function replyFields (original: Answerable, type: Performative): Pick<EnvelopeFields, 'mode' | 'type' | 'to' | 'conv' | 'proto' | 'corr'> {
  const to = original.replyTo != null && isAgentId(original.replyTo) ? original.replyTo : original.from
  return {
    mode: 'direct',
    type,
    to: [to as AgentId],
    ...(original.conv != null ? { conv: original.conv } : {}),
    ...(original.proto != null ? { proto: original.proto } : {}),
    corr: original.id
  }
}

/** Schema of the payload of a `not-understood` (a built-in registry document). */
export const NOT_UNDERSTOOD_SCHEMA = 'fedmesh/not-understood@1.0.0' as SchemaUri

/** A transition the receiver would have accepted. */
export interface ExpectedStep {
  performative: Performative
  sender: string
  schema?: string
  to: string
}

/** Payload of a `not-understood`, valid under NOT_UNDERSTOOD_SCHEMA. */
export interface NotUnderstoodPayload {
  /** Why: `illegal-transition`, `schema-mismatch`, `conversation-ended`, `schema-invalid`, `schema-unknown`, `payload-bomb`, … */
  reason: string
  detail?: string
  /** The id of the message that was not understood. */
  message?: string
  /** What was received. */
  received?: { performative: string, schema?: string }
  /** The conversation state at the receiver, and the steps it would have accepted there. */
  state?: string
  expected?: ExpectedStep[]
  /** Validation problems, when the payload did not validate. */
  errors?: Array<{ path: string, message: string }>
}

/** The reply fields and payload of a `not-understood` answer to `original`. */
export function notUnderstood (original: Answerable & Pick<EnvelopeFields, 'type' | 'schema'>, why: Omit<NotUnderstoodPayload, 'message' | 'received'>): {
  fields: ReturnType<typeof replyFields> & { schema: SchemaUri }
  payload: NotUnderstoodPayload
} {
  return {
    fields: { ...replyFields(original, 'not-understood'), schema: NOT_UNDERSTOOD_SCHEMA },
    payload: {
      ...why,
      message: original.id,
      received: { performative: original.type, ...(original.schema != null ? { schema: original.schema } : {}) }
    }
  }
}

/**
 * The agent's side of the semantic layer (docs/SEMANTIC.md): egress validation before
 * signing, protocol conversations tracked per (conversation, counterpart), `not-understood`
 * answers to illegal steps, timeouts, negotiation, and the per-conversation message record
 * that `exportConversation` writes for `fedmesh audit`.
 *
 * AgentImpl holds one of these when it is given `semantics` (in-process agents get the
 * node's registry; remote agents a registry that fetches through the node's API), so
 * in-process and remote agents check exactly the same things.
 */
import type { AgentId } from '../core/ids.ts'
import type { Envelope } from '../core/envelope.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { Channel } from '../util/channel.ts'
import {
  capabilitiesFromCaps, createConversationTracker, startConversation, step, systemClock, exportConversation, isPerformative, negotiate, protocolViolation, NOT_UNDERSTOOD_SCHEMA,
  type ConversationState, type ConversationTracker, type ExpectedStep, type NotUnderstoodPayload, type ProtocolDefinition, type SchemaRegistry,
  type TimeoutFired, type Validation, type Clock
} from '../semantic/index.ts'
import type { AbortOptions } from '../node/types.ts'

/** What an agent needs to check messages: a registry and the validation over it. */
export interface AgentSemantics {
  registry: SchemaRegistry
  validation: Validation
  /** The capabilities (`caps`) in another agent's signed record, for negotiation. */
  lookupCaps?: (agent: AgentId, options?: AbortOptions) => Promise<string[]>
  clock?: Clock
}

/** Something that happened to a conversation outside a delivered message. */
export type ConversationEvent =
  | { kind: 'timeout', conversation: string, peer: AgentId, state: ConversationState, fired: TimeoutFired[] }
  /** A message from `peer` was refused (not delivered) and answered with `not-understood`. */
  | { kind: 'refused', conversation: string, peer: AgentId, reason: string, detail: string, expected: ExpectedStep[], message: string }

export interface ConversationInfo {
  conversation: string
  peer: AgentId
  state: ConversationState
  /** What may come next from the current state. */
  expected: ExpectedStep[]
}

/** Most conversations whose messages are kept for export, and messages kept per conversation. */
export const MAX_RECORDED_CONVERSATIONS = 1_000
export const MAX_RECORDED_STEPS = 1_000

const key = (conv: string, peer: string): string => `${conv}\n${peer}`

export class AgentConversations {
  readonly tracker: ConversationTracker
  readonly semantics: AgentSemantics
  private readonly self: AgentId
  private readonly events = new Set<Channel<ConversationEvent>>()
  private readonly log = new Map<string, { proto?: string, steps: Uint8Array[] }>()
  private readonly defs = new Map<string, ProtocolDefinition>()

  constructor (self: AgentId, semantics: AgentSemantics) {
    this.self = self
    this.semantics = semantics
    this.tracker = createConversationTracker({
      clock: semantics.clock,
      onTimeout: (e) => { this.emit({ kind: 'timeout', conversation: e.key.conv, peer: e.key.peer as AgentId, state: e.state, fired: e.fired }) }
    })
  }

  private async definition (uri: string, signal?: AbortSignal): Promise<ProtocolDefinition> {
    let def = this.defs.get(uri)
    if (def == null) {
      def = await this.semantics.registry.protocol(uri, { signal })
      if (this.defs.size > 1000) this.defs.clear()
      this.defs.set(uri, def)
    }
    return def
  }

  /** Egress: payload limits and schema, before signing. Throws the typed validation errors. */
  async checkPayload (fields: { schema?: string, ct: string, body: Uint8Array }, signal?: AbortSignal): Promise<void> {
    await this.semantics.validation.checkOutgoing(fields, { signal })
  }

  /**
   * Egress: a message of a protocol conversation must be a legal next step towards every
   * recipient. Throws ProtocolViolationError (`details.expected`) and sends nothing.
   * Recipients are all checked before any conversation state moves.
   */
  async checkStep (m: { type: string, protocol?: string, conversation?: string, schema?: string, to: AgentId[] }, signal?: AbortSignal): Promise<void> {
    if (m.protocol == null || m.conversation == null || m.to.length === 0) return
    if (!isPerformative(m.type)) throw new InvalidArgumentError(`a protocol message needs a performative type, not ${JSON.stringify(m.type)}`)
    const def = await this.definition(m.protocol, signal)
    const opener = def.transitions.find(t => t.from === def.initial && t.performative === m.type)
    const now = (this.semantics.clock ?? systemClock).now()
    // Dry run first (pure step), so a refusal towards one recipient moves no state at all.
    for (const to of m.to) {
      const held = this.tracker.get({ conv: m.conversation, peer: to })
      const state = held ?? (opener != null ? startConversation(def, opener.sender, now) : undefined)
      if (state == null) continue // reported below as unknown-conversation
      const r = step(def, state, { performative: m.type, schema: m.schema, sender: state.role }, now)
      if (!r.ok) throw protocolViolation(r, `${m.type} to ${to}`)
    }
    for (const to of m.to) {
      const k = { conv: m.conversation, peer: to }
      const r = this.tracker.send(k, { performative: m.type, schema: m.schema }, this.tracker.get(k) == null && opener != null ? { def, role: opener.sender } : undefined)
      if (!r.ok) {
        if (r.reason === 'unknown-conversation') throw protocolViolation({ ...r, expected: def.transitions.filter(t => t.from === def.initial).map(t => ({ performative: t.performative, sender: t.sender, to: t.to, ...(t.schema != null ? { schema: t.schema } : {}) })) }, `${m.type} to ${to}`)
        throw protocolViolation(r, `${m.type} to ${to}`)
      }
    }
  }

  /** Keeps a sent or received envelope of a conversation for export. */
  record (env: Envelope): void {
    if (env.conv == null) return
    const peers = env.from === this.self ? (env.to ?? []) : [env.from]
    for (const peer of peers) {
      const k = key(env.conv, peer)
      let entry = this.log.get(k)
      if (entry == null) {
        if (this.log.size >= MAX_RECORDED_CONVERSATIONS) this.log.delete(this.log.keys().next().value as string)
        entry = { proto: env.proto, steps: [] }
        this.log.set(k, entry)
      }
      if (entry.steps.length < MAX_RECORDED_STEPS) entry.steps.push(env.bytes)
    }
  }

  /**
   * Ingress: a received message of a protocol conversation. Returns undefined when it may be
   * delivered, or the not-understood payload to answer with (the message is not delivered).
   */
  async receive (env: Envelope): Promise<NotUnderstoodPayload | undefined> {
    if (env.proto == null || env.conv == null || env.mode === 'topic' || env.mode === 'broadcast') return undefined
    const k = { conv: env.conv, peer: env.from }
    let def: ProtocolDefinition
    try {
      def = await this.definition(env.proto)
    } catch (err) {
      return this.refuse(env, { reason: 'schema-unknown', detail: `protocol ${env.proto}: ${(err as Error).message}`.slice(0, 500) })
    }
    if (env.type === 'not-understood') {
      // Aborts our side too; never answered (docs/SEMANTIC.md §8).
      this.tracker.receive(k, { performative: 'not-understood' })
      return undefined
    }
    const r = this.tracker.receive(k, { performative: env.type, schema: env.schema }, { def })
    if (r.ok) return undefined
    return this.refuse(env, { reason: r.reason, detail: r.detail, ...(r.state != null ? { state: r.state.state } : {}), expected: r.expected })
  }

  private refuse (env: Envelope, why: { reason: string, detail: string, state?: string, expected?: ExpectedStep[] }): NotUnderstoodPayload | undefined {
    this.emit({ kind: 'refused', conversation: env.conv as string, peer: env.from, reason: why.reason, detail: why.detail, expected: why.expected ?? [], message: env.id })
    if (env.type === 'not-understood') return undefined
    // Our side ends too: the two ends no longer agree on the state.
    this.tracker.send({ conv: env.conv as string, peer: env.from }, { performative: 'not-understood' })
    return { ...why, message: env.id, received: { performative: env.type, ...(env.schema != null ? { schema: env.schema } : {}) } } as NotUnderstoodPayload
  }

  info (conversation: string, peer: AgentId): ConversationInfo | undefined {
    const state = this.tracker.get({ conv: conversation, peer })
    if (state == null) return undefined
    const def = this.defs.get(state.protocol)
    const expected = def == null || state.status !== 'active'
      ? []
      : def.transitions.filter(t => t.from === state.state).map(t => ({ performative: t.performative, sender: t.sender, to: t.to, ...(t.schema != null ? { schema: t.schema } : {}) }))
    return { conversation, peer, state, expected }
  }

  /** The conversation's messages with `peer` as one export file (docs/SEMANTIC.md §11). */
  export (conversation: string, peer: AgentId): Uint8Array {
    const entry = this.log.get(key(conversation, peer))
    if (entry == null) throw new InvalidArgumentError(`no recorded conversation ${conversation} with ${peer}`)
    return exportConversation(entry.steps, { conv: conversation, proto: entry.proto })
  }

  /** Highest version of `name` (`proto/x`, `ns/x`) this agent and `peer` both advertise. */
  async negotiate (mine: string[], peer: AgentId, name: string, options: AbortOptions = {}): Promise<string> {
    if (this.semantics.lookupCaps == null) throw new InvalidArgumentError('this agent cannot look up other agents\' records')
    const theirs = await this.semantics.lookupCaps(peer, options)
    return negotiate(capabilitiesFromCaps(mine), capabilitiesFromCaps(theirs), name)
  }

  subscribe (signal?: AbortSignal): AsyncIterable<ConversationEvent> & { close: () => void } {
    const ch = new Channel<ConversationEvent>(1000)
    this.events.add(ch)
    const close = (): void => { this.events.delete(ch); ch.end() }
    signal?.addEventListener('abort', close, { once: true })
    return { [Symbol.asyncIterator]: () => ch[Symbol.asyncIterator](), close }
  }

  private emit (e: ConversationEvent): void {
    for (const ch of this.events) ch.push(e)
  }

  close (): void {
    this.tracker.close()
    for (const ch of this.events) ch.end()
    this.events.clear()
  }
}

export { NOT_UNDERSTOOD_SCHEMA }

/**
 * Conversation tracking: pure step functions over a protocol definition, and a small state
 * holder (`ConversationTracker`) that keeps many conversations and fires their timeouts
 * through an injected clock.
 *
 * A conversation is tracked per pair of parties — (conversation id, counterpart) — on both
 * ends: each side checks its own outgoing messages before sending them (`send`) and the
 * other side's on receipt (`receive`). A message that is not a legal next step is refused
 * with a reason value listing the expected transitions, which the caller puts into a
 * `not-understood` answer. `not-understood` itself is accepted in any active state (unless
 * the protocol declares it) and aborts the conversation: the two ends no longer agree.
 */
import type { AgentId, SchemaUri } from '../core/ids.ts'
import { InvalidArgumentError } from '../core/errors.ts'
import { ProtocolViolationError } from './errors.ts'
import type { ExpectedStep } from './performatives.ts'
import { counterpartRole, protocolUri, type ProtocolDefinition, type Transition } from './protocols.ts'
import { parseUri, sameMajor } from './semver.ts'

/** A message as the tracker sees it. */
export interface ConversationMessage {
  /** The envelope's `type`. */
  performative: string
  /** The envelope's `schema`, if any. */
  schema?: string
  /** The role of the sender in this conversation. */
  sender: string
}

export type ConversationStatus = 'active' | 'done' | 'aborted'

export interface ConversationState {
  readonly protocol: SchemaUri
  /** The role of the party holding this state. */
  readonly role: string
  readonly state: string
  readonly status: ConversationStatus
  /** When the current state was entered (ms); timeouts count from here. */
  readonly since: number
  readonly steps: number
  /** Why an aborted conversation ended (`not-understood`). */
  readonly outcome?: string
}

export type RefusalReason =
  /** No transition from the current state has this performative and sender. */
  | 'illegal-transition'
  /** A transition matches performative and sender but needs another schema (name and major). */
  | 'schema-mismatch'
  /** The conversation already ended (terminal state or aborted). */
  | 'conversation-ended'
  /** The sender role is not a role of the protocol. */
  | 'unknown-role'

export type StepResult =
  | { ok: true, state: ConversationState, transition?: Transition, timeouts: TimeoutFired[] }
  | { ok: false, reason: RefusalReason, detail: string, state: ConversationState, expected: ExpectedStep[], timeouts: TimeoutFired[] }

export interface TimeoutFired { from: string, to: string, at: number }

/** A new conversation in the initial state. */
export function startConversation (def: ProtocolDefinition, role: string, now: number): ConversationState {
  if (!def.roles.includes(role)) throw new InvalidArgumentError(`${role} is not a role of ${protocolUri(def)} (roles: ${def.roles.join(', ')})`)
  return Object.freeze({ protocol: protocolUri(def), role, state: def.initial, status: 'active', since: now, steps: 0 })
}

/** The transitions legal in `state`, as a not-understood lists them. */
export function expectedTransitions (def: ProtocolDefinition, state: string): ExpectedStep[] {
  return def.transitions.filter((t) => t.from === state).map((t) => ({
    performative: t.performative, sender: t.sender, to: t.to, ...(t.schema != null ? { schema: t.schema } : {})
  }))
}

/** The instant the current state times out, if it has a timeout and the conversation is active. */
export function nextDeadline (def: ProtocolDefinition, conv: ConversationState): number | undefined {
  if (conv.status !== 'active') return undefined
  const t = def.timeouts?.[conv.state]
  return t != null ? conv.since + t.after : undefined
}

/**
 * Applies every timeout due at `now`. A chain of timeouts fires in order, each counted from
 * the instant the previous one fired. Bounded by the number of states.
 */
export function advanceTimeouts (def: ProtocolDefinition, conv: ConversationState, now: number): { state: ConversationState, fired: TimeoutFired[] } {
  const fired: TimeoutFired[] = []
  let cur = conv
  for (let i = 0; i <= def.states.length; i++) {
    const deadline = nextDeadline(def, cur)
    if (deadline === undefined || now < deadline) break
    const to = (def.timeouts as Record<string, { to: string }>)[cur.state].to
    fired.push({ from: cur.state, to, at: deadline })
    cur = Object.freeze({ ...cur, state: to, since: deadline, status: def.terminal.includes(to) ? 'done' : 'active' })
  }
  return { state: cur, fired }
}

function schemaMatches (t: Transition, schema: string | undefined): boolean {
  if (t.schema == null) return true
  if (schema == null) return false
  const want = parseUri(t.schema)
  const got = parseUri(schema)
  return want != null && got != null && sameMajor(want, got)
}

/**
 * The next state after `msg`, or a refusal naming the legal transitions. Pure: timeouts due
 * at `now` are applied first (and reported), then the message.
 */
export function step (def: ProtocolDefinition, conv: ConversationState, msg: ConversationMessage, now: number): StepResult {
  const { state: cur, fired } = advanceTimeouts(def, conv, now)
  const refuse = (reason: RefusalReason, detail: string): StepResult =>
    ({ ok: false, reason, detail, state: cur, expected: cur.status === 'active' ? expectedTransitions(def, cur.state) : [], timeouts: fired })
  if (cur.status !== 'active') return refuse('conversation-ended', `the conversation ended in state ${cur.state}${cur.outcome != null ? ` (${cur.outcome})` : ''}`)
  if (!def.roles.includes(msg.sender)) return refuse('unknown-role', `${msg.sender} is not a role of ${cur.protocol}`)
  const candidates = def.transitions.filter((t) => t.from === cur.state && t.performative === msg.performative && t.sender === msg.sender)
  const match = candidates.find((t) => schemaMatches(t, msg.schema))
  if (match != null) {
    return {
      ok: true,
      state: Object.freeze({ ...cur, state: match.to, since: now, steps: cur.steps + 1, status: def.terminal.includes(match.to) ? 'done' : 'active' }),
      transition: match,
      timeouts: fired
    }
  }
  if (candidates.length > 0) {
    return refuse('schema-mismatch', `${msg.performative} from ${msg.sender} in state ${cur.state} needs schema ${candidates.map((t) => t.schema).join(' or ')}, got ${msg.schema ?? 'none'}`)
  }
  if (msg.performative === 'not-understood') {
    return { ok: true, state: Object.freeze({ ...cur, since: now, steps: cur.steps + 1, status: 'aborted', outcome: 'not-understood' }), timeouts: fired }
  }
  return refuse('illegal-transition', `${msg.performative} from ${msg.sender} is not a legal step in state ${cur.state}`)
}

/**
 * The error for a refused outgoing step (the SDK throws it instead of sending), carrying
 * the reason, the state and the expected transitions in `details`.
 */
export function protocolViolation (r: Extract<TrackResult, { ok: false }>, what = 'message'): InstanceType<typeof ProtocolViolationError> {
  const expected = r.expected.map((e) => `${e.performative} by ${e.sender}${e.schema != null ? ` (${e.schema})` : ''}`)
  return new ProtocolViolationError(`${what} refused (${r.reason}): ${r.detail}${expected.length > 0 ? `; expected ${expected.join(', ')}` : ''}`, {
    details: { reason: r.reason, ...(r.state != null ? { state: r.state.state, protocol: r.state.protocol } : {}), expected: r.expected }
  })
}

// ---- clock -----------------------------------------------------------------------------

/** Time and timers, injected so tests can drive them. */
export interface Clock {
  now: () => number
  setTimer: (fn: () => void, ms: number) => unknown
  clearTimer: (handle: unknown) => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const h = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1))
    h.unref?.()
    return h
  },
  clearTimer: (h) => { clearTimeout(h as ReturnType<typeof setTimeout>) }
}

/** A clock that moves only when told to, firing due timers in order. */
export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance: (ms: number) => void
  /** Timers not yet fired. */
  readonly pending: number
}

export function createManualClock (start = 0): ManualClock {
  let now = start
  let seq = 0
  const timers = new Map<number, { at: number, fn: () => void }>()
  return {
    now: () => now,
    setTimer: (fn, ms) => { const id = ++seq; timers.set(id, { at: now + Math.max(0, ms), fn }); return id },
    clearTimer: (h) => { timers.delete(h as number) },
    advance (ms: number): void {
      const end = now + ms
      // Each round fires the earliest due timer; a timer set while firing is seen in the next round.
      for (let round = 0; round < 100_000; round++) {
        let next: [number, { at: number, fn: () => void }] | undefined
        for (const e of timers) if (e[1].at <= end && (next == null || e[1].at < next[1].at)) next = e
        if (next == null) break
        timers.delete(next[0])
        now = Math.max(now, next[1].at)
        next[1].fn()
      }
      now = end
    },
    get pending () { return timers.size }
  }
}

// ---- state holder ----------------------------------------------------------------------

/** A conversation is tracked per (conversation id, counterpart). */
export interface ConversationKey { conv: string, peer: AgentId | string }

export interface TimeoutEvent { key: ConversationKey, fired: TimeoutFired[], state: ConversationState }

export interface ConversationTrackerInit {
  clock?: Clock
  /** Most conversations held; finished ones are forgotten first (default 10 000). */
  maxConversations?: number
  /** Called when timeouts fire on a conversation (the state has already moved). */
  onTimeout?: (event: TimeoutEvent) => void
}

/** A step result, or a refusal before any conversation state exists (no `state`). */
export type TrackResult = StepResult | { ok: false, reason: RefusalReason | 'unknown-conversation' | 'too-many-conversations', detail: string, state?: undefined, expected: ExpectedStep[], timeouts: TimeoutFired[] }

export interface ConversationTracker {
  /** Starts a conversation in which this party plays `role`. Replaces a finished one with the same key. */
  begin: (key: ConversationKey, def: ProtocolDefinition, role: string) => ConversationState
  /**
   * Checks and records a message this party is about to send. When not ok, do not send it.
   * With `def` and `role`, a conversation not yet known is begun first.
   */
  send: (key: ConversationKey, msg: Omit<ConversationMessage, 'sender'>, start?: { def: ProtocolDefinition, role: string }) => TrackResult
  /**
   * Checks and records a message received from the counterpart. With `def`, an unknown
   * conversation is begun when the message opens it (this party takes the other role).
   * `senderRole` is needed only for protocols with more than two roles.
   */
  receive: (key: ConversationKey, msg: Omit<ConversationMessage, 'sender'> & { senderRole?: string }, start?: { def: ProtocolDefinition, role?: string }) => TrackResult
  get: (key: ConversationKey) => ConversationState | undefined
  /** Active conversations. */
  readonly active: number
  readonly size: number
  /** Forgets a conversation and its timer. */
  end: (key: ConversationKey) => void
  /** Cancels every timer. */
  close: () => void
}

interface Entry { key: ConversationKey, def: ProtocolDefinition, conv: ConversationState, timer?: unknown }

/** Keeps conversations and fires their timeouts. */
export function createConversationTracker (init: ConversationTrackerInit = {}): ConversationTracker {
  const clock = init.clock ?? systemClock
  const max = init.maxConversations ?? 10_000
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidArgumentError('maxConversations must be a positive integer')
  const entries = new Map<string, Entry>()
  let closed = false
  const id = (k: ConversationKey): string => `${k.conv}\n${k.peer}`

  const arm = (e: Entry): void => {
    if (e.timer !== undefined) { clock.clearTimer(e.timer); e.timer = undefined }
    const deadline = nextDeadline(e.def, e.conv)
    if (deadline === undefined || closed) return
    e.timer = clock.setTimer(() => {
      e.timer = undefined
      const { state, fired } = advanceTimeouts(e.def, e.conv, clock.now())
      e.conv = state
      arm(e)
      if (fired.length > 0) init.onTimeout?.({ key: e.key, fired, state })
    }, deadline - clock.now())
  }

  const makeRoom = (): boolean => {
    if (entries.size < max) return true
    // Forget the oldest finished conversation; Map order is insertion order.
    for (const [k, e] of entries) {
      if (e.conv.status !== 'active') { entries.delete(k); return true }
    }
    return false
  }

  const begin = (key: ConversationKey, def: ProtocolDefinition, role: string): ConversationState => {
    const k = id(key)
    const old = entries.get(k)
    if (old != null && old.conv.status === 'active') throw new InvalidArgumentError(`conversation ${key.conv} with ${key.peer} is already active`)
    if (old != null) { if (old.timer !== undefined) clock.clearTimer(old.timer); entries.delete(k) }
    if (!makeRoom()) throw new InvalidArgumentError(`too many active conversations (${max})`)
    const e: Entry = { key, def, conv: startConversation(def, role, clock.now()) }
    entries.set(k, e)
    arm(e)
    return e.conv
  }

  const apply = (e: Entry, msg: ConversationMessage): TrackResult => {
    const r = step(e.def, e.conv, msg, clock.now())
    // Timeouts that were due are applied even when the message is refused.
    e.conv = r.state
    arm(e)
    return r
  }

  const unknown = (key: ConversationKey): TrackResult => ({ ok: false, reason: 'unknown-conversation', detail: `no conversation ${key.conv} with ${key.peer}`, expected: [], timeouts: [] })

  return {
    begin,
    send (key, msg, start) {
      let e = entries.get(id(key))
      const fresh = e == null && start != null
      if (fresh) {
        if (!makeRoom()) return { ok: false, reason: 'too-many-conversations', detail: `more than ${max} active conversations`, expected: [], timeouts: [] }
        begin(key, start.def, start.role)
        e = entries.get(id(key))
      }
      if (e == null) return unknown(key)
      const r = apply(e, { ...msg, sender: e.conv.role })
      // A conversation begun for a message that was refused is not kept.
      if (!r.ok && fresh && e != null) { if (e.timer !== undefined) clock.clearTimer(e.timer); entries.delete(id(key)) }
      return r
    },
    receive (key, msg, start) {
      let e = entries.get(id(key))
      let fresh = false
      if (e == null && start != null) {
        const opener = start.def.transitions.find((t) => t.from === start.def.initial && t.performative === msg.performative && (msg.senderRole == null || t.sender === msg.senderRole))
        const role = start.role ?? (opener != null ? counterpartRole(start.def, opener.sender) : undefined)
        if (opener == null || role == null) {
          return { ok: false, reason: 'illegal-transition', detail: `${msg.performative} does not open ${protocolUri(start.def)}`, expected: expectedTransitions(start.def, start.def.initial), timeouts: [] }
        }
        if (!makeRoom()) return { ok: false, reason: 'too-many-conversations', detail: `more than ${max} active conversations`, expected: [], timeouts: [] }
        begin(key, start.def, role)
        e = entries.get(id(key))
        fresh = true
      }
      if (e == null) return unknown(key)
      const sender = msg.senderRole ?? counterpartRole(e.def, e.conv.role)
      if (sender == null) return { ok: false, reason: 'unknown-role', detail: `the sender's role must be given for ${e.conv.protocol}`, state: e.conv, expected: expectedTransitions(e.def, e.conv.state), timeouts: [] }
      const r = apply(e, { performative: msg.performative, schema: msg.schema, sender })
      if (!r.ok && fresh) { if (e.timer !== undefined) clock.clearTimer(e.timer); entries.delete(id(key)) }
      return r
    },
    get: (key) => entries.get(id(key))?.conv,
    get active () { let n = 0; for (const e of entries.values()) if (e.conv.status === 'active') n++; return n },
    get size () { return entries.size },
    end (key) {
      const e = entries.get(id(key))
      if (e == null) return
      if (e.timer !== undefined) clock.clearTimer(e.timer)
      entries.delete(id(key))
    },
    close () {
      closed = true
      for (const e of entries.values()) if (e.timer !== undefined) { clock.clearTimer(e.timer); e.timer = undefined }
    }
  }
}

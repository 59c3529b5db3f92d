/**
 * The inbox's admission and ordering rules as one pure function over a batch: given what
 * the store already holds (loaded inside the write transaction), decide for each entry
 * `stored`, `duplicate` or a quota rejection, where it goes in delivery order, and the new
 * quota usage. The backends only load the state and apply the plan, so SQLite and
 * PostgreSQL cannot differ in these rules.
 */
import { QuotaExceededError, type QuotaKind } from './errors.ts'
import type { EnqueueResult, InboxQuota } from './types.ts'
import type { NormalizedEntry } from './validate.ts'

export interface Usage { count: number, bytes: number }

/** Quota usage is kept per inbox, per (inbox, sender) pair and per sender. */
export type UsageScope = 'inbox' | 'pair' | 'sender'

export function usageKeyOf (scope: UsageScope, recipient: string, sender: string): string {
  return scope === 'inbox' ? recipient : scope === 'pair' ? `${recipient}\n${sender}` : sender
}

/** Key of the in-memory usage map. */
export function usageMapKey (scope: UsageScope, key: string): string {
  return `${scope}:${key}`
}

export function heldKey (recipient: string, id: string): string {
  return `${recipient}\n${id}`
}

/** A pending entry that carries a sender sequence number. */
export interface SeqSlot {
  recipient: string
  id: string
  seq: number
  pos: number
}

export interface PlanState {
  /** `heldKey` of every (recipient, id) in the batch the store already holds. */
  held: Set<string>
  /** Current usage by `usageMapKey`; missing means zero. */
  usage: Map<string, Usage>
  /**
   * Per pair key (`usageKeyOf('pair', …)`): the pair's pending entries with a sequence number
   * greater than the smallest one in the batch for that pair, sorted by sequence number.
   */
  seqSlots: Map<string, SeqSlot[]>
  /** The next unused delivery position. */
  nextPos: number
}

export interface PlanInput {
  entry: NormalizedEntry
  quota: InboxQuota
}

export interface PlannedInsert extends NormalizedEntry { pos: number }

export interface UsageRow { scope: UsageScope, key: string, count: number, bytes: number }

export interface EnqueuePlan {
  outcomes: Array<EnqueueResult | QuotaExceededError>
  inserts: PlannedInsert[]
  /** Existing entries whose delivery position changes. */
  moves: Array<{ recipient: string, id: string, pos: number }>
  /** New absolute usage of every key the batch touched. */
  usage: UsageRow[]
  nextPos: number
}

const SCOPES: Array<{ scope: UsageScope, count: keyof InboxQuota, bytes: keyof InboxQuota, countKind: QuotaKind, bytesKind: QuotaKind }> = [
  { scope: 'inbox', count: 'inboxCount', bytes: 'inboxBytes', countKind: 'inbox-count', bytesKind: 'inbox-bytes' },
  { scope: 'pair', count: 'senderCount', bytes: 'senderBytes', countKind: 'sender-count', bytesKind: 'sender-bytes' },
  { scope: 'sender', count: 'senderTotalCount', bytes: 'senderTotalBytes', countKind: 'sender-total-count', bytesKind: 'sender-total-bytes' }
]

const SCOPE_INDEX: Record<UsageScope, number> = { inbox: 0, pair: 1, sender: 2 }

/** The first quota `entry` would exceed, or null. */
export function quotaViolation (entry: NormalizedEntry, quota: InboxQuota, usageOf: (scope: UsageScope) => Usage): QuotaExceededError | null {
  for (const s of SCOPES) {
    const u = usageOf(s.scope)
    const base = { recipient: entry.recipient, sender: entry.sender }
    if (u.count + 1 > quota[s.count]) return new QuotaExceededError({ quota: s.countKind, limit: quota[s.count], current: u.count, requested: 1, ...base })
    if (u.bytes + entry.size > quota[s.bytes]) return new QuotaExceededError({ quota: s.bytesKind, limit: quota[s.bytes], current: u.bytes, requested: entry.size, ...base })
  }
  return null
}

/**
 * The two non-error outcomes, one object each for every entry: crossing back from the writer
 * thread, the structured clone writes each once per batch (a reference for every repeat).
 */
const STORED: EnqueueResult = Object.freeze({ status: 'stored' })
const DUPLICATE: EnqueueResult = Object.freeze({ status: 'duplicate' })

interface Slot extends SeqSlot { insert?: PlannedInsert, originalPos: number }

export function planEnqueue (batch: PlanInput[], state: PlanState): EnqueuePlan {
  const held = new Set(state.held)
  const usage = new Map<string, Usage>()
  const usageOf = (scope: UsageScope, entry: NormalizedEntry): Usage => {
    const k = usageMapKey(scope, usageKeyOf(scope, entry.recipient, entry.sender))
    let u = usage.get(k)
    if (u == null) {
      const cur = state.usage.get(k)
      u = { count: cur?.count ?? 0, bytes: cur?.bytes ?? 0 }
      usage.set(k, u)
    }
    return u
  }
  // The three usages of an entry follow from its (recipient, sender) pair: looked up once per pair.
  // A batch is mostly one pair after another: the last pair's key and usages are at hand
  // without building its key string again.
  const byPair = new Map<string, Usage[]>()
  let last: { recipient: string, sender: string, pk: string, us: Usage[] } | undefined
  const pairOf = (entry: NormalizedEntry): { pk: string, us: Usage[] } => {
    if (last !== undefined && last.recipient === entry.recipient && last.sender === entry.sender) return last
    const pk = usageKeyOf('pair', entry.recipient, entry.sender)
    let us = byPair.get(pk)
    if (us == null) {
      us = SCOPES.map(s => usageOf(s.scope, entry))
      byPair.set(pk, us)
    }
    last = { recipient: entry.recipient, sender: entry.sender, pk, us }
    return last
  }
  const slots = new Map<string, Slot[]>()
  for (const [k, list] of state.seqSlots) slots.set(k, list.map(s => ({ ...s, originalPos: s.pos })))
  let nextPos = state.nextPos
  const inserts: PlannedInsert[] = []
  const outcomes: EnqueuePlan['outcomes'] = []

  for (const { entry, quota } of batch) {
    const hk = heldKey(entry.recipient, entry.id)
    if (held.has(hk)) { outcomes.push(DUPLICATE); continue }
    const pair = pairOf(entry)
    const us = pair.us
    const violation = quotaViolation(entry, quota, scope => us[SCOPE_INDEX[scope]])
    if (violation != null) { outcomes.push(violation); continue }
    for (const u of us) {
      u.count += 1
      u.bytes += entry.size
    }
    held.add(hk)
    const insert: PlannedInsert = { ...entry, pos: nextPos++ }
    inserts.push(insert)
    outcomes.push(STORED)
    if (entry.senderSeq == null) continue

    // Keep the pair's sequenced entries in sequence order: the newcomer takes the position
    // of the first entry with a higher sequence number, and each of those moves one slot on
    // (the last into the newcomer's fresh position). Other senders' slots are untouched.
    const pk = pair.pk
    let list = slots.get(pk)
    if (list === undefined) { list = []; slots.set(pk, list) }
    const seq = entry.senderSeq
    let at = list.length
    while (at > 0 && list[at - 1].seq > seq) at--
    const slot: Slot = { recipient: entry.recipient, id: entry.id, seq, pos: insert.pos, originalPos: -1, insert }
    if (at < list.length) {
      const positions = [...list.slice(at).map(s => s.pos), insert.pos]
      slot.pos = positions[0]
      list.slice(at).forEach((s, i) => { s.pos = positions[i + 1] })
    }
    list.splice(at, 0, slot)
  }

  const moves: EnqueuePlan['moves'] = []
  for (const list of slots.values()) {
    for (const s of list) {
      if (s.insert != null) s.insert.pos = s.pos
      else if (s.pos !== s.originalPos) moves.push({ recipient: s.recipient, id: s.id, pos: s.pos })
    }
  }
  const usageRows: UsageRow[] = []
  for (const [k, u] of usage) {
    const before = state.usage.get(k)
    if (u.count === (before?.count ?? 0) && u.bytes === (before?.bytes ?? 0)) continue
    const i = k.indexOf(':')
    usageRows.push({ scope: k.slice(0, i) as UsageScope, key: k.slice(i + 1), count: u.count, bytes: u.bytes })
  }
  return { outcomes, inserts, moves, usage: usageRows, nextPos }
}

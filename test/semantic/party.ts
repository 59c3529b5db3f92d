/**
 * A tiny in-memory mesh of agents running the semantic layer exactly as the SDK and the
 * router will: egress = checkOutgoing → tracker.send → signEnvelope; ingress =
 * verifyIngress → checkIncoming → tracker.receive, answering refusals with not-understood.
 * Delivery is a queue drained in order; every envelope is logged per conversation pair for audit.
 */
import { signEnvelope, type Envelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import { DedupCache, verifyIngress } from '../../src/core/ingress.ts'
import type { AgentId, NetworkId } from '../../src/core/ids.ts'
import { generateAgentKey, type AgentKey } from '../../src/core/keys.ts'
import {
  createConversationTracker, createSchemaRegistry, createValidation, notUnderstood, replyFields,
  type ConversationTracker, type ExpectedStep, type ManualClock, type MemoryRegistryHub, type SchemaRegistry, type Validation, type Performative, type TrackResult
} from '../../src/semantic/index.ts'

export const NET = 'semantic-test' as NetworkId

export interface Received { env: Envelope, value: unknown }

export interface Party {
  name: string
  key: AgentKey
  id: AgentId
  registry: SchemaRegistry
  validation: Validation
  tracker: ConversationTracker
  /** Messages that passed every check, for the agent's logic. */
  inbox: Received[]
  /** Refusals this party sent (not-understood) and ingress rejections. */
  refused: Array<{ env?: Envelope, reason: string, detail: string }>
  handle?: (m: Received) => Promise<void>
}

export interface Mesh {
  parties: Map<AgentId, Party>
  clock: ManualClock
  /** Wire bytes per conversation pair, in sending order. */
  log: Map<string, Uint8Array[]>
  add: (name: string) => Party
  send: (from: Party, msg: SendSpec) => Promise<Envelope>
  /** Delivers queued envelopes until none are left (bounded). */
  run: () => Promise<void>
  pairLog: (conv: string, a: AgentId, b: AgentId) => Uint8Array[]
}

export interface SendSpec {
  to: AgentId[]
  type: Performative
  payload: unknown
  conv: string
  proto: string
  schema?: string
  corr?: string
  /** Skip the local checks, as a buggy or hostile agent would. */
  unchecked?: boolean
}

export const pairKey = (conv: string, a: string, b: string): string => `${conv}|${[a, b].sort().join('|')}`

export function createMesh (hub: MemoryRegistryHub, clock: ManualClock): Mesh {
  const parties = new Map<AgentId, Party>()
  const log = new Map<string, Uint8Array[]>()
  const queue: Array<{ to: AgentId, bytes: Uint8Array }> = []
  const dedup = new Map<AgentId, DedupCache>()

  const mesh: Mesh = {
    parties,
    clock,
    log,
    add (name) {
      const key = generateAgentKey()
      const registry = createSchemaRegistry({ network: hub.join(name) })
      const p: Party = {
        name, key, id: key.id, registry, validation: createValidation(registry),
        tracker: createConversationTracker({ clock }), inbox: [], refused: []
      }
      parties.set(p.id, p)
      dedup.set(p.id, new DedupCache())
      return p
    },

    async send (from, m) {
      const fields: EnvelopeFields = {
        v: 1, net: NET, mode: m.to.length === 1 ? 'direct' : 'multicast', type: m.type, from: from.id, to: m.to,
        conv: m.conv, proto: m.proto, ...(m.schema != null ? { schema: m.schema } : {}), ...(m.corr != null ? { corr: m.corr } : {}),
        ts: clock.now(), ttl: 300, hops: 4, prio: 1, ct: 'application/json', body: new TextEncoder().encode(JSON.stringify(m.payload))
      }
      if (m.unchecked !== true) {
        await from.validation.checkOutgoing(fields)
        const def = await from.registry.protocol(m.proto)
        for (const to of m.to) {
          const r = from.tracker.send({ conv: m.conv, peer: to }, { performative: m.type, schema: m.schema }, { def, role: def.roles[0] })
          if (!r.ok) throw new Error(`${from.name} may not send ${m.type} to ${parties.get(to)?.name}: ${r.detail}`)
        }
      }
      const env = signEnvelope(fields, from.key)
      for (const to of m.to) {
        const k = pairKey(m.conv, from.id, to)
        log.set(k, [...(log.get(k) ?? []), env.bytes])
        queue.push({ to, bytes: env.bytes })
      }
      return env
    },

    async run () {
      for (let i = 0; i < 10_000 && queue.length > 0; i++) {
        const { to, bytes } = queue.shift() as { to: AgentId, bytes: Uint8Array }
        const p = parties.get(to)
        if (p != null) await receive(p, bytes)
      }
    },

    pairLog: (conv, a, b) => log.get(pairKey(conv, a, b)) ?? []
  }

  async function receive (p: Party, bytes: Uint8Array): Promise<void> {
    const ing = verifyIngress(bytes, 1, { network: NET, maxBytes: 1 << 20, clockSkewMs: 30_000 }, dedup.get(p.id) as DedupCache, clock.now())
    if (!ing.ok) { p.refused.push({ reason: ing.reason, detail: ing.detail }); return }
    const env = ing.envelope
    const v = await p.validation.checkIncoming(env)
    let refusal: { reason: string, detail: string, state?: string, expected?: ExpectedStep[] } | undefined
    let tracked: TrackResult | undefined
    if (!v.ok) {
      refusal = { reason: v.reason, detail: v.errors.map((e) => `${e.path}: ${e.message}`).join('; ') }
    } else if (env.conv != null && env.proto != null) {
      const def = await p.registry.protocol(env.proto)
      tracked = p.tracker.receive({ conv: env.conv, peer: env.from }, { performative: env.type, schema: env.schema }, { def })
      if (!tracked.ok) refusal = { reason: tracked.reason, detail: tracked.detail, state: tracked.state?.state, expected: tracked.expected }
    }
    if (refusal != null) {
      p.refused.push({ env, reason: refusal.reason, detail: refusal.detail })
      if (env.type === 'not-understood') return // never answer a not-understood with another
      // Our side of the conversation ends too: the two ends no longer agree.
      if (env.conv != null) p.tracker.send({ conv: env.conv, peer: env.from }, { performative: 'not-understood' })
      const nu = notUnderstood(env, { reason: refusal.reason, detail: refusal.detail, ...(refusal.state != null ? { state: refusal.state } : {}), ...(refusal.expected != null ? { expected: refusal.expected } : {}) })
      await mesh.send(p, { to: nu.fields.to as AgentId[], type: 'not-understood', payload: nu.payload, conv: env.conv ?? 'none', proto: env.proto ?? 'proto/request@1.0.0', schema: nu.fields.schema, corr: env.id, unchecked: true })
      return
    }
    const m = { env, value: v.ok ? v.value : undefined }
    p.inbox.push(m)
    await p.handle?.(m)
  }

  return mesh
}

/** The reply envelope fields the SDK would fill from a received message. */
export const reply = (m: Received, type: Performative): { to: AgentId[], corr: string, conv: string, proto: string } => {
  const f = replyFields(m.env, type)
  return { to: f.to as AgentId[], corr: f.corr as string, conv: f.conv as string, proto: f.proto as string }
}

/**
 * A buyer and a seller of the built-in market protocol (docs/SEMANTIC.md §9), written on the
 * public Agent API only: what `fedmesh demo` runs, and a worked example of a protocol
 * conversation — negotiation, a multicast call for proposals, counter-proposals, and a
 * contract signed by both parties.
 *
 * @example
 * ```ts
 * const stop = runSeller(seller, { key: sellerKey, item: 'gpu-hours', ask: 900, floor: 700 })
 * const deal = await runBuyer(buyer, { key: buyerKey, sellers: [seller.id], rfp: { item: 'gpu-hours', quantity: 10, currency: 'EUR' }, target: 750 })
 * console.log(deal.contract.terms.total)
 * ```
 */
import type { AgentId } from '../core/ids.ts'
import type { AgentKey } from '../core/keys.ts'
import { InvalidArgumentError, TimeoutError } from '../core/errors.ts'
import type { Agent, Message, Subscription } from '../node/types.ts'
import {
  contractFromProposal, signContract, verifyContract, MARKET_CONTRACT, MARKET_PROPOSAL, MARKET_RFP,
  type Contract, type Proposal, type Rfp
} from '../semantic/index.ts'

export const MARKET = 'proto/market'

/** What market agents advertise in their records, so that conversations can be negotiated. */
export const MARKET_CAPABILITIES: readonly string[] = Object.freeze([`proto:${MARKET}@1.0.0`, `schema:${MARKET_RFP}`, `schema:${MARKET_PROPOSAL}`, `schema:${MARKET_CONTRACT}`])

/** One message of the market conversation, as a side sends it. */
export interface MarketStep {
  conversation: string
  from: AgentId
  to: AgentId[]
  performative: string
  schema?: string
  /** A one-line summary of the payload. */
  summary: string
}

export interface SellerOptions {
  /** The seller agent's key: it signs contracts. */
  key: AgentKey
  /** What this seller sells; other RFPs are refused. */
  item: string
  /** First asking price per unit (minor units). */
  ask: number
  /** Lowest price per unit it accepts. */
  floor: number
  onStep?: (s: MarketStep) => void
  signal?: AbortSignal
}

export interface BuyerOptions {
  key: AgentKey
  sellers: Array<AgentId | string>
  rfp: Rfp
  /** The price per unit the buyer counter-offers when the best offer is above it. */
  target: number
  /** How long to wait for each answer (ms, default 10 000). */
  waitMs?: number
  onStep?: (s: MarketStep) => void
  signal?: AbortSignal
}

export interface MarketOutcome {
  conversation: string
  protocol: string
  seller: AgentId
  contract: Contract
  /** Offers received, by seller (first round), and refusals. */
  offers: Array<{ seller: AgentId, unitPrice: number }>
  refused: AgentId[]
}

function summary (performative: string, payload: unknown): string {
  const p = payload as Record<string, any> | undefined
  if (p == null || typeof p !== 'object') return ''
  if (p.terms != null) return `contract ${String(p.terms.id)}: ${p.terms.quantity} × ${p.terms.item} at ${p.terms.unitPrice} = ${p.terms.total} ${p.terms.currency}, signed by ${(p.signatures as Array<{ role: string }>).map(s => s.role).join(' + ')}`
  if (p.unitPrice != null) return `round ${p.round}: ${p.quantity} × ${p.item} at ${p.unitPrice} ${p.currency}`
  if (p.item != null) return `wants ${p.quantity} × ${p.item} (${p.currency}${p.maxUnitPrice != null ? `, at most ${p.maxUnitPrice}` : ''})`
  if (performative === 'not-understood') return `${String(p.reason)}: ${String(p.detail)}`
  return JSON.stringify(p).slice(0, 120)
}

/** Runs a seller until `signal` aborts; answers every market conversation it is part of. */
export function runSeller (agent: Agent, opts: SellerOptions): { done: Promise<void> } {
  const inbox = agent.messages({ signal: opts.signal })
  const say = async (to: Message, performative: string, payload: unknown, schema?: string): Promise<void> => {
    // Reported as it leaves, so that the transcript is in sending order.
    opts.onStep?.({ conversation: to.conversation as string, from: agent.id, to: [to.from], performative, schema, summary: summary(performative, payload) })
    await agent.reply(to, payload, { type: performative, ...(schema != null ? { schema } : {}) })
  }
  const done = (async () => {
    for await (const m of inbox) {
      if (m.protocol?.startsWith(`${MARKET}@`) !== true || m.conversation == null) continue
      try {
        await sellerStep(m)
      } catch (err) {
        opts.onStep?.({ conversation: m.conversation, from: agent.id, to: [m.from], performative: 'error', summary: (err as Error).message })
      }
    }
  })()
  async function sellerStep (m: Message): Promise<void> {
    if (m.type === 'cfp') {
      const rfp = m.data<Rfp>()
      if (rfp.item !== opts.item) { await say(m, 'refuse', { reason: `does not sell ${rfp.item}` }); return }
      const offer: Proposal = { rfp: m.id, item: rfp.item, quantity: rfp.quantity, currency: rfp.currency, unitPrice: opts.ask, round: 1 }
      await say(m, 'propose', offer, MARKET_PROPOSAL)
    } else if (m.type === 'propose') {
      const counter = m.data<Proposal>()
      if (counter.unitPrice >= opts.floor) {
        const terms = contractFromProposal(counter, { id: `${m.conversation as string}/contract`, buyer: m.from, seller: agent.id, created: Date.now() })
        await say(m, 'accept-proposal', signContract(terms, opts.key), MARKET_CONTRACT)
      } else {
        await say(m, 'propose', { ...counter, unitPrice: opts.floor, round: counter.round + 1 }, MARKET_PROPOSAL)
      }
    } else if (m.type === 'accept-proposal') {
      const c = m.data<Contract>()
      const check = verifyContract(c, { requireBoth: false })
      if (!check.ok || c.terms.seller !== agent.id) { await say(m, 'refuse', { reason: check.ok ? 'not my contract' : check.reason }); return }
      await say(m, 'inform', signContract(c, opts.key), MARKET_CONTRACT)
    }
  }
  return { done }
}

/** Waits for the next message of `conversation` from one of `from`. */
async function nextOf (it: AsyncIterator<Message>, conversation: string, from: Set<string>, ms: number, signal?: AbortSignal): Promise<Message> {
  const deadline = AbortSignal.any([AbortSignal.timeout(ms), ...(signal != null ? [signal] : [])])
  for (let i = 0; i < 10_000; i++) {
    const r = await new Promise<IteratorResult<Message>>((resolve, reject) => {
      const onAbort = (): void => { reject(new TimeoutError(`no answer in the market conversation within ${ms} ms`)) }
      if (deadline.aborted) { onAbort(); return }
      deadline.addEventListener('abort', onAbort, { once: true })
      it.next().then(resolve, reject).finally(() => { deadline.removeEventListener('abort', onAbort) })
    })
    if (r.done === true) throw new InvalidArgumentError('the agent\'s inbox closed')
    if (r.value.conversation === conversation && from.has(r.value.from)) return r.value
  }
  throw new TimeoutError('too many unrelated messages')
}

/**
 * Runs one purchase: negotiates the protocol version with the sellers, multicasts the RFP,
 * takes the cheapest offer (rejecting the others), counter-offers `target` when the offer
 * is above it, and ends with a contract signed by both. Throws TimeoutError when a seller
 * stops answering, and the protocol's errors when a step is refused.
 */
export async function runBuyer (agent: Agent, opts: BuyerOptions): Promise<MarketOutcome> {
  const waitMs = opts.waitMs ?? 10_000
  const sellers = opts.sellers as AgentId[]
  if (sellers.length === 0) throw new InvalidArgumentError('runBuyer needs at least one seller')
  const inbox: Subscription = agent.messages({ signal: opts.signal })
  const it = inbox[Symbol.asyncIterator]()
  try {
    const { conversation, protocol } = await agent.openConversation({ protocol: MARKET, with: sellers, signal: opts.signal })
    const tell = async (to: AgentId[], performative: string, payload: unknown, schema?: string, corr?: string): Promise<void> => {
      const o = { type: performative, protocol, conversation, ...(schema != null ? { schema } : {}), ...(corr != null ? { correlation: corr } : {}), confirm: true }
      opts.onStep?.({ conversation, from: agent.id, to, performative, schema, summary: summary(performative, payload) })
      if (to.length === 1) await agent.send(to[0], payload, o)
      else await agent.multicast(to, payload, o)
    }
    await tell(sellers, 'cfp', opts.rfp, MARKET_RFP)
    const offers = new Map<AgentId, Message>()
    const refused: AgentId[] = []
    const waiting = new Set<string>(sellers)
    while (waiting.size > 0) {
      let m: Message
      try { m = await nextOf(it, conversation, waiting, waitMs, opts.signal) } catch (err) { if (offers.size > 0) break; throw err }
      waiting.delete(m.from)
      if (m.type === 'propose') offers.set(m.from, m)
      else refused.push(m.from)
    }
    if (offers.size === 0) throw new InvalidArgumentError(`no seller made an offer for ${opts.rfp.item} (${refused.length} refused)`)
    const ranked = [...offers.values()].sort((x, y) => x.data<Proposal>().unitPrice - y.data<Proposal>().unitPrice)
    const best = ranked[0]
    for (const other of ranked.slice(1)) await tell([other.from], 'reject-proposal', { reason: 'another offer was better' }, undefined, other.id)
    const seller = best.from
    let offer = best
    let contract: Contract
    const answer = async (): Promise<Message> => await nextOf(it, conversation, new Set([seller]), waitMs, opts.signal)
    const accept = async (p: Message): Promise<Contract> => {
      const terms = contractFromProposal(p.data<Proposal>(), { id: `${conversation}/contract`, buyer: agent.id, seller, created: Date.now() })
      await tell([seller], 'accept-proposal', signContract(terms, opts.key), MARKET_CONTRACT, p.id)
      const signed = await answer()
      if (signed.type !== 'inform') throw new InvalidArgumentError(`the seller answered ${signed.type} instead of signing`)
      return signed.data<Contract>()
    }
    if (offer.data<Proposal>().unitPrice > opts.target) {
      const p = offer.data<Proposal>()
      await tell([seller], 'propose', { ...p, unitPrice: opts.target, round: p.round + 1 }, MARKET_PROPOSAL, offer.id)
      const reply = await answer()
      if (reply.type === 'accept-proposal') {
        // The seller accepted our counter-offer and signed: countersign and send it back.
        contract = signContract(reply.data<Contract>(), opts.key)
        await tell([seller], 'inform', contract, MARKET_CONTRACT, reply.id)
      } else if (reply.type === 'propose') {
        offer = reply
        contract = await accept(offer)
      } else throw new InvalidArgumentError(`the seller answered ${reply.type} to the counter-offer`)
    } else {
      contract = await accept(offer)
    }
    const check = verifyContract(contract)
    if (!check.ok) throw new InvalidArgumentError(`the contract does not verify: ${check.reason}`)
    return { conversation, protocol, seller, contract, offers: [...offers.values()].map(m => ({ seller: m.from, unitPrice: m.data<Proposal>().unitPrice })), refused }
  } finally {
    inbox.unsubscribe()
  }
}

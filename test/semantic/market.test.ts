import { test, describe, before } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { signEnvelope, type EnvelopeFields } from '../../src/core/envelope.ts'
import type { AgentId } from '../../src/core/ids.ts'
import {
  createMemoryRegistryHub, createManualClock, createSchemaRegistry, auditConversation, exportConversation, importConversation,
  contractFromProposal, signContract, verifyContract, MARKET_RFP, MARKET_PROPOSAL, MARKET_CONTRACT, MARKET_PROTOCOL,
  NOT_UNDERSTOOD_SCHEMA, type Contract, type Proposal, type Rfp, type AuditReport
} from '../../src/semantic/index.ts'
import { createMesh, reply, NET, type Mesh, type Party, type Received } from './party.ts'

const PROTO = 'proto/market@1.0.0'
const CONV = 'rfp-2026-001'
const T0 = 1_800_000_000_000

interface SellerConfig { price: number, floor: number, stock: number }

function seller (mesh: Mesh, p: Party, cfg: SellerConfig): { lastPrice: Map<string, number> } {
  const lastPrice = new Map<string, number>()
  p.handle = async (m: Received) => {
    const { env } = m
    if (env.type === 'cfp') {
      const rfp = m.value as Rfp
      if (cfg.stock < rfp.quantity) {
        await mesh.send(p, { ...reply(m, 'refuse'), type: 'refuse', payload: { reason: `only ${cfg.stock} in stock` } })
        return
      }
      lastPrice.set(env.from, cfg.price)
      const offer: Proposal = { rfp: env.id, item: rfp.item, quantity: rfp.quantity, currency: rfp.currency, unitPrice: cfg.price, round: 1 }
      await mesh.send(p, { ...reply(m, 'propose'), type: 'propose', schema: MARKET_PROPOSAL, payload: offer })
    } else if (env.type === 'propose') {
      const counter = m.value as Proposal
      const mine = lastPrice.get(env.from) as number
      const price = Math.max(cfg.floor, Math.round((mine + counter.unitPrice) / 2))
      lastPrice.set(env.from, price)
      await mesh.send(p, { ...reply(m, 'propose'), type: 'propose', schema: MARKET_PROPOSAL, payload: { ...counter, unitPrice: price, round: counter.round + 1 } })
    } else if (env.type === 'accept-proposal') {
      const c = m.value as Contract
      // Sign only what was offered, to this buyer, as the seller.
      assert.equal(c.terms.unitPrice, lastPrice.get(env.from))
      assert.equal(c.terms.seller, p.id)
      assert.ok(verifyContract(c, { requireBoth: false }).ok)
      await mesh.send(p, { ...reply(m, 'inform'), type: 'inform', schema: MARKET_CONTRACT, payload: signContract(c, p.key) })
    }
  }
  return { lastPrice }
}

function buyer (mesh: Mesh, p: Party, rfp: Rfp) {
  const offers = new Map<AgentId, Received>()
  const contracts = new Map<AgentId, Contract>()
  const declined: AgentId[] = []
  p.handle = async (m: Received) => {
    const { env } = m
    if (env.type === 'refuse') declined.push(env.from)
    if (env.type === 'propose') {
      const offer = m.value as Proposal
      offers.set(env.from, m)
      // Counter every first offer just under the budget; take later ones as they come.
      if (offer.round === 1) {
        await mesh.send(p, { ...reply(m, 'propose'), type: 'propose', schema: MARKET_PROPOSAL, payload: { ...offer, unitPrice: (rfp.maxUnitPrice as number) - 10, round: 2 } })
      }
    }
    if (env.type === 'inform' && env.schema === MARKET_CONTRACT) {
      const c = m.value as Contract
      assert.ok(verifyContract(c).ok)
      contracts.set(env.from, c)
    }
  }
  return {
    offers,
    contracts,
    declined,
    async start (sellers: AgentId[]) {
      await mesh.send(p, { to: sellers, type: 'cfp', schema: MARKET_RFP, payload: rfp, conv: CONV, proto: PROTO })
    },
    /** Accepts the cheapest offer within budget, rejects the others. */
    async decide () {
      const ranked = [...offers.values()].sort((a, b) => (a.value as Proposal).unitPrice - (b.value as Proposal).unitPrice)
      const best = ranked.find((m) => (m.value as Proposal).unitPrice <= (rfp.maxUnitPrice as number))
      for (const m of ranked) {
        if (m === best) {
          const terms = contractFromProposal(m.value as Proposal, { id: `${CONV}/1`, buyer: p.id, seller: m.env.from, created: mesh.clock.now() })
          await mesh.send(p, { ...reply(m, 'accept-proposal'), type: 'accept-proposal', schema: MARKET_CONTRACT, payload: signContract(terms, p.key) })
        } else {
          await mesh.send(p, { ...reply(m, 'reject-proposal'), type: 'reject-proposal', payload: { reason: 'another offer was better' } })
        }
      }
      return best?.env.from
    }
  }
}

describe('the market protocol, end to end', () => {
  const clock = createManualClock(T0)
  const hub = createMemoryRegistryHub()
  const mesh = createMesh(hub, clock)
  const b = mesh.add('buyer')
  const s1 = mesh.add('seller-1')
  const s2 = mesh.add('seller-2')
  const s3 = mesh.add('seller-3')
  const rfp: Rfp = { item: 'GPU hours', quantity: 40, currency: 'EUR', maxUnitPrice: 105 }
  const theBuyer = buyer(mesh, b, rfp)
  seller(mesh, s1, { price: 120, floor: 105, stock: 100 })
  seller(mesh, s2, { price: 90, floor: 80, stock: 10 })
  seller(mesh, s3, { price: 110, floor: 98, stock: 50 })
  let winner: AgentId | undefined
  const auditor = createSchemaRegistry()

  before(async () => {
    await theBuyer.start([s1.id, s2.id, s3.id])
    await mesh.run()
    clock.advance(1_000)
    winner = await theBuyer.decide()
    await mesh.run()
  })

  test('RFP, proposals, counter-proposals, and a contract signed by both', () => {
    assert.equal(winner, s3.id)
    assert.deepEqual(theBuyer.declined, [s2.id])
    const final = theBuyer.offers.get(s3.id)?.value as Proposal
    assert.deepEqual([final.round, final.unitPrice], [3, 103]) // 110 → counter 95 → 103
    const contract = theBuyer.contracts.get(s3.id) as Contract
    const check = verifyContract(contract)
    assert.ok(check.ok)
    assert.deepEqual(check.signedBy, ['buyer', 'seller'])
    assert.equal(contract.terms.total, 40 * 103)
    assert.equal(theBuyer.contracts.size, 1)
    for (const p of mesh.parties.values()) assert.deepEqual(p.refused, [], `${p.name} refused something`)
  })

  test('both ends of every pair end in the same state', () => {
    const states = (x: Party, y: Party) => [b.tracker.get({ conv: CONV, peer: y.id })?.state, x.tracker.get({ conv: CONV, peer: b.id })?.state]
    assert.deepEqual(states(s1, s1), ['rejected', 'rejected'])
    assert.deepEqual(states(s2, s2), ['declined', 'declined'])
    assert.deepEqual(states(s3, s3), ['agreed', 'agreed'])
    assert.equal(b.tracker.active, 0)
  })

  test('every pair\'s conversation passes the audit, step by step', async () => {
    const expected: Record<string, string[]> = {
      [s1.id]: ['rfp', 'offered', 'countered', 'offered', 'rejected'],
      [s2.id]: ['rfp', 'declined'],
      [s3.id]: ['rfp', 'offered', 'countered', 'offered', 'seller-signing', 'agreed']
    }
    for (const s of [s1, s2, s3]) {
      const report = await auditConversation(mesh.pairLog(CONV, b.id, s.id), { registry: auditor })
      assert.ok(report.ok, JSON.stringify(report.steps.find((x) => !x.ok)))
      assert.deepEqual(report.steps.map((x) => x.after), expected[s.id])
      assert.deepEqual(report.parties, { buyer: b.id, seller: s.id })
      assert.equal(report.protocol, PROTO)
    }
  })

  test('exported and imported, the conversation audits the same', async () => {
    const file = exportConversation(mesh.pairLog(CONV, b.id, s3.id), { conv: CONV, proto: PROTO })
    const back = importConversation(file)
    assert.equal(back.conv, CONV)
    const report = await auditConversation(back.steps, { registry: auditor })
    assert.ok(report.ok)
    assert.equal(report.final?.state, 'agreed')
  })

  const failureOf = (r: AuditReport) => r.steps.filter((s) => !s.ok).map((s) => ({ index: s.index, stage: s.failure?.stage, reason: s.failure?.reason }))

  test('a tampered byte fails the signature of that step', async () => {
    const steps = mesh.pairLog(CONV, b.id, s3.id).map((x) => x.slice())
    const last = steps[steps.length - 1]
    const at = Buffer.from(last).indexOf(Buffer.from('"unitPrice":103'))
    assert.ok(at > 0)
    last[at + 14] = '2'.charCodeAt(0)
    const report = await auditConversation(steps, { registry: auditor })
    assert.equal(report.ok, false)
    assert.deepEqual(failureOf(report), [{ index: 5, stage: 'signature', reason: 'bad-signature' }])
  })

  test('a re-signed step with altered contract terms fails the payload check', async () => {
    const steps = mesh.pairLog(CONV, b.id, s3.id)
    const original = await import('../../src/core/envelope.ts').then((m) => m.decodeEnvelope(steps[5]))
    assert.ok(original.ok)
    const contract = JSON.parse(new TextDecoder().decode(original.envelope.body)) as Contract
    contract.terms.unitPrice = 50
    contract.terms.total = 2000
    const { id: _id, sig: _sig, bytes: _bytes, ...fields } = original.envelope
    const forged = signEnvelope({ ...fields, body: new TextEncoder().encode(JSON.stringify(contract)) } as EnvelopeFields, s3.key)
    const report = await auditConversation([...steps.slice(0, 5), forged.bytes], { registry: auditor })
    assert.deepEqual(failureOf(report), [{ index: 5, stage: 'payload', reason: 'payload-check' }])
    assert.match(report.steps[5].failure?.detail ?? '', /buyer's signature does not verify/)
    assert.equal(report.final?.state, 'seller-signing')
  })

  test('reordered, dropped or foreign steps fail the transition or conversation checks', async () => {
    const steps = mesh.pairLog(CONV, b.id, s3.id)
    const swapped = [steps[0], steps[2], steps[1], ...steps.slice(3)]
    assert.deepEqual(failureOf(await auditConversation(swapped, { registry: auditor }))[0], { index: 1, stage: 'transition', reason: 'illegal-transition' })
    const dropped = [steps[0], steps[1], ...steps.slice(3)]
    assert.deepEqual(failureOf(await auditConversation(dropped, { registry: auditor }))[0], { index: 2, stage: 'transition', reason: 'illegal-transition' })
    const foreign = [...steps.slice(0, 2), mesh.pairLog(CONV, b.id, s1.id)[1], ...steps.slice(2)]
    assert.deepEqual(failureOf(await auditConversation(foreign, { registry: auditor }))[0], { index: 2, stage: 'conversation', reason: 'not-a-party' })
    const garbage = [...steps.slice(0, 3), new Uint8Array([1, 2, 3])]
    assert.deepEqual(failureOf(await auditConversation(garbage, { registry: auditor }))[0], { index: 3, stage: 'signature', reason: 'malformed' })
  })
})

describe('the market protocol, misbehaviour', () => {
  test('an illegal step is answered with not-understood naming the expected transitions', async () => {
    const clock = createManualClock(T0)
    const mesh = createMesh(createMemoryRegistryHub(), clock)
    const b = mesh.add('buyer')
    const rogue = mesh.add('rogue')
    for (const conv of ['c1', 'c2']) await mesh.send(b, { to: [rogue.id], type: 'cfp', schema: MARKET_RFP, payload: { item: 'x', quantity: 1, currency: 'EUR' }, conv, proto: PROTO })
    await mesh.run()
    const [cfp1, cfp2] = rogue.inbox
    // The rogue skips its own checks: it informs out of turn in c1, and proposes garbage in c2.
    const outOfTurn = await mesh.send(rogue, { ...reply(cfp1, 'inform'), type: 'inform', payload: { hi: 1 }, unchecked: true })
    await mesh.send(rogue, { ...reply(cfp2, 'propose'), type: 'propose', schema: MARKET_PROPOSAL, payload: { unitPrice: -1 }, unchecked: true })
    await mesh.run()
    assert.deepEqual(b.refused.map((r) => r.reason), ['illegal-transition', 'schema-invalid'])
    const nus = rogue.inbox.filter((m) => m.env.type === 'not-understood')
    assert.equal(nus.length, 2)
    assert.equal(nus[0].env.schema, NOT_UNDERSTOOD_SCHEMA)
    assert.equal(nus[0].env.corr, outOfTurn.id)
    const payload = nus[0].value as { reason: string, message: string, state: string, expected: Array<{ performative: string, sender: string }> }
    assert.equal(payload.message, outOfTurn.id)
    assert.equal(payload.reason, 'illegal-transition')
    assert.equal(payload.state, 'rfp')
    assert.deepEqual(payload.expected.map((e) => `${e.performative}/${e.sender}`), ['propose/seller', 'refuse/seller', 'cancel/buyer'])
    const invalid = nus[1].value as { reason: string, errors?: unknown[], detail: string }
    assert.equal(invalid.reason, 'schema-invalid')
    assert.match(invalid.detail, /must have required property/)
    // A not-understood ends the conversation at both ends.
    for (const conv of ['c1', 'c2']) {
      assert.equal(rogue.tracker.get({ conv, peer: b.id })?.status, 'aborted')
      assert.equal(b.tracker.get({ conv, peer: rogue.id })?.status, 'aborted')
    }
  })

  test('a silent seller: the buyer\'s conversation expires on the clock', async () => {
    const clock = createManualClock(T0)
    const mesh = createMesh(createMemoryRegistryHub(), clock)
    const b = mesh.add('buyer')
    const silent = mesh.add('silent')
    await mesh.send(b, { to: [silent.id], type: 'cfp', schema: MARKET_RFP, payload: { item: 'x', quantity: 1, currency: 'EUR' }, conv: 'c', proto: PROTO })
    await mesh.run()
    clock.advance(MARKET_PROTOCOL.timeouts?.rfp?.after as number)
    assert.equal(b.tracker.get({ conv: 'c', peer: silent.id })?.state, 'expired')
    assert.equal(silent.tracker.get({ conv: 'c', peer: b.id })?.state, 'expired')
    // A late proposal is refused at the buyer.
    await mesh.send(silent, { ...reply(silent.inbox[0], 'propose'), type: 'propose', schema: MARKET_PROPOSAL, payload: { rfp: 'x', item: 'x', quantity: 1, currency: 'EUR', unitPrice: 1, round: 1 }, unchecked: true })
    await mesh.run()
    assert.deepEqual(b.refused.map((r) => r.reason), ['conversation-ended'])
  })

  test('the audit applies timeouts between the envelopes\' own timestamps', async () => {
    const clock = createManualClock(T0)
    const mesh = createMesh(createMemoryRegistryHub(), clock)
    const b = mesh.add('buyer')
    const s = mesh.add('seller')
    await mesh.send(b, { to: [s.id], type: 'cfp', schema: MARKET_RFP, payload: { item: 'x', quantity: 1, currency: 'EUR' }, conv: 'c', proto: PROTO })
    clock.advance(61_000)
    await mesh.send(s, { to: [b.id], type: 'propose', schema: MARKET_PROPOSAL, payload: { rfp: 'x', item: 'x', quantity: 1, currency: 'EUR', unitPrice: 1, round: 1 }, conv: 'c', proto: PROTO, unchecked: true })
    const steps = mesh.pairLog('c', b.id, s.id)
    const strict = await auditConversation(steps, { registry: createSchemaRegistry() })
    assert.equal(strict.ok, false)
    assert.deepEqual(strict.steps[1].timeouts, [{ from: 'rfp', to: 'expired', at: T0 + 60_000 }])
    assert.equal(strict.steps[1].failure?.reason, 'conversation-ended')
    assert.ok((await auditConversation(steps, { registry: createSchemaRegistry(), timeouts: false })).ok)
  })

  test('contracts: one party cannot sign for the other, nor twice; strangers cannot sign', async () => {
    const clock = createManualClock(T0)
    const mesh = createMesh(createMemoryRegistryHub(), clock)
    const [b, s, x] = [mesh.add('b'), mesh.add('s'), mesh.add('x')]
    const terms = contractFromProposal({ rfp: 'r', item: 'i', quantity: 2, currency: 'EUR', unitPrice: 5, round: 1 }, { id: 'k', buyer: b.id, seller: s.id, created: T0 })
    const half = signContract(terms, b.key)
    assert.throws(() => signContract(half, b.key), /already signed/)
    assert.throws(() => signContract(half, x.key), /neither the buyer nor the seller/)
    const full = signContract(half, s.key)
    assert.ok(verifyContract(full).ok)
    assert.equal(verifyContract(half).ok, false)
    assert.equal(verifyContract({ ...full, signatures: [full.signatures[1], { ...full.signatures[1] }] }).ok, false)
    assert.equal(verifyContract({ ...full, signatures: [{ ...full.signatures[0], role: 'seller' }, full.signatures[1]] }).ok, false)
    assert.equal(verifyContract({ terms: { ...full.terms, total: 11 }, signatures: full.signatures }).ok, false)
    // The contract is valid under market/contract@2.0.1.
    assert.deepEqual((await b.registry.validator(MARKET_CONTRACT))(JSON.parse(JSON.stringify(full))), [])
    assert.ok(dagCbor.encode(full.terms).length > 0)
    assert.equal(NET, 'semantic-test')
  })
})

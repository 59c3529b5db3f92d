/**
 * The market protocol end to end across three node processes (test/helpers/mesh.ts): a
 * buyer on one node, sellers on two others; negotiation, a multicast RFP, offers, a
 * counter-offer, the contract signed by both, and an audit of the exported conversation.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Mesh } from '../helpers/mesh.ts'

describe('market protocol across node processes', () => {
  const mesh = new Mesh()
  before(async () => {
    await mesh.start()
    await mesh.start()
    await mesh.start()
  })
  after(async () => { await mesh.stopAll() })

  it('buyer and two sellers reach a contract signed by both, and the conversation audits clean', async () => {
    const [n1, n2, n3] = mesh.nodes
    const cheap = await n2.call('marketSeller', { agent: 'cheap', item: 'gpu-hours', ask: 900, floor: 700 })
    const dear = await n3.call('marketSeller', { agent: 'dear', item: 'gpu-hours', ask: 1200, floor: 1000 })
    const buyerId = await n1.call('marketAgent', { agent: 'buyer' })
    for (const [n, id] of [[n1, cheap], [n1, dear], [n2, buyerId], [n3, buyerId]] as const) await n.call('waitForAgent', { id })
    const r = await n1.call('marketBuy', { agent: 'buyer', sellers: [cheap, dear], rfp: { item: 'gpu-hours', quantity: 10, currency: 'EUR', maxUnitPrice: 1500 }, target: 650 }, 60_000)
    assert.equal(r.outcome.seller, cheap)
    assert.deepEqual(r.outcome.offers.map((o: any) => o.unitPrice).sort(), [1200, 900])
    // 650 is below the cheap seller's floor: it counters at 700, and the buyer accepts that.
    assert.equal(r.outcome.contract.terms.unitPrice, 700)
    assert.equal(r.outcome.contract.terms.total, 7000)
    assert.deepEqual(r.outcome.contract.signatures.map((s: any) => s.role).sort(), ['buyer', 'seller'])
    assert.deepEqual(r.steps.map((s: any) => s.performative), ['cfp', 'reject-proposal', 'propose', 'accept-proposal'])
    assert.deepEqual(r.audit, { ok: true, final: 'agreed', steps: 6 })
  })
})

/**
 * The market protocol end to end across three node processes (test/helpers/mesh.ts): a
 * buyer on one node, sellers on two others; negotiation, a multicast RFP, offers, a
 * counter-offer, the contract signed by both, and an audit of the exported conversation;
 * and a schema fetched by a late joiner after the node that published it was killed.
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

  it('a schema published on a node that is then killed is fetched by a node that joins later', async () => {
    const [n1, , n3] = mesh.nodes
    const pub = await n3.call('publishSchema', { uri: 'proc/thing@1.0.0', schema: { type: 'object', required: ['id'] }, agent: 'publisher' })
    assert.equal(pub.uri, 'proc/thing@1.0.0')
    for (let i = 0; i < 100 && !(await n1.call('hasSchema', { uri: 'proc/thing@1.0.0' })); i++) await new Promise(resolve => setTimeout(resolve, 100))
    n3.kill()
    assert.equal(await n1.call('hasSchema', { uri: 'proc/thing@1.0.0' }), true, 'n1 took the announcement in')
    const late = await mesh.start() // bootstraps from n1; never saw the announcement
    assert.equal(await late.call('hasSchema', { uri: 'proc/thing@1.0.0' }), false)
    for (let i = 0; i < 200 && (await late.call('status')).peers === 0; i++) await new Promise(resolve => setTimeout(resolve, 100))
    const got = await late.call('resolveSchema', { uri: 'proc/thing@1.0.0' })
    assert.equal(got.hash, pub.hash)
  })
})

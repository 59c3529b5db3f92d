/**
 * Delivery confirmations of direct messages and requests between two in-process nodes
 * (PROTOCOL.md 8.1): a confirmation frame crosses only when the envelope asks for one, and
 * a request's reply stands for its confirmation; a request whose reply does not come back
 * that way is confirmed explicitly once the recipient's node has held it ACK_HOLD_MS.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, Message, Subscription } from '../../src/node/types.ts'
import { Nodes, within } from '../helpers/api.ts'

async function next (sub: Subscription, what: string): Promise<Message> {
  const r = await within(sub[Symbol.asyncIterator]().next(), 10_000, what)
  if (r.done === true) throw new Error(`subscription ended waiting for ${what}`)
  return r.value
}

describe('delivery confirmations', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  let a: MeshNodeImpl
  let b: MeshNodeImpl
  let alice: Agent
  let echo: Agent
  let silent: Agent
  let plain: Agent

  before(async () => {
    a = await nodes.start()
    b = await nodes.start({ bootstrap: [a.multiaddrs()[0]] })
    alice = await a.agent('alice')
    echo = await b.agent('echo')
    echo.handle((m) => ({ echo: m.data() }))
    silent = await b.agent('silent')
    // Never answers (until its agent closes).
    silent.handle(async (_m, { signal }) => await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { reject(signal.reason) }) }))
    plain = await b.agent('plain')
    for (const id of [echo.id, silent.id, plain.id]) await a.waitForAgent(id, { signal: AbortSignal.timeout(30_000) })
    await b.waitForAgent(alice.id, { signal: AbortSignal.timeout(30_000) })
    // The first request opens the links both ways.
    await alice.request(echo.id, 0, { timeout: 10_000 })
  })

  after(async () => { await nodes.stopAll() })

  it('a request\'s reply confirms its delivery; replies themselves are not confirmed', async () => {
    const sentByB = b.router.confirmCounts.sent
    const sentByA = a.router.confirmCounts.sent
    const byReply = a.router.confirmCounts.byReply
    const n = 5
    for (let i = 0; i < n; i++) {
      const reply = await alice.request(echo.id, { i }, { timeout: 10_000 })
      assert.deepEqual(reply.data(), { echo: { i } })
    }
    // Whatever is still held is confirmed within ACK_HOLD_MS; count after that.
    for (let i = 0; i < 200 && b.router.heldConfirmations > 0; i++) await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal(b.router.heldConfirmations, 0)
    const viaReply = a.router.confirmCounts.byReply - byReply
    const explicit = b.router.confirmCounts.sent - sentByB
    // Normally every reply carries the confirmation; a reply that left later than ACK_HOLD_MS
    // (a stalled machine) is preceded by an explicit one. Never both, never neither.
    assert.ok(viaReply >= 1, 'at least one reply confirmed its request')
    assert.equal(viaReply + explicit, n)
    assert.equal(a.router.confirmCounts.sent - sentByA, 0, 'no confirmation for the replies')
  })

  it('a request that is not answered is still confirmed, once held ACK_HOLD_MS', async () => {
    const sentByB = b.router.confirmCounts.sent
    // A request envelope (replyTo, no correlation) sent without awaiting a reply: its
    // delivery is confirmed to the handler that will never answer.
    const r = await alice.send(silent.id, { q: 1 }, { replyTo: alice.id })
    assert.deepEqual(r.confirmed, [silent.id])
    assert.equal(b.router.confirmCounts.sent - sentByB, 1)
    await assert.rejects(alice.request(silent.id, { q: 2 }, { timeout: 400 }), { code: 'TimeoutError' })
  })

  it('a request to an agent without a handler is refused at once, with a confirmation frame', async () => {
    const sentByB = b.router.confirmCounts.sent
    await assert.rejects(alice.request(plain.id, 1, { timeout: 10_000 }), { code: 'NoRespondersError' })
    assert.equal(b.router.confirmCounts.sent - sentByB, 1)
  })

  it('a plain direct message is confirmed only when the sender asks', async () => {
    const inbox = plain.messages()
    const sentByB = b.router.confirmCounts.sent
    const unasked = await alice.send(plain.id, { n: 1 })
    assert.deepEqual(unasked.confirmed, [])
    assert.deepEqual((await next(inbox, 'unconfirmed message')).data(), { n: 1 })
    assert.equal(b.router.confirmCounts.sent - sentByB, 0)
    const asked = await alice.send(plain.id, { n: 2 }, { confirm: true })
    assert.deepEqual(asked.confirmed, [plain.id])
    assert.deepEqual((await next(inbox, 'confirmed message')).data(), { n: 2 })
    assert.equal(b.router.confirmCounts.sent - sentByB, 1)
    inbox.unsubscribe()
  })
})

/**
 * Delivery confirmations of direct messages and requests between two in-process nodes
 * (PROTOCOL.md 8.1): a confirmation frame crosses only when the envelope asks for one, and
 * a request's reply stands for its confirmation; a request whose reply does not come back
 * that way is confirmed explicitly once the recipient's node has held it ACK_HOLD_MS. A link
 * that reads nothing while a confirmation is awaited is dropped once the wait fails.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent, Message, Subscription } from '../../src/node/types.ts'
import type { FrameLink } from '../../src/net/frames.ts'
import { SILENT_LINK_MS } from '../../src/routing/router.ts'
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

  it('a handler\'s answer leaves without a promise (the router\'s sendNow), and still confirms its request', async () => {
    const router = b.router as unknown as { submit: (...args: unknown[]) => unknown }
    const submit = router.submit
    let submitted = 0
    router.submit = function (this: unknown, ...args: unknown[]) { submitted++; return submit.apply(this, args) }
    const byReply = a.router.confirmCounts.byReply
    try {
      const reply = await alice.request(echo.id, { n: 1 }, { timeout: 10_000 })
      assert.deepEqual(reply.data(), { echo: { n: 1 } })
    } finally {
      delete (router as { submit?: unknown }).submit
    }
    assert.equal(submitted, 0, 'the answer did not go through submit')
    assert.equal(a.router.confirmCounts.byReply - byReply, 1, 'the reply confirmed the request')
  })

  // Last: these break the link from a to b on purpose. A link that stops carrying anything
  // while the connection under it stays up must not be kept for the next request, which
  // would wait on it too (router `dropIfSilent`).
  describe('a dead link', () => {
    it('is dropped after a request over it times out, and the next request goes over a new one', async () => {
      await alice.request(echo.id, 0, { timeout: 10_000 })
      const dead = openLink(a, b.peerId)
      assert.ok(dead !== undefined && !dead.isClosed, 'a request went over an open link')
      // Everything written to the link from now on is lost, as on a stream whose other end
      // stopped reading; the libp2p connection itself stays up.
      dead.stream.send = () => true
      await assert.rejects(alice.request(echo.id, 1, { timeout: SILENT_LINK_MS + 500 }), { code: 'TimeoutError' })
      assert.equal(dead.isClosed, true, 'the silent link was closed')
      assert.equal(a.router.silentLinksDropped, 1)
      const reply = await alice.request(echo.id, 2, { timeout: 10_000 })
      assert.deepEqual(reply.data(), { echo: 2 })
      const fresh = openLink(a, b.peerId)
      assert.ok(fresh !== undefined && fresh !== dead && !fresh.isClosed)
    })

    it('is not dropped when a request times out faster than a live node confirms', async () => {
      await alice.request(echo.id, 3, { timeout: 10_000 })
      const link = openLink(a, b.peerId)
      assert.ok(link !== undefined)
      // Times out before the held confirmation (ACK_HOLD_MS) could come back: says nothing about the link.
      await assert.rejects(alice.request(silent.id, 4, { timeout: 50 }), { code: 'TimeoutError' })
      assert.equal(link.isClosed, false)
      assert.equal(openLink(a, b.peerId), link)
    })

    /**
     * The next request after `node`'s open link to `peer` starts failing every write still
     * gets its reply: the frame that link took (`n`: the request's number) goes over a new one.
     */
    async function overFailingLink (node: MeshNodeImpl, peer: string, n: number): Promise<void> {
      await alice.request(echo.id, n, { timeout: 10_000 })
      const failing = openLink(node, peer)
      assert.ok(failing !== undefined && !failing.isClosed, 'the message went over an open link')
      failing.stream.send = () => { throw new Error('write failed') }
      const reply = await alice.request(echo.id, n + 1, { timeout: 10_000 })
      assert.deepEqual(reply.data(), { echo: n + 1 })
      assert.equal(failing.isClosed, true)
      const fresh = openLink(node, peer)
      assert.ok(fresh !== undefined && fresh !== failing && !fresh.isClosed)
    }

    it('whose write fails under a request hands the request to a new link', async () => {
      await overFailingLink(a, b.peerId, 5)
    })

    it('whose write fails under a reply hands the reply to a new link', async () => {
      await overFailingLink(b, a.peerId, 7)
    })
  })
})

/** A node's open link to `peer` (the router keeps it private). */
function openLink (node: MeshNodeImpl, peer: string): FrameLink | undefined {
  return (node.router as unknown as { openLinks: Map<string, FrameLink> }).openLinks.get(peer)
}

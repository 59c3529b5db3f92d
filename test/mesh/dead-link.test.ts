/**
 * A link that stops carrying anything (its writes go nowhere, nothing comes back) while the
 * connection under it stays up: a request over it times out, and the link must not be kept
 * for the next request, which would wait on it too (router `dropIfSilent`).
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Agent } from '../../src/node/types.ts'
import type { FrameLink } from '../../src/net/frames.ts'
import { SILENT_LINK_MS } from '../../src/routing/router.ts'
import { Nodes } from '../helpers/api.ts'

/** The requesting node's open link to `peer` (the router keeps it private). */
function openLink (node: MeshNodeImpl, peer: string): FrameLink | undefined {
  return (node.router as unknown as { openLinks: Map<string, FrameLink> }).openLinks.get(peer)
}

describe('a dead link', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  let a: MeshNodeImpl
  let b: MeshNodeImpl
  let alice: Agent
  let echo: Agent

  before(async () => {
    a = await nodes.start()
    b = await nodes.start({ bootstrap: [a.multiaddrs()[0]] })
    alice = await a.agent('alice')
    echo = await b.agent('echo')
    echo.handle((m) => ({ echo: m.data() }))
    await a.waitForAgent(echo.id, { signal: AbortSignal.timeout(30_000) })
    await b.waitForAgent(alice.id, { signal: AbortSignal.timeout(30_000) })
    await alice.request(echo.id, 0, { timeout: 10_000 })
  })

  after(async () => { await nodes.stopAll() })

  it('is dropped after a request over it times out, and the next request goes over a new one', async () => {
    const dead = openLink(a, b.peerId)
    assert.ok(dead !== undefined && !dead.isClosed, 'the first request opened a link')
    // Everything written to the link from now on is lost, as on a connection whose other
    // end stopped reading; the libp2p connection itself stays up.
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
    const slow = await b.agent('slow')
    slow.handle(async () => { await new Promise(resolve => setTimeout(resolve, 1_000)); return 'late' })
    await a.waitForAgent(slow.id, { signal: AbortSignal.timeout(30_000) })
    await alice.request(echo.id, 3, { timeout: 10_000 })
    const link = openLink(a, b.peerId)
    assert.ok(link !== undefined)
    // Times out before the held confirmation (ACK_HOLD_MS) could come back: says nothing about the link.
    await assert.rejects(alice.request(slow.id, 4, { timeout: 50 }), { code: 'TimeoutError' })
    assert.equal(link.isClosed, false)
    assert.equal(openLink(a, b.peerId), link)
  })

  it('a link whose write fails under a request hands the request to a new link', async () => {
    await alice.request(echo.id, 5, { timeout: 10_000 })
    const failing = openLink(a, b.peerId)
    assert.ok(failing !== undefined && !failing.isClosed)
    failing.stream.send = () => { throw new Error('write failed') }
    const reply = await alice.request(echo.id, 6, { timeout: 10_000 })
    assert.deepEqual(reply.data(), { echo: 6 })
    assert.equal(failing.isClosed, true)
    const fresh = openLink(a, b.peerId)
    assert.ok(fresh !== undefined && fresh !== failing && !fresh.isClosed)
  })
})

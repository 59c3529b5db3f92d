/**
 * A publisher that awaits drain() while the only subscriber node is stopped (SIGSTOP: a
 * receiver descheduled for seconds, as on a loaded machine): drain() returns within
 * MAX_DRAIN_WAIT_MS each time however full that node's link is, and once the node runs
 * again it receives new publications (over the old connection, or a new one if libp2p's
 * connection monitor aborted it meanwhile — then counted in `status().topics`).
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { Nodes, within } from '../helpers/api.ts'
import { NodeProc } from '../helpers/mesh.ts'
import { MAX_DRAIN_WAIT_MS } from '../../src/routing/topic-path.ts'

describe('a subscriber node stopped under a buffered publisher', { timeout: 120_000 }, () => {
  const nodes = new Nodes()
  let b: NodeProc | undefined
  after(async () => {
    b?.child.kill('SIGCONT')
    await b?.stop()
    await nodes.stopAll()
  })

  it('drain() is held back by the stopped node but returns within MAX_DRAIN_WAIT_MS, and the node receives again once it runs', async () => {
    const a = await nodes.start()
    const pub = await a.agent('pub')
    b = await new NodeProc({ bootstrap: [a.multiaddrs()[0]] }).ready()
    await b.call('subscribe', { agent: 's', sub: 's1', pattern: 'stall/x' })
    for (let i = 0; i < 400 && !a.topicInterest('stall/x').includes(b.peerId); i++) await new Promise(resolve => setTimeout(resolve, 25))
    assert.ok(a.topicInterest('stall/x').includes(b.peerId), 'interest of the subscriber node arrived')

    b.child.kill('SIGSTOP')
    const pad = 'x'.repeat(1000)
    let longest = 0
    const t0 = performance.now()
    // Until one drain() has waited its longest (the node takes nothing): bounded in count and time.
    for (let i = 0; i < 200_000 && performance.now() - t0 < 30_000 && longest < MAX_DRAIN_WAIT_MS - 500; i++) {
      if (!pub.publishBuffered('stall/x', { i, pad })) {
        const w0 = performance.now()
        await within(pub.drain(), MAX_DRAIN_WAIT_MS + 3000, 'drain() while the subscriber node is stopped')
        longest = Math.max(longest, performance.now() - w0)
      }
      if (i % 256 === 255) await new Promise(resolve => setImmediate(resolve))
    }
    assert.ok(longest >= MAX_DRAIN_WAIT_MS - 500, `drain() was held back by the stopped node (longest wait ${Math.round(longest)} ms)`)
    b.child.kill('SIGCONT')

    // Running again: a new publication reaches it (sent again until it does, bounded).
    const node = b
    let got = false
    for (let k = 0; k < 60 && !got; k++) {
      await pub.publish('stall/x', { end: k })
      try {
        await node.until(() => node.received('s1').some(m => (m.data as { end?: number }).end !== undefined), 'a publication after SIGCONT', 1000)
        got = true
      } catch { /* not yet: the node catches up, or its interest comes back over a new link */ }
    }
    assert.ok(got, 'the subscriber node receives again once it runs')
  })
})

/**
 * Receipts are confirmed by the sender's node once its log has the acknowledgements
 * (PROTOCOL.md 8.4.4): a home node whose receipt reached a sender's node that died before
 * recording it (here: frozen with SIGSTOP, so the frame is taken by the kernel and never
 * read, then SIGKILLed) keeps the receipt and forwards it again once that node is back; a
 * receipt for a sender agent that is not attached is confirmed at once and not retried. The
 * sender agent's `receipts()` gets each receipt once, however often it is taken.
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'
import { createNode, type MeshNodeImpl } from '../../src/node/mesh-node.ts'
import type { Subscription } from '../../src/node/types.ts'
import { Nodes, take, tempDir, until } from '../helpers/api.ts'
import { NodeProc } from '../helpers/mesh.ts'
import { freePort } from '../helpers/cli.ts'

describe('receipt confirmations', () => {
  const nodes = new Nodes()
  const procs: NodeProc[] = []
  const dirs: string[] = []
  /** A home node with hana, and alice's node bootstrapped from it, each knowing the other's agent. */
  async function homeAndSender () {
    const home = await nodes.start()
    const a = await nodes.start({ bootstrap: [home.multiaddrs()[0]] })
    const hana = await home.agent('hana')
    const alice = await a.agent('alice')
    await a.waitForAgent(hana.id)
    await home.waitForAgent(alice.id)
    return { home, a, hana, alice }
  }
  after(async () => {
    for (const p of procs) { p.child.kill('SIGCONT'); p.kill() }
    await Promise.allSettled(procs.map(async p => { await p.stop() }))
    await nodes.stopAll()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  test('a receipt the sender\'s node took but never recorded (frozen, then killed) is forwarded again after its restart', { timeout: 120_000 }, async () => {
    const home = await nodes.start()
    const hana = await home.agent('hana')
    // The sender's node in its own process, on a fixed port and data dir (started again as the same node).
    const dir = tempDir('fedmesh-receipt-')
    dirs.push(dir)
    const opts = { dir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], bootstrap: [home.multiaddrs()[0]] }
    let s = await new NodeProc(opts).ready()
    procs.push(s)
    const alice = await s.call<string>('agent', { name: 'alice' })
    await s.call('waitForAgent', { id: hana.id })
    await home.waitForAgent(alice as never)
    const sent: string[] = []
    for (let i = 1; i <= 3; i++) sent.push((await s.call<{ id: string }>('send', { agent: 'alice', to: hana.id, data: { i }, options: { durable: true } })).id)

    // Its log has the `sent` records (written within a second of the sends).
    const logged = async (status: string): Promise<string[]> => (await s.call<Array<{ id: string }>>('log', { filter: { event: 'sent', status } })).map(r => r.id)
    await until(async () => (await logged('pending')).length === 3, 'the sender\'s log written')
    // Frozen: the receipt's frame is taken by the kernel, the node never reads it.
    s.child.kill('SIGSTOP')
    assert.deepEqual((await take(hana.messages(), 3)).map(m => (m.data() as { i: number }).i), [1, 2, 3])
    await until(async () => (await home.store.stats(hana.id)).inbox.count === 0, 'inbox acknowledged')
    // No confirmation comes (5 s): the receipt is kept for another try.
    await until(() => (home.status().store?.durable.receiptsPending ?? 0) > 0, 'the unconfirmed receipt kept', 20_000)
    s.child.kill('SIGCONT')
    s.kill()
    await s.until(() => s.exited, 'the sender\'s node gone')

    // The same node again: the home's next try reaches it, and its log learns the acknowledgements.
    s = await new NodeProc(opts).ready()
    procs.push(s)
    await s.call('agent', { name: 'alice' })
    await until(async () => (await logged('acked')).length === 3, 'the sender\'s log acked after its restart', 60_000)
    assert.deepEqual((await logged('acked')).sort(), [...sent].sort())
    await until(() => home.status().store?.durable.receiptsPending === 0, 'nothing left to forward')
    assert.ok((home.status().store?.durable.receiptsRetried ?? 0) > 0)
  })

  test('a receipt for a sender agent that is not attached is confirmed by its node (log marked, not retried)', async () => {
    const { home, a, hana, alice } = await homeAndSender()
    const sent = []
    for (let i = 1; i <= 2; i++) sent.push(await alice.send(hana.id, { i }, { durable: true }))
    await alice.close()
    assert.equal((await take(hana.messages(), 2)).length, 2)
    await until(async () => (await a.log({ event: 'sent', status: 'acked' })).records.length === 2, 'the sender\'s log acked')
    // Confirmed: nothing kept at the home node, nothing retried.
    await new Promise(resolve => setTimeout(resolve, 1500))
    assert.equal(home.status().store?.durable.receiptsPending, 0)
    assert.equal(home.status().store?.durable.receiptsRetried, 0)
  })
  test('a receipt whose log marks failed is refused; the home node\'s next try is taken anew, not confirmed as a duplicate', async () => {
    const { home, a, hana, alice } = await homeAndSender()
    // The sender's log fails to take the first receipt's marks (a store error), then works again.
    const rec = a.recorder
    const real = rec.updateStatus.bind(rec)
    let failures = 0
    rec.updateStatus = async (...args: Parameters<typeof rec.updateStatus>) => {
      if (failures === 0 && args[1] === 'acked') { failures++; return false }
      return await real(...args)
    }
    const receipts = count(alice.receipts())
    const sent = await alice.send(hana.id, { i: 1 }, { durable: true })
    assert.equal((await take(hana.messages(), 1)).length, 1)
    await until(async () => (await a.log({ event: 'sent', status: 'acked' })).records.length === 1, 'the sender\'s log acked on the next try', 20_000)
    assert.equal((await a.log({ event: 'sent', status: 'acked' })).records[0]?.id, sent.id)
    assert.equal(failures, 1)
    assert.ok((home.status().store?.durable.receiptsRetried ?? 0) > 0, 'the refused receipt was tried again')
    await until(() => home.status().store?.durable.receiptsPending === 0, 'nothing left to forward')
    // Handed to alice once: not by the refused try, by the one that was taken.
    await new Promise(resolve => setTimeout(resolve, 500))
    assert.equal(receipts.n, 1, 'alice got the receipt once')
  })

  test('a receipt taken again after a lost confirmation and a restart of the sender\'s node is not handed over twice', { timeout: 120_000 }, async () => {
    const home = await nodes.start()
    const hana = await home.agent('hana')
    const dir = tempDir('fedmesh-receipt-')
    dirs.push(dir)
    const opts = { dir, listen: [`/ip4/127.0.0.1/tcp/${await freePort()}`], bootstrap: [home.multiaddrs()[0]], api: false as const }
    let a: MeshNodeImpl = await createNode(opts)
    try {
      // The sender's node takes receipts but its confirmations are lost.
      const router = (a as unknown as { router: { confirmTaken: (...args: unknown[]) => void } }).router
      router.confirmTaken = () => {}
      let alice = await a.agent('alice')
      await a.waitForAgent(hana.id)
      await home.waitForAgent(alice.id)
      const first = count(alice.receipts())
      const sent = await alice.send(hana.id, { i: 1 }, { durable: true })
      assert.equal((await take(hana.messages(), 1)).length, 1)
      await until(() => first.n === 1, 'alice got the receipt')
      await until(async () => (await a.log({ event: 'sent', status: 'acked' })).records.length === 1, 'the sender\'s log acked')
      await until(() => (home.status().store?.durable.receiptsPending ?? 0) > 0, 'the unconfirmed receipt kept', 20_000)

      // The same node again, confirming now: the home's next try is confirmed, not handed over.
      await a.stop()
      a = await createNode(opts)
      alice = await a.agent('alice')
      const again = count(alice.receipts())
      await until(() => home.status().store?.durable.receiptsPending === 0, 'the receipt confirmed after the restart', 60_000)
      assert.ok((home.status().store?.durable.receiptsRetried ?? 0) > 0, 'the receipt was tried again')
      await new Promise(resolve => setTimeout(resolve, 500))
      assert.equal(again.n, 0, 'the receipt was not handed over again')
      assert.equal((await a.log({ event: 'sent', status: 'acked' })).records[0]?.id, sent.id)
    } finally {
      await a.stop()
    }
  })
})

/** Counts what `sub` yields, as it comes. */
function count (sub: Subscription): { n: number } {
  const c = { n: 0 }
  void (async () => { for await (const _ of sub) c.n++ })()
  return c
}

/**
 * Durable inboxes with application acknowledgements (`messages({ ack: 'manual' })`,
 * `agent.ack(msg)`): a message the application took but never acknowledged — its process
 * was killed while acting on it — comes again; acknowledged ones never do; the sender's
 * receipt waits for the acknowledgement. The default (`ack: 'auto'`) marks on take.
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Message } from '../../src/node/types.ts'
import { parseReceipt } from '../../src/delivery/receipts.ts'
import { InvalidArgumentError } from '../../src/core/errors.ts'
import { Nodes, take, within } from '../helpers/api.ts'
import { Procs, ROOT, type Proc } from '../helpers/cli.ts'

const ids = (ms: Message[]): number[] => ms.map(m => (m.data() as { i: number }).i)

describe('manual acknowledgements, in process', () => {
  const nodes = new Nodes()
  after(async () => { await nodes.stopAll() })

  test('receipts wait for ack(); an agent attached anew gets the unacknowledged message again, not the others', async () => {
    const b = await nodes.start()
    const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
    const bob = await b.agent('bob')
    const alice = await a.agent('alice')
    await a.waitForAgent(bob.id)
    const receipts = alice.receipts()
    const rit = receipts[Symbol.asyncIterator]()
    const inbox = bob.messages({ ack: 'manual' })
    const sent = []
    for (let i = 1; i <= 3; i++) sent.push(await alice.send(bob.id, { i }, { durable: true }))
    const got = await take(inbox, 3)
    assert.deepEqual(ids(got), [1, 2, 3])
    // Nothing is receipted before the application acknowledges.
    const early = await Promise.race([rit.next(), new Promise(resolve => setTimeout(() => { resolve('none') }, 700))])
    assert.equal(early, 'none')
    await bob.ack(got[0])
    await bob.ack(got[2])
    await bob.ack(got[2]) // idempotent
    const covered = new Set<string>()
    while (covered.size < 2) {
      const r = await within(rit.next(), 10_000, 'receipt')
      for (const id of parseReceipt(r.value.envelope).ids) covered.add(id)
    }
    assert.deepEqual([...covered].sort(), [sent[0].id, sent[2].id].sort())
    // A non-durable message needs no acknowledgement; a message not handed over here is refused.
    const plain = bob.messages()
    await alice.send(bob.id, { i: 99 })
    const [p] = await take(plain, 1)
    await bob.ack(p)
    plain.unsubscribe()
    const other = await b.agent('other')
    await assert.rejects(other.ack(got[1]), InvalidArgumentError)
    assert.throws(() => bob.messages({ ack: 'sometimes' as 'auto' }), InvalidArgumentError)

    // As if bob's process stopped while working on 2: a new agent object for the same key.
    inbox.unsubscribe()
    await bob.close()
    const bob2 = await b.agent('bob')
    const inbox2 = bob2.messages({ ack: 'manual' })
    await alice.send(bob.id, { i: 4 }, { durable: true })
    const again = await take(inbox2, 2)
    assert.deepEqual(ids(again), [2, 4])
    await bob2.ack(again[0])
    await bob2.ack(again[1])
    while (covered.size < 4) {
      const r = await within(rit.next(), 10_000, 'receipt')
      for (const id of parseReceipt(r.value.envelope).ids) covered.add(id)
    }
    receipts.unsubscribe()
  })
})

describe('manual acknowledgements across a killed consumer process', () => {
  const nodes = new Nodes()
  const procs = new Procs()
  after(async () => { await procs.killAll(); await nodes.stopAll() })
  const consumer = (url: string, token: string, seed: string, ack: 'auto' | 'manual', hold: number[]): Proc =>
    procs.start([JSON.stringify({ url, token, seed, ack, hold })], { script: join(ROOT, 'test/fixtures/inbox-consumer.ts') })

  for (const ack of ['manual', 'auto'] as const) {
    test(`ack: '${ack}' — the message being worked on when the process was killed ${ack === 'manual' ? 'comes again' : 'is not delivered again (marked on take)'}`, async () => {
      const home = await nodes.start({ api: '127.0.0.1:0' })
      const a = await nodes.start({ bootstrap: [home.multiaddrs()[0]] })
      const alice = await a.agent('alice')
      const seed = randomBytes(32).toString('hex')
      const first = consumer(home.apiUrl as string, home.apiToken, seed, ack, [2])
      const { id } = await first.stdout.waitJson(v => v.event === 'ready', 'consumer ready', 30_000)
      await a.waitForAgent(id)
      for (let i = 1; i <= 3; i++) await alice.send(id, { i }, { durable: true })
      await first.stdout.waitJson(v => v.event === 'msg' && v.i === 3, 'message 3', 20_000)
      if (ack === 'manual') await first.stdout.waitJson(v => v.event === 'acked' && v.i === 3, 'ack of 3', 20_000)
      first.kill('SIGKILL')
      await first.exited
      const second = consumer(home.apiUrl as string, home.apiToken, seed, ack, [])
      await second.stdout.waitJson(v => v.event === 'ready', 'consumer ready again', 30_000)
      await alice.send(id, { i: 4 }, { durable: true })
      await second.stdout.waitJson(v => v.event === 'msg' && v.i === 4, 'message 4', 20_000)
      const seen = second.stdout.lines.map(l => JSON.parse(l) as { event: string, i?: number }).filter(v => v.event === 'msg').map(v => v.i)
      assert.deepEqual(seen, ack === 'manual' ? [2, 4] : [4])
      second.kill('SIGTERM')
      await second.exited
    })
  }
})

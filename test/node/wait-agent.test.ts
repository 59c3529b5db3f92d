/**
 * waitForAgent on a loaded node: a record that arrives by another path (a control-topic
 * announcement, a peer's directory) while a DHT query is running ends the wait at once,
 * instead of after the query's own bound.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Nodes } from '../helpers/api.ts'

const nodes = new Nodes()
after(async () => { await nodes.stopAll() })

test('a record heard during a DHT query ends the query: the wait does not sit out its bound', async () => {
  const b = await nodes.start()
  const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
  const bob = await b.agent('bob')
  const record = b.router.knownAgent(bob.id)
  assert.ok(record != null)
  for (let i = 0; i < 200 && a.net.getPeers().length === 0; i++) await new Promise(resolve => setTimeout(resolve, 50))
  // Forget bob if the announcement already came. The DHT lookup is replaced by a test double
  // that behaves as a starved node's query does (it never answers until aborted); bob's
  // record arrives while it runs.
  const directory = (a.router as unknown as { directory: Map<string, unknown> }).directory
  directory.delete(bob.id)
  const reasons: string[] = []
  const routing = a.net.contentRouting as unknown as { get: (key: Uint8Array, o: { signal: AbortSignal }) => Promise<Uint8Array> }
  routing.get = async (_key, o) => {
    directory.set(bob.id, record)
    return await new Promise<never>((_resolve, reject) => {
      o.signal.addEventListener('abort', () => { reasons.push((o.signal.reason as Error).name); reject(o.signal.reason) }, { once: true })
    })
  }
  const found = await a.waitForAgent(bob.id, { signal: AbortSignal.timeout(60_000) })
  assert.equal(found.agent, bob.id)
  // One query, ended by the record's arrival (an abort), not by its own bound (a timeout).
  assert.deepEqual(reasons, ['AbortError'])
})

test('a record whose announcement was missed is found in a connected peer\'s directory while the DHT never answers', async () => {
  const b = await nodes.start()
  const a = await nodes.start({ bootstrap: [b.multiaddrs()[0]] })
  const carol = await b.agent('carol')
  // Once b's announcements (at the attach, and again when a was identified) are over...
  for (let i = 0; i < 400 && a.router.knownAgent(carol.id) == null; i++) await new Promise(resolve => setTimeout(resolve, 50))
  await new Promise(resolve => setTimeout(resolve, 2000))
  // ...a has missed them (forgotten here), and its DHT queries never finish (a starved node).
  const directory = (a.router as unknown as { directory: Map<string, unknown> }).directory
  directory.delete(carol.id)
  const routing = a.net.contentRouting as unknown as { get: (key: Uint8Array, o: { signal: AbortSignal }) => Promise<Uint8Array> }
  let queries = 0
  routing.get = async (_key, o) => {
    queries++
    return await new Promise<never>((_resolve, reject) => { o.signal.addEventListener('abort', () => { reject(o.signal.reason) }, { once: true }) })
  }
  // Bounded for the old code, which finds nothing (every query cut off by its bound) until then.
  const found = await a.waitForAgent(carol.id, { signal: AbortSignal.timeout(20_000) })
  assert.equal(found.agent, carol.id)
  assert.ok(queries >= 1)
})

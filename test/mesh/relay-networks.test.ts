/**
 * Direct delivery to an agent whose node is not directly dialable (it listens only through
 * a circuit relay v2 reservation), and several networks coexisting on the same hosts.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { Mesh, NodeProc } from '../helpers/mesh.ts'

describe('circuit relay', { timeout: 90_000 }, () => {
  const mesh = new Mesh()
  after(async () => { await mesh.stopAll() })

  it('delivers to an agent reachable only through a relay', async () => {
    const relay = await mesh.start({ roles: ['gateway'] })
    // No TCP listener: only a reservation on the relay makes this node reachable.
    const hidden = new NodeProc({ listen: ['/p2p-circuit'], bootstrap: [relay.addresses[0]] })
    mesh.nodes.push(hidden)
    await hidden.ready()
    const hiddenAgent = await hidden.call('agent', { name: 'hidden' })
    await hidden.call('inbox', { agent: 'hidden', sub: 'in' })
    await hidden.call('handle', { agent: 'hidden', kind: 'echo' })
    // Its record must come to carry the circuit address once the reservation is made.
    let addrs: string[] = []
    for (let i = 0; i < 100 && !addrs.some(a => a.includes('/p2p-circuit/')); i++) {
      addrs = (await hidden.call('status')).addresses
      if (!addrs.some(a => a.includes('/p2p-circuit/'))) await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.ok(addrs.length > 0 && addrs.every(a => a.includes('/p2p-circuit/')), `only relayed addresses: ${addrs.join(' ')}`)

    const sender = await mesh.start({ bootstrap: [relay.addresses[0]] })
    await sender.call('agent', { name: 'sender' })
    await sender.call('waitForAgent', { id: hiddenAgent })
    let confirmed: string[] = []
    for (let i = 0; i < 50 && confirmed.length === 0; i++) {
      try {
        confirmed = (await sender.call('send', { agent: 'sender', to: hiddenAgent, data: { via: 'relay' }, options: { confirm: true } })).confirmed
      } catch (err) {
        // The record may still carry no circuit address (announcement in flight): retry, bounded.
        if (i === 49) throw err
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    }
    assert.deepEqual(confirmed, [hiddenAgent])
    await hidden.until(() => hidden.received('in').some(m => m.data?.via === 'relay'), 'relayed message')
    const reply = await sender.call('request', { agent: 'sender', to: hiddenAgent, data: 'ping' })
    assert.equal(reply.data.by, 'hidden')
    // The hidden node can dial out: once it has learnt the sender's address over the relayed
    // connection, the two end up directly connected and traffic stops using the relay.
    const hiddenPeer = (await hidden.call('status')).peerId
    let view: any
    for (let i = 0; i < 100; i++) {
      view = (await sender.call('peers')).find((p: any) => p.peerId === hiddenPeer)
      if (view?.relayed === false && view.status === 'connected') break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.equal(view?.relayed, false, 'connection upgraded from relayed to direct')
  })
})

describe('several networks on the same hosts', { timeout: 90_000 }, () => {
  const mesh = new Mesh()
  after(async () => { await mesh.stopAll() })

  it('each network only sees its own traffic and agents', async () => {
    const a1 = await mesh.start({ network: 'alpha' })
    const a2 = await mesh.start({ network: 'alpha' })
    const b1 = await mesh.start({ network: 'beta', bootstrap: [a1.addresses[0]] })
    const b2 = await mesh.start({ network: 'beta', bootstrap: [b1.addresses[0], a1.addresses[0]] })
    const ida2 = await a2.call('agent', { name: 'a2' })
    const idb2 = await b2.call('agent', { name: 'b2' })
    await a1.call('agent', { name: 'a1' })
    await b1.call('agent', { name: 'b1' })
    await a2.call('subscribe', { agent: 'a2', pattern: '#', sub: 'all' })
    await b2.call('subscribe', { agent: 'b2', pattern: '#', sub: 'all' })
    // Each network works on its own: publish until each subscriber hears its own network.
    for (let i = 0; i < 100 && (a2.received('all').length === 0 || b2.received('all').length === 0); i++) {
      await a1.call('publish', { agent: 'a1', topic: 'news/alpha', data: 'alpha' })
      await b1.call('publish', { agent: 'b1', topic: 'news/beta', data: 'beta' })
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    assert.ok(a2.received('all').length > 0 && b2.received('all').length > 0, 'both networks deliver')
    assert.ok(a2.received('all').every(m => m.data === 'alpha'), 'alpha never sees beta traffic')
    assert.ok(b2.received('all').every(m => m.data === 'beta'), 'beta never sees alpha traffic')
    // Agents of one network are not found from the other.
    await b1.call('waitForAgent', { id: idb2 })
    await assert.rejects(b1.call('send', { agent: 'b1', to: ida2, data: 1, options: { confirm: true } }), { code: 'AgentNotFoundError' })
    await a1.call('waitForAgent', { id: ida2 })
    await assert.rejects(a1.call('send', { agent: 'a1', to: idb2, data: 1, options: { confirm: true } }), { code: 'AgentNotFoundError' })
  })
})

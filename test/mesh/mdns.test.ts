/**
 * mDNS discovery, exercised only inside two network namespaces this test creates and
 * joins with a veth pair (mDNS multicasts on the LAN; the network rule keeps it off real
 * ones). Two nodes with no bootstrap list find each other and exchange messages.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { Mesh, NodeProc } from '../helpers/mesh.ts'

const ns = [`fm${process.pid}a`, `fm${process.pid}b`]
const ips = ['10.213.7.1', '10.213.7.2']

function ip (...args: string[]): void { execFileSync('/usr/sbin/ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }) }

function canMakeNamespaces (): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    ip('netns', 'add', `fm${process.pid}probe`)
    ip('netns', 'del', `fm${process.pid}probe`)
    return undefined
  } catch (err) {
    return `cannot create network namespaces: ${(err as Error).message.split('\n')[0]}`
  }
}

const missing = canMakeNamespaces()
if (missing != null && process.env.CI === 'true') throw new Error(`mDNS test needs network namespaces under CI: ${missing}`)

describe('mDNS inside private network namespaces', { timeout: 90_000, skip: missing }, () => {
  const mesh = new Mesh()

  before(() => {
    for (const n of ns) { ip('netns', 'add', n); ip('-n', n, 'link', 'set', 'lo', 'up') }
    ip('link', 'add', `${ns[0]}v`, 'type', 'veth', 'peer', 'name', `${ns[1]}v`)
    ns.forEach((n, i) => {
      ip('link', 'set', `${n}v`, 'netns', n)
      ip('-n', n, 'addr', 'add', `${ips[i]}/24`, 'dev', `${n}v`)
      ip('-n', n, 'link', 'set', `${n}v`, 'up')
      // mDNS sends to 224.0.0.251: route multicast out of the veth.
      ip('-n', n, 'route', 'add', '224.0.0.0/4', 'dev', `${n}v`)
    })
  })

  after(async () => {
    await mesh.stopAll()
    for (const n of ns) { try { ip('netns', 'del', n) } catch {} }
  })

  it('two nodes with no bootstrap list discover each other and exchange messages', async () => {
    const nodes = ns.map((n, i) => new NodeProc({ listen: [`/ip4/${ips[i]}/tcp/0`], mdns: true }, n))
    mesh.nodes.push(...nodes)
    const [a, b] = await Promise.all(nodes.map(n => n.ready()))
    const ida = await a.call('agent', { name: 'a' })
    const idb = await b.call('agent', { name: 'b' })
    await b.call('handle', { agent: 'b', kind: 'echo' })
    await b.call('subscribe', { agent: 'b', pattern: 'lan/#', sub: 'lan' })
    for (let i = 0; i < 100 && (await a.call('status')).peers === 0; i++) await new Promise(resolve => setTimeout(resolve, 200))
    assert.equal((await a.call('status')).peers, 1, 'found the other node by mDNS')
    await a.call('waitForAgent', { id: idb })
    const reply = await a.call('request', { agent: 'a', to: idb, data: 'hi' })
    assert.equal(reply.data.by, 'b')
    for (let i = 0; i < 100 && b.received('lan').length === 0; i++) {
      await a.call('publish', { agent: 'a', topic: 'lan/x', data: i })
      await b.until(() => b.received('lan').length > 0, 'lan message', 200).catch(() => {})
    }
    assert.ok(b.received('lan').length > 0)
    assert.equal(b.received('lan')[0].from, ida)
  })
})

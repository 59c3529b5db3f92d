/**
 * The `fedmesh` command as a new user drives it: real processes on loopback, temp data
 * dirs, free ports. init, node start (ready line), status, agents, sub/pub between two
 * node processes, send, request to responders in a third process (and its typed errors),
 * error cases, clean shutdown on signals. Every wait is on a line or an exit, bounded.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Procs, ROOT, assertOneLineError, freePort, type Proc, type RunResult } from '../helpers/cli.ts'

const DID = /^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/

interface Ready { event: 'ready', peerId: string, addresses: string[], api: string }

describe('fedmesh CLI', { timeout: 240_000 }, () => {
  const procs = new Procs()
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-cli-'))
  const d1 = join(root, 'one')
  const d2 = join(root, 'two')
  const fedmesh = async (...args: string[]): Promise<RunResult> => await procs.run(args)
  let port1: number
  let peerId1: string
  let node1: Proc
  let ready1: Ready
  let node2: Proc
  let ready2: Ready

  before(async () => { port1 = await freePort() })
  after(async () => {
    await procs.killAll()
    rmSync(root, { recursive: true, force: true })
  })

  describe('usage errors (exit 2, one line)', () => {
    const cases: Array<[string, string[], RegExp]> = [
      ['unknown flag', ['status', '--dir', d1, '--bogus'], /Unknown option '--bogus'/],
      ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
      ['missing --data', ['pub', 'news/x', '--dir', d1], /--data JSON is required/],
      ['bad JSON', ['pub', 'news/x', '--dir', d1, '--data', '{nope'], /--data is not valid JSON/],
      ['bad topic', ['pub', 'news//x', '--dir', d1, '--data', '1'], /InvalidTopicError/],
      ['wildcard topic', ['pub', 'news/#', '--dir', d1, '--data', '1'], /InvalidTopicError/],
      ['bad pattern', ['sub', 'a/#/b', '--dir', d1], /InvalidTopicError/],
      ['missing argument', ['pub', '--dir', d1, '--data', '1'], /missing TOPIC/],
      ['extra argument', ['status', 'extra', '--dir', d1], /unexpected argument "extra"/],
      ['bad agent id', ['send', 'bob', '--dir', d1, '--data', '1'], /not an agent id/],
      ['bad number', ['request', 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', '--dir', d1, '--data', '1', '--timeout', 'soon'], /--timeout must be an integer/],
      ['bad role', ['init', '--dir', d1, '--roles', 'king'], /unknown role "king"/],
      ['missing subcommand', ['agent'], /agent needs a subcommand/]
    ]
    for (const [what, args, re] of cases) {
      it(what, async () => {
        const r = await fedmesh(...args)
        assert.equal(r.code, 2, r.stderr)
        assert.equal(r.stdout, '')
        assertOneLineError(r, re)
      })
    }

    it('--help works for the command and for each subcommand', async () => {
      const top = await fedmesh('--help')
      assert.equal(top.code, 0)
      for (const c of ['init', 'node start', 'status', 'agent create', 'sub PATTERN', 'pub TOPIC', 'send AGENT', 'request AGENT', 'rejections']) assert.ok(top.stdout.includes(c), c)
      const pub = await fedmesh('pub', '--help')
      assert.equal(pub.code, 0)
      assert.match(pub.stdout, /usage: fedmesh pub TOPIC/)
      assert.match(pub.stdout, /--data JSON/)
      const start = await fedmesh('node', 'start', '--help')
      assert.match(start.stdout, /--bootstrap MA/)
    })
  })

  describe('a node that is not running (exit 1, naming dir and address)', () => {
    it('no node in the dir at all', async () => {
      const r = await fedmesh('status', '--dir', join(root, 'nothing'))
      assert.equal(r.code, 1)
      assertOneLineError(r, /no fedmesh node in .*nothing.*fedmesh init/)
    })

    it('initialised but not started', async () => {
      const dir = join(root, 'stopped')
      const port = await freePort()
      assert.equal((await fedmesh('init', '--dir', dir, '--api', `127.0.0.1:${port}`)).code, 0)
      for (const args of [['status'], ['pub', 'a/b', '--data', '1'], ['sub', 'a/#']]) {
        const r = await fedmesh(...args, '--dir', dir)
        assert.equal(r.code, 1, args.join(' '))
        assertOneLineError(r, new RegExp(`${dir.replace(/[/.]/g, '\\$&')}.*127\\.0\\.0\\.1:${port}`))
      }
    })
  })

  describe('two nodes', () => {
    it('init creates the identity and config and prints the peer id', async () => {
      const r = await fedmesh('init', '--dir', d1, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${port1}`, '--network', 'clitest')
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.trim(), /^12D3KooW\w+$/)
      peerId1 = r.stdout.trim()
      // Secrets are private to the user.
      for (const f of ['node.key', 'api.token']) assert.equal(statSync(join(d1, f)).mode & 0o777, 0o600, f)
      const config = JSON.parse(readFileSync(join(d1, 'config.json'), 'utf8'))
      assert.equal(config.api, `127.0.0.1:${port1}`)
      assert.deepEqual(config.listen, ['/ip4/127.0.0.1/tcp/0'])
      assert.equal(config.network, 'clitest')
      // Running it again keeps the identity.
      assert.equal((await fedmesh('init', '--dir', d1)).stdout, r.stdout)
    })

    it('node start prints a ready line', async () => {
      node1 = procs.start(['node', 'start', '--dir', d1, '--log-level', 'warn'])
      ready1 = await node1.stdout.waitJson<Ready>(v => v.event === 'ready', 'ready line of node 1', 30_000)
      assert.equal(ready1.peerId, peerId1)
      assert.equal(ready1.api, `http://127.0.0.1:${port1}`)
      assert.ok(ready1.addresses.length > 0 && ready1.addresses.every(a => a.startsWith('/ip4/127.0.0.1/tcp/') && a.endsWith(`/p2p/${peerId1}`)))
    })

    it('status --json and status', async () => {
      const r = await fedmesh('status', '--dir', d1, '--json')
      assert.equal(r.code, 0, r.stderr)
      const s = JSON.parse(r.stdout)
      assert.equal(s.peerId, ready1.peerId)
      assert.equal(s.network, 'clitest')
      assert.deepEqual(s.addresses, ready1.addresses)
      assert.equal(typeof s.peers, 'number')
      const text = await fedmesh('status', '--dir', d1)
      assert.match(text.stdout, new RegExp(`peer id\\s+${ready1.peerId}`))
    })

    it('agent create and agent list', async () => {
      const r = await fedmesh('agent', 'create', 'alice', '--dir', d1)
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.trim(), DID)
      const again = await fedmesh('agent', 'create', 'alice', '--dir', d1)
      assert.equal(again.stdout, r.stdout)
      const list = JSON.parse((await fedmesh('agent', 'list', '--dir', d1, '--json')).stdout)
      assert.ok(list.some((a: { name: string, id: string }) => a.name === 'alice' && a.id === r.stdout.trim()))
      const bad = await fedmesh('agent', 'create', 'no way', '--dir', d1)
      assert.equal(bad.code, 2)
      assertOneLineError(bad, /InvalidArgumentError/)
    })

    it('a second node, bootstrapped from the first, starts in an empty dir', async () => {
      const port2 = await freePort()
      node2 = procs.start(['node', 'start', '--dir', d2, '--network', 'clitest', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${port2}`, '--bootstrap', ready1.addresses[0], '--log-level', 'warn'])
      ready2 = await node2.stdout.waitJson<Ready>(v => v.event === 'ready', 'ready line of node 2', 30_000)
      assert.notEqual(ready2.peerId, ready1.peerId)
      assert.equal(ready2.api, `http://127.0.0.1:${port2}`)
    })

    it('sub on one node receives pub from the other', async () => {
      // The gossip mesh forms shortly after the nodes connect: probe until a message crosses.
      const probe = procs.start(['sub', 'probe/#', '--dir', d1, '--count', '1'])
      await probe.stderr.waitJson(v => v.event === 'subscribed', 'probe subscribed')
      for (let i = 0; i < 40 && probe.stdout.lines.length === 0; i++) {
        assert.equal((await fedmesh('pub', 'probe/x', '--dir', d2, '--data', JSON.stringify({ i }))).code, 0)
        await probe.stdout.wait(() => true, 'probe', 500).catch(() => {})
      }
      assert.equal((await probe.exit()).code, 0, 'sub exits after --count messages')

      const sub = procs.start(['sub', 'alerts/*', '--dir', d1, '--agent', 'alice', '--count', '2'])
      const subscribed = await sub.stderr.waitJson(v => v.event === 'subscribed', 'subscribed')
      assert.equal(subscribed.pattern, 'alerts/*')
      // A payload naming a schema is validated, so the schema is published first.
      const schemaFile = join(root, 'fire.schema.json')
      writeFileSync(schemaFile, JSON.stringify({ uri: 'alerts/fire@1.0.0', schema: { type: 'object', properties: { level: { type: 'integer' } } } }))
      assert.equal((await fedmesh('schema', 'publish', schemaFile, '--dir', d2)).code, 0)
      const p1 = await fedmesh('pub', 'alerts/fire', '--dir', d2, '--data', '{"level":3}', '--schema', 'alerts/fire@1.0.0', '--type', 'inform')
      assert.equal(p1.code, 0, p1.stderr)
      const { id } = JSON.parse(p1.stdout)
      assert.match(id, /^b/)
      assert.equal((await fedmesh('pub', 'alerts/flood', '--dir', d2, '--data', '"high"')).code, 0)
      assert.equal((await fedmesh('pub', 'other/ignored', '--dir', d2, '--data', '0')).code, 0)
      const { code } = await sub.exit()
      assert.equal(code, 0)
      const got = sub.stdout.lines.map(l => JSON.parse(l))
      assert.equal(got.length, 2)
      assert.deepEqual(got.map(m => m.topic).sort(), ['alerts/fire', 'alerts/flood'])
      const fire = got.find(m => m.topic === 'alerts/fire')
      assert.equal(fire.id, id)
      assert.deepEqual(fire.payload, { level: 3 })
      const sender = JSON.parse((await fedmesh('agent', 'list', '--dir', d2, '--json')).stdout).find((a: { name: string }) => a.name === 'default')
      assert.equal(fire.from, sender.id)
    })

    it('send delivers a direct message to an agent on the other node, with confirmation', async () => {
      const bob = (await fedmesh('agent', 'create', 'bob', '--dir', d2)).stdout.trim()
      const inbox = procs.start(['inbox', '--dir', d2, '--agent', 'bob', '--count', '1'])
      await inbox.stderr.waitJson(v => v.event === 'subscribed', 'inbox subscribed')
      const found = await fedmesh('agent', 'find', bob, '--dir', d1, '--wait', '20000', '--json')
      assert.equal(found.code, 0, found.stderr)
      assert.equal(JSON.parse(found.stdout).home[0].id, ready2.peerId)
      const r = await fedmesh('send', bob, '--dir', d1, '--agent', 'alice', '--data', '{"hi":"bob"}', '--confirm')
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout).confirmed, [bob])
      assert.equal((await inbox.exit()).code, 0)
      const m = JSON.parse(inbox.stdout.lines[0])
      assert.deepEqual(m.payload, { hi: 'bob' })
      assert.deepEqual(m.to, [bob])
    })

    describe('request', () => {
      let agents: Record<string, string>
      let responder: Proc

      before(async () => {
        const token = readFileSync(join(d1, 'api.token'), 'utf8').trim()
        const args = JSON.stringify({ dir: join(root, 'responder'), network: 'clitest', bootstrap: [ready1.addresses[0]], remote: { url: ready1.api, token } })
        responder = procs.start([args], { script: join(ROOT, 'test/fixtures/responder.ts') })
        agents = (await responder.stdout.waitJson(v => v.event === 'ready', 'responder ready', 30_000)).agents
        for (const name of ['responder', 'silent', 'idle']) {
          const r = await fedmesh('agent', 'find', agents[name], '--dir', d1, '--wait', '20000')
          assert.equal(r.code, 0, `${name}: ${r.stderr}`)
        }
      })

      it('prints the reply payload of an agent on another node', async () => {
        const r = await fedmesh('request', agents.responder, '--dir', d1, '--data', '{"q":1}')
        assert.equal(r.code, 0, r.stderr)
        assert.deepEqual(JSON.parse(r.stdout), { echo: { q: 1 }, by: 'responder' })
      })

      it('reaches a remote agent attached over the API', async () => {
        const r = await fedmesh('request', agents.remote, '--dir', d1, '--data', '[1,2]', '--json')
        assert.equal(r.code, 0, r.stderr)
        const reply = JSON.parse(r.stdout)
        assert.deepEqual(reply.payload, { echo: [1, 2], by: 'remote' })
        assert.equal(reply.from, agents.remote)
      })

      it('no responder → exit 1, one-line NoRespondersError', async () => {
        const r = await fedmesh('request', agents.idle, '--dir', d1, '--data', '1')
        assert.equal(r.code, 1)
        assert.equal(r.stdout, '')
        assertOneLineError(r, /^fedmesh: NoRespondersError: /)
      })

      it('no answer in time → exit 1, one-line TimeoutError', async () => {
        const r = await fedmesh('request', agents.silent, '--dir', d1, '--data', '1', '--timeout', '500')
        assert.equal(r.code, 1)
        assertOneLineError(r, /^fedmesh: TimeoutError: /)
      })
    })

    it('peers, rejections', async () => {
      const peers = JSON.parse((await fedmesh('peers', '--dir', d2, '--json')).stdout)
      assert.ok(peers.some((p: { peerId: string }) => p.peerId === ready1.peerId))
      const rej = await fedmesh('rejections', '--dir', d1, '--json')
      assert.equal(rej.code, 0)
      const r = JSON.parse(rej.stdout)
      assert.equal(typeof r.counts['bad-signature'], 'number')
      assert.ok(Array.isArray(r.recent))
      const text = await fedmesh('rejections', '--dir', d1)
      assert.match(text.stdout, /^bad-signature\s+\d+$/m)
    })

    it('SIGTERM and SIGINT stop the nodes cleanly (exit 0); then the CLI says the node is not running', async () => {
      node2.kill('SIGTERM')
      node1.kill('SIGINT')
      assert.deepEqual(await node2.exit(20_000), { code: 0, signal: null })
      assert.deepEqual(await node1.exit(20_000), { code: 0, signal: null })
      const r = await fedmesh('status', '--dir', d1)
      assert.equal(r.code, 1)
      assertOneLineError(r, new RegExp(`127\\.0\\.0\\.1:${port1}`))
    })
  })
})

/**
 * The durable-delivery user flow with the `fedmesh` command and real node processes:
 * three nodes, durable sends to an agent whose node is down, the node started again, the
 * messages arriving in order exactly once, and all of them in `fedmesh log` — while the
 * node runs and after it stopped. Then: bad input for `fedmesh log`, and a store with
 * overwritten pages refused at start with a clear error.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Procs, type Proc } from '../helpers/cli.ts'

interface Ready { event: 'ready', peerId: string, addresses: string[], api: string }

describe('fedmesh durable delivery (CLI, three node processes)', { timeout: 240_000 }, () => {
  const procs = new Procs()
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-durable-cli-'))
  const dirs = { s1: join(root, 's1'), s2: join(root, 's2'), home: join(root, 'home') }
  after(async () => {
    await procs.killAll()
    rmSync(root, { recursive: true, force: true })
  })

  const fedmesh = async (...args: string[]) => await procs.run(args, 60_000)
  async function start (dir: string, extra: string[]): Promise<{ proc: Proc, ready: Ready }> {
    const proc = procs.start(['node', 'start', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn', ...extra])
    const ready = await proc.stdout.waitJson<Ready>(v => v.event === 'ready', `${dir} ready`, 30_000)
    return { proc, ready }
  }
  async function stop (proc: Proc): Promise<void> {
    proc.kill('SIGTERM')
    const { code } = await proc.exit(20_000)
    assert.equal(code, 0)
  }

  let bob = ''
  const ids: string[] = []

  it('sends durable messages to an agent whose node is down; they arrive in order, once, when it is back, and the log has them', async () => {
    const s1 = await start(dirs.s1, ['--roles', 'full,storage'])
    const boot = ['--bootstrap', s1.ready.addresses[0]]
    const s2 = await start(dirs.s2, ['--roles', 'full,storage', ...boot])
    let home = await start(dirs.home, boot)
    bob = (await fedmesh('agent', 'create', 'bob', '--dir', dirs.home)).stdout.trim()
    assert.match(bob, /^did:key:z6Mk/)
    const alice = (await fedmesh('agent', 'create', 'alice', '--dir', dirs.s1)).stdout.trim()
    const found = await fedmesh('agent', 'find', bob, '--wait', '20000', '--dir', dirs.s1)
    assert.equal(found.code, 0, found.stderr)
    // The sender's node must know the storage nodes' records before the home goes down.
    for (let i = 0; i < 100; i++) {
      const peers = JSON.parse((await fedmesh('peers', '--json', '--dir', dirs.s1)).stdout) as Array<{ roles?: string[] }>
      if (peers.filter(p => p.roles?.includes('storage') === true).length >= 1) break
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    await stop(home.proc)

    for (let n = 1; n <= 5; n++) {
      const r = await fedmesh('send', bob, '--durable', '--agent', 'alice', '--conversation', 'order-42', '--data', JSON.stringify({ n }), '--dir', dirs.s1)
      assert.equal(r.code, 0, r.stderr)
      const res = JSON.parse(r.stdout) as { id: string, durable: { status: string, home?: string, replicas: number } }
      assert.equal(res.durable.status, 'stored')
      assert.equal(res.durable.home, undefined, 'the home is down: held by the replicas')
      assert.ok(res.durable.replicas >= 1)
      ids.push(res.id)
    }

    home = await start(dirs.home, boot)
    const inbox = procs.start(['inbox', '--agent', 'bob', '--count', '5', '--dir', dirs.home])
    const { code } = await inbox.exit(60_000)
    assert.equal(code, 0, inbox.stderr.text)
    const got = inbox.stdout.lines.filter(l => l.trim() !== '').map(l => JSON.parse(l) as { id: string, from: string, payload: { n: number } })
    assert.deepEqual(got.map(m => m.payload.n), [1, 2, 3, 4, 5])
    assert.deepEqual(got.map(m => m.id), ids)
    assert.ok(got.every(m => m.from === alice))

    // Nothing comes a second time (the replicas' copies were acknowledged, not redelivered).
    const again = procs.start(['inbox', '--agent', 'bob', '--dir', dirs.home])
    await again.stderr.waitJson(v => v.event === 'subscribed', 'inbox subscribed', 20_000)
    await new Promise(resolve => setTimeout(resolve, 3000))
    again.kill('SIGTERM')
    await again.exit(10_000)
    assert.equal(again.stdout.text.trim(), '', 'no duplicate delivery')

    // The home node's log, through its API while it runs: stored and delivered, acknowledged.
    const viaApi = await fedmesh('log', '--api', '--agent', bob, '--event', 'delivered', '--json', '--dir', dirs.home)
    assert.equal(viaApi.code, 0, viaApi.stderr)
    const delivered = viaApi.stdout.trim().split('\n').map(l => JSON.parse(l) as { id: string, status: string })
    assert.deepEqual(delivered.map(r => r.id), ids)
    // The sender's log learns of the receipts; a conversation replays with its payloads.
    for (let i = 0; i < 100; i++) {
      const sent = (await fedmesh('log', '--event', 'sent', '--conversation', 'order-42', '--json', '--dir', dirs.s1)).stdout.trim().split('\n').map(l => JSON.parse(l) as { status: string })
      if (sent.length === 5 && sent.every(r => r.status === 'acked')) break
      assert.ok(i < 99, `sender log not acknowledged: ${JSON.stringify(sent)}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    const replay = await fedmesh('log', '--conversation', 'order-42', '--replay', '--dir', dirs.s1)
    assert.equal(replay.code, 0, replay.stderr)
    const lines = replay.stdout.trim().split('\n')
    assert.equal(lines.length, 5)
    lines.forEach((l, i) => { assert.ok(l.endsWith(JSON.stringify({ n: i + 1 })), l) })
    // --json --payloads: the same records, each with its decoded message, whether read from
    // the store or through the API.
    const withPayloads = async (...extra: string[]): Promise<Array<{ id: string, message?: { payload?: unknown } }>> => {
      const r = await fedmesh('log', '--event', 'sent', '--conversation', 'order-42', '--json', '--payloads', ...extra, '--dir', dirs.s1)
      assert.equal(r.code, 0, r.stderr)
      return r.stdout.trim().split('\n').map(l => JSON.parse(l))
    }
    const direct = await withPayloads()
    assert.deepEqual(direct.map(r => r.message?.payload), [1, 2, 3, 4, 5].map(n => ({ n })))
    assert.deepEqual(direct, await withPayloads('--api'))

    await stop(home.proc)
    // Stopped: the log is read from the store directly.
    const offline = await fedmesh('log', '--agent', bob, '--event', 'stored,delivered', '--json', '--dir', dirs.home)
    assert.equal(offline.code, 0, offline.stderr)
    const recs = offline.stdout.trim().split('\n').map(l => JSON.parse(l) as { id: string, event: string, status: string })
    for (const id of ids) {
      assert.ok(recs.some(r => r.id === id && r.event === 'stored'), `stored ${id}`)
      assert.ok(recs.some(r => r.id === id && r.event === 'delivered' && r.status === 'acked'), `delivered and acked ${id}`)
    }
    await stop(s2.proc)
    await stop(s1.proc)
  })

  it('inbox --count N acknowledges only what it printed: the rest comes to the next inbox, none twice', async () => {
    const dir = join(root, 'one')
    const node = await start(dir, [])
    const bobId = (await fedmesh('agent', 'create', 'bob', '--dir', dir)).stdout.trim()
    assert.equal((await fedmesh('agent', 'create', 'alice', '--dir', dir)).code, 0)
    for (let n = 1; n <= 3; n++) {
      const r = await fedmesh('send', bobId, '--durable', '--agent', 'alice', '--data', JSON.stringify({ n }), '--dir', dir)
      assert.equal(r.code, 0, r.stderr)
    }
    const payloads = (p: Proc): number[] => p.stdout.lines.filter(l => l.trim() !== '').map(l => (JSON.parse(l) as { payload: { n: number } }).payload.n)
    const first = procs.start(['inbox', '--agent', 'bob', '--count', '1', '--dir', dir])
    assert.equal((await first.exit(30_000)).code, 0, first.stderr.text)
    assert.deepEqual(payloads(first), [1])
    // Before: the node marked all three processed as it sent them on the socket; 2 and 3 were lost.
    const second = procs.start(['inbox', '--agent', 'bob', '--count', '2', '--dir', dir])
    assert.equal((await second.exit(30_000)).code, 0, second.stderr.text)
    assert.deepEqual(payloads(second), [2, 3])
    const third = procs.start(['inbox', '--agent', 'bob', '--dir', dir])
    await third.stderr.waitJson(v => v.event === 'subscribed', 'inbox subscribed', 20_000)
    await new Promise(resolve => setTimeout(resolve, 2000))
    third.kill('SIGTERM')
    await third.exit(10_000)
    assert.deepEqual(payloads(third), [], 'nothing twice')
    await stop(node.proc)
  })

  it('log: malformed filters are typed errors', async () => {
    // Bad input: exit 2 with the typed error named (the store refuses before reading anything).
    const bad = await fedmesh('log', '--status', 'lost', '--dir', dirs.home)
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /InvalidQueryError/)
    const badTime = await fedmesh('log', '--since', 'yesterday-ish', '--dir', dirs.home)
    assert.equal(badTime.code, 2)
    assert.match(badTime.stderr, /--since/)
    const badPattern = await fedmesh('log', '--topic', 'a/#/b', '--dir', dirs.home)
    assert.equal(badPattern.code, 2)
    assert.match(badPattern.stderr, /InvalidQueryError/)
    const nowhere = await fedmesh('log', '--dir', join(root, 'nothing-here'))
    assert.equal(nowhere.code, 1)
    assert.match(nowhere.stderr, /no message store/)
  })

  it('a store with overwritten pages is refused at start with a clear error, not served', async () => {
    const db = join(dirs.home, 'store.db')
    rmSync(`${db}-wal`, { force: true })
    rmSync(`${db}-shm`, { force: true })
    const buf = readFileSync(db)
    assert.ok(buf.length >= 3 * 4096, `store.db is ${buf.length} bytes`)
    // Every page after the header page: garbage (deterministic).
    let x = 12345
    for (let i = 4096; i < buf.length; i++) { x = (x * 1103515245 + 12345) & 0x7fffffff; buf[i] = x & 0xff }
    writeFileSync(db, buf)
    const r = await procs.run(['node', 'start', '--dir', dirs.home, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', 'off'], 30_000)
    assert.equal(r.code, 1, r.stdout + r.stderr)
    assert.match(r.stderr, /cannot start the node.*(corrupt|malformed|not a database)/i)
    assert.doesNotMatch(r.stdout, /"event":"ready"/)
    const log = await fedmesh('log', '--dir', dirs.home)
    assert.equal(log.code, 1)
    assert.match(log.stderr, /StoreCorruptError|corrupt|malformed/i)
  })
})

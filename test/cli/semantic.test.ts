/**
 * The README's schema and protocol flow, as a user runs it: two node processes started
 * with the CLI, `schema publish/list/get/validate`, `protocol publish/get`, the SDK example
 * (examples/ordering/agents.ts) running two agents through the protocol, `fedmesh audit` of
 * the conversation it exported; and `fedmesh demo --exit-after-run`.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Procs, ROOT, freePort, type RunResult } from '../helpers/cli.ts'

interface Ready { event: 'ready', peerId: string, addresses: string[], api: string }

describe('fedmesh schema, protocol, audit and demo', { timeout: 240_000 }, () => {
  const procs = new Procs()
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-semcli-'))
  const d1 = join(root, 'a')
  const d2 = join(root, 'b')
  const fedmesh = async (...args: string[]): Promise<RunResult> => await procs.run(args)
  const ex = (f: string): string => join(ROOT, 'examples', 'ordering', f)

  before(async () => {
    const n1 = procs.start(['node', 'start', '--dir', d1, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${await freePort()}`, '--network', 'semcli', '--log-level', 'warn'])
    const r1 = await n1.stdout.waitJson<Ready>(v => v.event === 'ready', 'node a ready', 30_000)
    const n2 = procs.start(['node', 'start', '--dir', d2, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${await freePort()}`, '--network', 'semcli', '--log-level', 'warn', '--bootstrap', r1.addresses[0]])
    await n2.stdout.waitJson<Ready>(v => v.event === 'ready', 'node b ready', 30_000)
  })
  after(async () => {
    await procs.killAll()
    rmSync(root, { recursive: true, force: true })
  })

  it('publishes a schema and a protocol from files; the other node lists, gets and validates with them', async () => {
    const pub = await fedmesh('schema', 'publish', ex('order.schema.json'), '--dir', d1)
    assert.equal(pub.code, 0, pub.stderr)
    assert.match(pub.stdout, /^published acme\/order@1\.0\.0 {2}b[a-z2-7]+/)
    assert.match((await fedmesh('schema', 'publish', ex('order.schema.json'), '--dir', d1)).stdout, /^already published acme\/order@1\.0\.0/)
    const proto = await fedmesh('protocol', 'publish', ex('ordering.protocol.json'), '--dir', d1)
    assert.equal(proto.code, 0, proto.stderr)
    assert.match(proto.stdout, /^published proto\/acme\/ordering@1\.0\.0/)

    // Node b learns of them by announcement (or fetches them on demand).
    let list: RunResult | undefined
    for (let i = 0; i < 40; i++) {
      list = await fedmesh('schema', 'list', '--dir', d2, '--json')
      if (JSON.parse(list.stdout).some((d: any) => d.uri === 'acme/order@1.0.0')) break
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    assert.ok(JSON.parse(list?.stdout ?? '[]').some((d: any) => d.uri === 'acme/order@1.0.0'), 'b lists acme/order@1.0.0')
    const get = await fedmesh('schema', 'get', 'acme/order@1.0.0', '--dir', d2)
    assert.equal(get.code, 0, get.stderr)
    assert.deepEqual(JSON.parse(get.stdout).required, ['item', 'qty'])
    const pget = await fedmesh('protocol', 'get', 'proto/acme/ordering@1.0.0', '--dir', d2)
    assert.equal(JSON.parse(pget.stdout).initial, 'start')

    const bad = await fedmesh('schema', 'validate', 'acme/order@1.0.0', '--data', '{"item":"tea","qty":0}', '--dir', d2)
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /^\/qty: must be >= 1/)
    assert.match(bad.stderr, /^fedmesh: invalid under acme\/order@1\.0\.0 \(schema-invalid\)/)
    const good = await fedmesh('schema', 'validate', 'acme/order@1.0.0', '--data', '{"item":"tea","qty":2}', '--dir', d2)
    assert.equal(good.code, 0, good.stderr)
    assert.equal(good.stdout.trim(), 'valid')
    const unknown = await fedmesh('schema', 'get', 'acme/nothing@1.0.0', '--dir', d2)
    assert.equal(unknown.code, 1)
    assert.match(unknown.stderr, /^fedmesh: SchemaNotFoundError: /)
  })

  it('refuses an incompatible version and a bad file, with typed one-line errors', async () => {
    const narrower = join(root, 'order-1.1.json')
    writeFileSync(narrower, JSON.stringify({ uri: 'acme/order@1.1.0', schema: { type: 'object', additionalProperties: false, required: ['item', 'qty'], properties: { item: { type: 'string', maxLength: 10 }, qty: { type: 'integer', minimum: 1, maximum: 1000 } } } }))
    const r = await fedmesh('schema', 'publish', narrower, '--dir', d1)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^fedmesh: IncompatibleSchemaError: .*\/item/)
    const badProto = join(root, 'bad.protocol.json')
    writeFileSync(badProto, JSON.stringify({ name: 'x', version: '1.0.0', roles: ['a'], states: [], initial: 's', terminal: [], transitions: [] }))
    const p = await fedmesh('protocol', 'publish', badProto, '--dir', d1)
    assert.equal(p.code, 2)
    assert.match(p.stderr, /^fedmesh: InvalidProtocolError: /)
    assert.equal((await fedmesh('schema', 'publish', join(root, 'missing.json'), '--dir', d1)).code, 2)
  })

  it('runs two agents through the protocol with the SDK example, and the exported conversation audits clean', async () => {
    const p = procs.start([d1, d2], { script: ex('agents.ts') })
    const { code } = await p.exit(60_000)
    assert.equal(code, 0, p.stderr.text)
    const out = p.stdout.text
    assert.match(out, /conversation \S+ on proto\/acme\/ordering@1\.0\.0/)
    assert.match(out, /refused before sending: SchemaValidationError .*"path":"\/qty"/)
    assert.match(out, /refused before sending: ProtocolViolationError expected request/)
    assert.match(out, /shop → customer: agree/)
    assert.match(out, /shop → customer: inform \{"receipt":"3 × tea","total":750\}/)
    assert.match(out, /conversation state: done \(done\)/)
    const file = /exported to (\S+);/.exec(out)?.[1] as string
    const audit = await fedmesh('audit', file, '--dir', d1)
    assert.equal(audit.code, 0, audit.stderr)
    assert.match(audit.stdout, /1\. request\s+by customer start → ordered {2}acme\/order@1\.0\.0 {2}ok/)
    assert.match(audit.stdout, /audit passed: 3 steps, final state done/)
    // Tampering with one step is caught.
    const { readFileSync } = await import('node:fs')
    const bytes = readFileSync(file)
    const at = bytes.indexOf(Buffer.from('tea'))
    bytes[at] = 'p'.charCodeAt(0)
    const forged = join(root, 'forged.cbor')
    writeFileSync(forged, bytes)
    const bad = await fedmesh('audit', forged, '--dir', d1)
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /FAILED at signature/)
  })

  it('fedmesh demo leaves its nodes up for the CLI until Ctrl-C, then stops them', async () => {
    const demo = procs.start(['demo', '--sellers', '1'])
    await demo.stdout.wait(l => l.startsWith('the nodes keep running'), 'the demo to finish its run', 120_000)
    assert.match(demo.stdout.text, /agreed: seller-1 sells 10 × gpu-hours at 700/)
    const hubDir = /fedmesh status --dir (\S+)/.exec(demo.stdout.text)?.[1] as string
    const status = await fedmesh('status', '--dir', hubDir, '--json')
    assert.equal(status.code, 0, status.stderr)
    assert.equal(JSON.parse(status.stdout).peers, 1)
    const protocols = await fedmesh('protocol', 'list', '--dir', hubDir)
    assert.match(protocols.stdout, /proto\/market@1\.0\.0/)
    demo.kill('SIGINT')
    const { code } = await demo.exit(60_000)
    assert.equal(code, 0, demo.stderr.text)
    assert.match(demo.stdout.text, /stopped$/m)
    assert.equal(existsSync(hubDir), false)
  })

  it('fedmesh demo runs the market protocol across node processes and stops cleanly', async () => {
    const r = await procs.run(['demo', '--sellers', '2', '--exit-after-run'], 120_000)
    assert.equal(r.code, 0, r.stderr + r.stdout)
    const dir = /in (\S+fedmesh-demo-\S+)/.exec(r.stdout)?.[1] as string
    assert.match(r.stdout, /buyer +→ seller-1, seller-2 +cfp +market\/rfp@1\.0\.0/)
    assert.match(r.stdout, /agreed: seller-1 sells 10 × gpu-hours at 700 = 7000 EUR/)
    assert.match(r.stdout, /audit passed: 6 steps, final state agreed/)
    assert.match(r.stdout, /fedmesh status --dir \S+buyer-node/)
    assert.match(r.stdout, /stopped$/m)
    assert.equal(existsSync(dir), false, 'the demo removed its data dirs')
  })
})

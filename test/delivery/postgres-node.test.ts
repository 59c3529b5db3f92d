/**
 * A node whose store is PostgreSQL, selected by the connection string in its config
 * (`store.url`): durable delivery and the message log work the same as on SQLite, and
 * nothing is written to the data dir's SQLite file. Missing server: skipped, or a failure
 * with CI=true (pg-harness.ts).
 */
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { Nodes, within } from '../helpers/api.ts'
import { PG_URL, postgresAvailability } from '../store/pg-harness.ts'
import { readFileSync, rmSync } from 'node:fs'
import { Procs } from '../helpers/cli.ts'
import { tempDir } from '../helpers/api.ts'

const availability = await postgresAvailability()
if (availability.failure != null) {
  test('PostgreSQL is available (required when CI=true)', () => { assert.fail(availability.failure ?? '') })
}

describe('node on a PostgreSQL store', { skip: availability.skip }, () => {
  const nodes = new Nodes()
  const schema = `fmn_${process.pid}_${Math.floor(Math.random() * 1e6)}`
  const procs = new Procs()
  const dirs: string[] = []
  after(async () => {
    await procs.killAll()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
    await nodes.stopAll()
    const client = new pg.Client({ connectionString: PG_URL })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await client.end()
  })

  test('durable send to a local agent, processed once, logged in PostgreSQL', async () => {
    const node = await nodes.start({ store: { url: PG_URL, schema } })
    assert.equal(node.store.info().kind, 'postgres')
    assert.equal(existsSync(join(node.dir, 'store.db')), false)
    const bob = await node.agent('bob')
    const alice = await node.agent('alice')
    const inbox = bob.messages()
    const sent = await alice.send(bob.id, { hello: 'pg' }, { durable: true, conversation: 'pg-conv' })
    assert.equal(sent.durable?.status, 'stored')
    const it = inbox[Symbol.asyncIterator]()
    const got = await within(it.next(), 10_000, 'durable message')
    assert.deepEqual(got.value?.data(), { hello: 'pg' })
    const end = Date.now() + 10_000
    while ((await node.log({ id: sent.id, event: 'stored' })).records[0]?.status !== 'acked') {
      assert.ok(Date.now() < end, 'acknowledged in the log')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    assert.equal(await node.store.isProcessed(bob.id, sent.id), true)
    const replay = await node.conversation('pg-conv')
    assert.deepEqual(replay.map(r => r.id), [sent.id])
  })

  test('the CLI selects PostgreSQL by --store or FEDMESH_STORE_URL', async () => {
    const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=fedmesh-cli-test`
    const dir = tempDir()
    dirs.push(dir)
    const init = await procs.run(['init', '--dir', dir, '--store', url, '--replicas', '1'])
    assert.equal(init.code, 0, init.stderr)
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { store: { url: string, replicas: number } }
    assert.deepEqual(config.store, { url, replicas: 1 })
    // The schema of the node above: the CLI reads that node's log from PostgreSQL.
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
    const fs = await import('node:fs')
    fs.writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, store: { ...(cfg.store as object), schema } }))
    const log = await procs.run(['log', '--json', '--dir', dir])
    assert.equal(log.code, 0, log.stderr)
    const records = log.stdout.trim().split('\n').map(l => JSON.parse(l) as { conv?: string, event: string })
    assert.ok(records.some(r => r.conv === 'pg-conv' && r.event === 'stored'), log.stdout)
    assert.equal(existsSync(join(dir, 'store.db')), false)
    const other = tempDir()
    dirs.push(other)
    const bad = await procs.run(['log', '--dir', other], 30_000, { FEDMESH_STORE_URL: 'mysql://nope' })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /store.url must be a postgres/)
  })
})

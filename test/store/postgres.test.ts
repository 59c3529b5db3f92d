/**
 * The compliance suite on PostgreSQL (a real server; see pg-harness.ts for how a missing one
 * is treated), plus what only PostgreSQL has: schema isolation and an unreachable server.
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { createStore } from '../../src/store/index.ts'
import { numberPlaceholders } from '../../src/store/postgres.ts'
import { storeCompliance, entry } from './compliance.ts'
import { createPgHarness, postgresAvailability } from './pg-harness.ts'

const availability = await postgresAvailability()

if (availability.failure != null) {
  test('PostgreSQL is available (required when CI=true)', () => { assert.fail(availability.failure ?? '') })
}

storeCompliance('postgres', createPgHarness, { skip: availability.skip })

describe('postgres specifics', { skip: availability.skip }, () => {
  test('stores in different schemas of one database are isolated', async () => {
    const h = await createPgHarness()
    const [l1, l2] = [await h.location(), await h.location()]
    try {
      const [s1, s2] = [l1.create(), l2.create()]
      await s1.open()
      await s2.open()
      await s1.enqueue(entry('iso'))
      assert.equal((await s1.stats()).inbox.count, 1)
      assert.equal((await s2.stats()).inbox.count, 0)
      assert.match(s1.info().location, /schema=fmt_/)
      assert.doesNotMatch(s1.info().location, /password/)
    } finally {
      await l1.dispose()
      await l2.dispose()
      await h.teardown?.()
    }
  })

  test('an unreachable server is StoreUnavailableError at open, and the store can open later', async () => {
    const store = createStore({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/test', connectTimeoutMs: 1_000 })
    await assert.rejects(store.open(), { code: 'StoreUnavailableError' })
    await assert.rejects(store.stats(), { code: 'StoreClosedError' })
    await store.close()
  })

  test('config is validated', () => {
    assert.throws(() => createStore({ kind: 'postgres', url: '' }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ kind: 'postgres', url: 'postgres://x', schema: 'Bad-Name' }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ kind: 'postgres', url: 'postgres://x', schema: 'x"; DROP' }), { code: 'InvalidArgumentError' })
    assert.throws(() => createStore({ kind: 'postgres', url: 'postgres://x', poolSize: 0 }), { code: 'InvalidArgumentError' })
  })

  test('placeholders are numbered outside quoted literals', () => {
    assert.equal(numberPlaceholders("SELECT ? , '?' , ?"), "SELECT $1 , '?' , $2")
  })
})

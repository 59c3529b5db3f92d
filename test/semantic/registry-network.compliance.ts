/**
 * The compliance suite every RegistryNetwork implementation runs (STYLE.md: one suite per
 * interface). `setup(n)` builds n connected members; `down(i)` takes member i away for good;
 * `settle()` waits until announcements sent so far have arrived (or, for a real network,
 * until a condition helper says so).
 */
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { generateAgentKey } from '../../src/core/keys.ts'
import { encodeDocument, registryKeys, signSchemaDocument, type RegistryNetwork } from '../../src/semantic/index.ts'

/** The contract is about bytes: a Buffer and a Uint8Array with the same content are equal. */
function sameBytes (got: Uint8Array | undefined, want: Uint8Array): void {
  assert.ok(got != null, 'a value was found')
  assert.deepEqual(Buffer.from(got), Buffer.from(want))
}

export interface RegistryNetworkFixture {
  members: RegistryNetwork[]
  down: (i: number) => Promise<void> | void
  settle: () => Promise<void>
  close: () => Promise<void> | void
}

export function registryNetworkCompliance (name: string, setup: (n: number) => Promise<RegistryNetworkFixture>): void {
  const key = generateAgentKey()
  const doc = (uri: string, ts = 1_800_000_000_000): Uint8Array => encodeDocument(signSchemaDocument({ uri, schema: { type: 'string' }, ts }, key))

  describe(`RegistryNetwork compliance: ${name}`, () => {
    test('announce reaches every other member, not the sender', async () => {
      const f = await setup(4)
      try {
        const got: number[][] = f.members.map(() => [])
        f.members.forEach((m, i) => m.onAnnounce((b) => { got[i].push(b.length); return undefined }))
        const bytes = doc('compliance/a@1.0.0')
        await f.members[0].announce(bytes)
        await f.settle()
        assert.deepEqual(got[0], [])
        for (let i = 1; i < 4; i++) assert.deepEqual(got[i], [bytes.length])
      } finally { await f.close() }
    })

    test('a removed handler hears nothing', async () => {
      const f = await setup(2)
      try {
        let n = 0
        const off = f.members[1].onAnnounce(() => { n++; return undefined })
        off()
        await f.members[0].announce(doc('compliance/b@1.0.0'))
        await f.settle()
        assert.equal(n, 0)
      } finally { await f.close() }
    })

    test('put on one member, get from every other; unknown keys give undefined', async () => {
      const f = await setup(4)
      try {
        const bytes = doc('compliance/c@1.0.0')
        await f.members[0].put(registryKeys.uri('compliance/c@1.0.0'), bytes)
        for (const m of f.members) sameBytes(await m.get(registryKeys.uri('compliance/c@1.0.0')), bytes)
        assert.equal(await f.members[1].get(registryKeys.uri('compliance/none@1.0.0')), undefined)
      } finally { await f.close() }
    })

    test('records outlive the member that stored them', async () => {
      const f = await setup(5)
      try {
        const bytes = doc('compliance/d@1.0.0')
        await f.members[0].put(registryKeys.uri('compliance/d@1.0.0'), bytes)
        await f.down(0)
        await f.down(1)
        sameBytes(await f.members[4].get(registryKeys.uri('compliance/d@1.0.0')), bytes)
      } finally { await f.close() }
    })

    test('a key keeps the preferred record (earliest document for a URI)', async () => {
      const f = await setup(3)
      try {
        const k = registryKeys.uri('compliance/e@1.0.0')
        const early = doc('compliance/e@1.0.0', 1_000)
        const late = doc('compliance/e@1.0.0', 2_000)
        await f.members[0].put(k, late)
        await f.members[1].put(k, early)
        await f.members[2].put(k, late)
        sameBytes(await f.members[2].get(k), early)
      } finally { await f.close() }
    })

    test('invalid records are refused or never served', async () => {
      const f = await setup(2)
      try {
        const k = registryKeys.uri('compliance/f@1.0.0')
        const wrong = doc('compliance/other@1.0.0')
        await f.members[0].put(k, wrong).catch(() => {})
        const got = await f.members[1].get(k)
        assert.equal(got, undefined)
      } finally { await f.close() }
    })

    test('get honours an aborted signal', async () => {
      const f = await setup(2)
      try {
        const ac = new AbortController()
        ac.abort()
        await assert.rejects(f.members[0].get(registryKeys.uri('compliance/g@1.0.0'), { signal: ac.signal }), /abort/i)
      } finally { await f.close() }
    })
  })
}

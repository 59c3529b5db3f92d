/**
 * PostgreSQL for the store tests: one probe, and locations that are schemas of their own
 * (`fmt_<pid>_<n>_<random>`), dropped on dispose and, as a backstop, at teardown.
 */
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { createStore, type CommonStoreConfig, type MessageStore, type PostgresStoreConfig } from '../../src/store/index.ts'
import type { StoreHarness, StoreLocation } from './compliance.ts'

export const PG_URL = process.env.FEDMESH_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Null when PostgreSQL answers, else why not. */
export async function probePostgres (url: string = PG_URL): Promise<string | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return null
  } catch (err) {
    return (err as Error).message
  } finally {
    await client.end().catch(() => {})
  }
}

/**
 * How a PostgreSQL test file should treat an unreachable server: skip with a message naming
 * what is missing, except in CI (`CI=true`), where a missing service is a failure.
 */
export async function postgresAvailability (): Promise<{ skip: string | false, failure: string | null }> {
  const problem = await probePostgres()
  if (problem == null) return { skip: false, failure: null }
  const what = `PostgreSQL is not reachable at ${PG_URL} (${problem}); start it or set FEDMESH_TEST_PG_URL`
  if (process.env.CI === 'true') return { skip: false, failure: what }
  return { skip: what, failure: null }
}

export async function createPgHarness (): Promise<StoreHarness & { location: (overrides?: Partial<PostgresStoreConfig>) => Promise<StoreLocation & { schema: string }> }> {
  const admin = new pg.Pool({ connectionString: PG_URL, max: 2 })
  admin.on('error', () => {})
  const prefix = `fmt_${process.pid}_${randomBytes(3).toString('hex')}_`
  let counter = 0

  const location = async (overrides: Partial<PostgresStoreConfig> = {}): Promise<StoreLocation & { schema: string }> => {
    const schema = `${prefix}${counter++}`
    const stores: MessageStore[] = []
    return {
      schema,
      create: (o?: CommonStoreConfig) => {
        const s = createStore({ kind: 'postgres', url: PG_URL, schema, poolSize: 4, ...overrides, ...o })
        stores.push(s)
        return s
      },
      raw: async (sql, params = []) => (await admin.query(sql, params)).rows,
      table: (name) => `"${schema}".${name}`,
      dispose: async () => {
        for (const s of stores) await s.close().catch(() => {})
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      }
    }
  }

  return {
    fresh: async () => await location(),
    location,
    teardown: async () => {
      const rows = (await admin.query('SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)', [prefix])).rows
      for (const r of rows) await admin.query(`DROP SCHEMA IF EXISTS "${String(r.nspname)}" CASCADE`)
      await admin.end()
    }
  }
}

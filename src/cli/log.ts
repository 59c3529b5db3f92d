/**
 * `fedmesh log`: the node's message log, filtered and paged. It reads the store directly
 * (read-only: SQLite in WAL mode lets a reader in beside the running node, and PostgreSQL
 * is a server anyway), so it works whether or not the node is running; `--api` asks the
 * running node's API instead.
 */
import { readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { CliError, UsageError, intFlag, stringFlag, type Command, type OptionSpec, type Parsed } from './args.ts'
import { call, locateNode } from './client.ts'
import { openNodeStore, sqlitePath, validateStoreConfig, type NodeStoreConfig } from '../node/storage.ts'
import type { LogFilter, LogRecord, QueryOptions } from '../store/types.ts'
import { logRecordJson } from '../api/log-json.ts'

const MAX_PAGES = 10_000

export const storeOption: Record<string, OptionSpec> = {
  store: { type: 'string', arg: 'URL', help: 'PostgreSQL connection string of the node\'s store (default: config.json, $FEDMESH_STORE_URL, else SQLite in DIR)' }
}

function out (v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n')
}

/** A time flag: ms since the epoch, or an ISO 8601 date. */
function timeFlag (v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'string' && /^\d{1,16}$/.test(v)) return Number(v)
  const t = typeof v === 'string' ? Date.parse(v) : NaN
  if (Number.isNaN(t)) throw new UsageError(`--${flag} must be ms since the epoch or an ISO date, got ${JSON.stringify(v)}`)
  return t
}

function listOf (v: unknown): string | string[] | undefined {
  if (typeof v !== 'string') return undefined
  const parts = v.split(',').map(s => s.trim()).filter(s => s !== '')
  return parts.length === 1 ? parts[0] : parts
}

/** The store settings of DIR's node, with `--store` / `$FEDMESH_STORE_URL` taking precedence. */
export async function storeConfigOf (dir: string, flag: string | undefined): Promise<NodeStoreConfig> {
  let cfg: NodeStoreConfig = {}
  const path = join(dir, 'config.json')
  if (existsSync(path)) {
    try {
      cfg = validateStoreConfig((JSON.parse(await readFile(path, 'utf8')) as { store?: unknown }).store)
    } catch (err) {
      throw new CliError(`cannot read the store settings in ${path}: ${(err as Error).message}`)
    }
  }
  const url = flag ?? (process.env.FEDMESH_STORE_URL !== '' ? process.env.FEDMESH_STORE_URL : undefined)
  return url != null ? validateStoreConfig({ ...cfg, url }) : cfg
}

function text (r: LogRecord): string {
  const to = r.to.length > 0 ? r.to.join(',') : (r.topic ?? '-')
  return [
    new Date(r.receivedTs).toISOString(),
    r.event.padEnd(9),
    r.status.padEnd(9),
    r.id,
    `${r.from ?? '-'} -> ${to}`,
    r.type ?? '-',
    ...(r.conv != null ? [`conv=${r.conv}`] : []),
    ...(r.reason != null ? [`reason=${JSON.stringify(r.reason)}`] : [])
  ].join('  ')
}

interface Source {
  page: (filter: LogFilter, options: QueryOptions) => Promise<{ records: Array<Record<string, unknown>>, cursor?: string | null, more: boolean }>
  replay: (conv: string, limit?: number) => Promise<Array<Record<string, unknown>>>
  close: () => Promise<void>
}

async function directSource (dir: string, cfg: NodeStoreConfig): Promise<Source> {
  if (cfg.url == null && !existsSync(sqlitePath(dir))) throw new CliError(`no message store in ${dir} yet (it is created when the node first starts)`)
  let store
  try {
    store = await openNodeStore(dir, cfg, { readOnly: true })
  } catch (err) {
    const e = err as Error & { code?: string }
    throw new CliError(`cannot open the store of ${dir}: ${e.code != null ? `${e.code}: ` : ''}${e.message}`, { code: e.code })
  }
  return {
    page: async (filter, options) => {
      const p = await store.query(filter, options)
      return { records: p.records.map(r => ({ ...logRecordJson(r), _record: r })), cursor: p.cursor, more: p.more }
    },
    replay: async (conv, limit) => (await store.conversation(conv, { limit })).map(r => ({ ...logRecordJson(r), _record: r })),
    close: async () => { await store.close() }
  }
}

async function apiSource (dir: string): Promise<Source> {
  const node = await locateNode(dir)
  const qs = (o: Record<string, unknown>): string => {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(o)) if (v !== undefined) q.set(k, Array.isArray(v) ? v.join(',') : String(v))
    return q.toString()
  }
  return {
    page: async (filter, options) => await call(node, 'GET', `/v1/log?${qs({ ...filter, limit: options.limit, cursor: options.cursor, order: options.order, payloads: options.includeBytes === true ? 'true' : undefined })}`),
    replay: async (conv, limit) => (await call<{ messages: Array<Record<string, unknown>> }>(node, 'GET', `/v1/log/conversations/${encodeURIComponent(conv)}${limit != null ? `?limit=${limit}` : ''}`)).messages,
    close: async () => {}
  }
}

/** A record from either source as a LogRecord-like shape for the text form. */
function asRecord (r: Record<string, unknown>): LogRecord {
  return (r._record ?? r) as LogRecord
}

/**
 * The stderr line for a query that printed nothing: an empty stdout alone does not tell a
 * filter that matched nothing from a command that did not run (stdout stays empty for --json).
 */
export function noRecordsLine (filter: Record<string, unknown>, opts: { replay?: boolean, cursor?: string } = {}): string {
  const terms = Object.entries(filter).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`)
  const what = opts.replay === true ? `no records of conversation ${String(filter.conversation)}` : 'no records match'
  return `fedmesh log: ${what}${terms.length > 0 && opts.replay !== true ? ` (${terms.join(' ')})` : ''}${opts.cursor != null ? ' after the cursor' : ''}\n`
}

function clean (r: Record<string, unknown>): Record<string, unknown> {
  const { _record: _r, ...rest } = r
  return rest
}

export const logCommand: Command = {
  name: 'log',
  summary: 'Show the node\'s message log: what it sent, received, relayed, stored, delivered or rejected, oldest first. ' +
    'Reads the store directly (works whether or not the node runs); --api asks the running node instead.',
  options: {
    json: { type: 'boolean', help: 'One JSON record per line' },
    id: { type: 'string', arg: 'ID', help: 'Records of this message id' },
    agent: { type: 'string', arg: 'DID', help: 'Messages from or to this agent' },
    topic: { type: 'string', arg: 'PATTERN', help: 'Topic or pattern (`*` one level, `#` last: one or more)' },
    conversation: { type: 'string', arg: 'C', help: 'Messages of this conversation' },
    since: { type: 'string', arg: 'T', help: 'Recorded at or after T (ms since the epoch, or an ISO date)' },
    until: { type: 'string', arg: 'T', help: 'Recorded before T' },
    status: { type: 'string', arg: 'S,…', help: 'ok, pending, delivered, acked, expired, failed, rejected' },
    event: { type: 'string', arg: 'E,…', help: 'sent, received, relayed, stored, delivered, rejected' },
    type: { type: 'string', arg: 'T', help: 'Message type (performative)' },
    limit: { type: 'string', arg: 'N', help: 'Records per page, 1–1000 (default 100)' },
    cursor: { type: 'string', arg: 'C', help: 'Continue after this cursor (printed on stderr when more records follow)' },
    all: { type: 'boolean', help: 'Follow the cursor to the end' },
    desc: { type: 'boolean', help: 'Newest first' },
    payloads: { type: 'boolean', help: 'With --json: each record carries its message (decoded, payload included) where the log kept the bytes' },
    replay: { type: 'boolean', help: 'With --conversation: replay it, one line per message in order, with its payload' },
    api: { type: 'boolean', help: 'Ask the running node\'s API instead of reading the store' },
    ...storeOption
  },
  run: async (p: Parsed) => {
    const v = p.values
    const filter: Record<string, unknown> = {}
    for (const k of ['id', 'agent', 'topic', 'conversation', 'type'] as const) if (stringFlag(v[k]) != null) filter[k] = v[k]
    const since = timeFlag(v.since, 'since')
    const until = timeFlag(v.until, 'until')
    if (since != null) filter.since = since
    if (until != null) filter.until = until
    if (listOf(v.status) != null) filter.status = listOf(v.status)
    if (listOf(v.event) != null) filter.event = listOf(v.event)
    const limit = intFlag(v.limit, 'limit', 1, 1000)
    const replay = v.replay === true
    if (replay && filter.conversation == null) throw new UsageError('--replay needs --conversation C')
    const source = v.api === true ? await apiSource(p.dir) : await directSource(p.dir, await storeConfigOf(p.dir, stringFlag(v.store)))
    try {
      if (replay) {
        const messages = await source.replay(filter.conversation as string, limit)
        if (messages.length === 0) process.stderr.write(noRecordsLine(filter, { replay: true }))
        for (const m of messages) {
          if (v.json === true) { out(clean(m)); continue }
          const r = asRecord(m)
          const body = m.message as { payload?: unknown, payloadBase64?: string } | undefined
          const payload: unknown = body?.payload ?? body?.payloadBase64
          process.stdout.write(`${text(r)}  ${JSON.stringify(payload ?? null)}\n`)
        }
        return
      }
      let cursor = stringFlag(v.cursor)
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await source.page(filter as LogFilter, { limit, cursor, order: v.desc === true ? 'desc' : 'asc', includeBytes: v.payloads === true })
        if (page === 0 && res.records.length === 0) process.stderr.write(noRecordsLine(filter, { cursor }))
        for (const r of res.records) {
          if (v.json === true) out(clean(r))
          else process.stdout.write(text(asRecord(r)) + '\n')
        }
        if (!res.more || res.cursor == null) return
        cursor = res.cursor
        if (v.all !== true) {
          process.stderr.write(JSON.stringify({ more: true, cursor }) + '\n')
          return
        }
      }
    } finally {
      await source.close()
    }
  }
}

/**
 * The `fedmesh` command. Commands that talk to a running node find it through `--dir`:
 * the node's API address (node.json, else config.json) and bearer token (api.token).
 * Bad flags or input: one line `fedmesh: <problem>` on stderr and exit code 2;
 * failures at run time: one line and exit code 1.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { existsSync } from 'node:fs'
import pino from 'pino'
import WebSocket from 'ws'
import { createNode } from '../node/mesh-node.ts'
import { openDataDir, parseRoles, readApiToken, readRuntimeInfo } from '../node/datadir.ts'
import { parsePattern, parseTopic } from '../core/topics.ts'
import { isAgentId } from '../core/keys.ts'
import type { NodeConfig } from '../node/types.ts'

class UsageError extends Error {}
class RuntimeError extends Error {}

const USAGE = `usage: fedmesh <command> [options]

  init --dir DIR [--network N] [--listen MA]… [--bootstrap MA]… [--api HOST:PORT] [--roles R,…]
  node start --dir DIR [--listen MA]… [--bootstrap MA]… [--api HOST:PORT] [--roles R,…] [--mdns] [--network N]
  status --dir DIR [--json]
  peers --dir DIR [--json]
  agent create NAME --dir DIR
  agent list --dir DIR [--json]
  sub PATTERN --dir DIR [--agent NAME] [--json] [--count N]
  pub TOPIC --dir DIR [--agent NAME] --data JSON [--schema URI] [--type T]
  send AGENT --dir DIR [--agent NAME] --data JSON [--confirm]
  request AGENT --dir DIR [--agent NAME] --data JSON [--timeout MS]
  rejections --dir DIR [--json]

--dir defaults to $FEDMESH_DIR or ~/.fedmesh.`

const common = {
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' }
} as const

function parse<T extends NonNullable<ParseArgsConfig['options']>> (args: string[], options: T, positionals: number) {
  let parsed
  try {
    parsed = parseArgs({ args, options: { ...common, ...options }, strict: true, allowPositionals: true })
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0])
  }
  const values = parsed.values as Record<string, unknown>
  if (values.help === true) { process.stdout.write(USAGE + '\n'); process.exit(0) }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(positionals === 0 ? `unexpected argument ${JSON.stringify(parsed.positionals[0])}` : `expected ${positionals} argument(s), got ${parsed.positionals.length}`)
  }
  const dir = (values.dir as string | undefined) ?? process.env.FEDMESH_DIR ?? join(homedir(), '.fedmesh')
  return { values, positionals: parsed.positionals, dir }
}

function parseJsonFlag (s: unknown, name: string): unknown {
  if (typeof s !== 'string') throw new UsageError(`--${name} is required`)
  try { return JSON.parse(s) } catch (err) { throw new UsageError(`--${name} is not valid JSON: ${(err as Error).message}`) }
}

function configOverrides (v: Record<string, unknown>): Partial<NodeConfig> {
  const o: Partial<NodeConfig> = {}
  if (v.network != null) o.network = v.network as string
  if ((v.listen as string[] | undefined)?.length) o.listen = v.listen as string[]
  if ((v.bootstrap as string[] | undefined)?.length) o.bootstrap = v.bootstrap as string[]
  if (v.api != null) o.api = v.api === 'off' ? false : v.api as string
  if (v.roles != null) o.roles = parseRoles(v.roles as string)
  if (v.mdns === true) o.mdns = true
  return o
}

const nodeFlags = {
  network: { type: 'string' },
  listen: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  api: { type: 'string' },
  roles: { type: 'string' },
  mdns: { type: 'boolean' },
  'log-level': { type: 'string' }
} as const

// ---- talking to a running node ----------------------------------------------------------

async function apiOf (dir: string): Promise<{ url: string, token: string }> {
  if (!existsSync(join(dir, 'node.key'))) throw new RuntimeError(`no fedmesh node in ${dir} (run: fedmesh init --dir ${dir})`)
  const token = await readApiToken(dir)
  const info = await readRuntimeInfo(dir)
  let url = info?.api
  if (url == null) {
    const { config } = await openDataDir(dir)
    if (config.api === false) throw new RuntimeError(`the node in ${dir} has its API disabled`)
    url = `http://${config.api}`
  }
  return { url, token: token ?? '' }
}

async function call (dir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<any> {
  const { url, token } = await apiOf(dir)
  let res: Response
  try {
    res = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(120_000)
    })
  } catch (err) {
    throw new RuntimeError(`cannot reach the node of ${dir} at ${url}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message} (is it running?)`)
  }
  const data = await res.json().catch(() => ({})) as any
  if (!res.ok) throw new RuntimeError(`${data?.error?.code ?? res.status}: ${data?.error?.message ?? res.statusText}`)
  return data
}

function out (v: unknown): void { process.stdout.write(JSON.stringify(v) + '\n') }

// ---- commands -----------------------------------------------------------------------------

async function cmdInit (args: string[]): Promise<void> {
  const { values, dir } = parse(args, nodeFlags, 0)
  const data = await openDataDir(dir, configOverrides(values), { save: true })
  process.stdout.write(data.peerId + '\n')
}

async function cmdNodeStart (args: string[]): Promise<void> {
  const { values, dir } = parse(args, nodeFlags, 0)
  const logger = pino({ level: (values['log-level'] as string | undefined) ?? 'info' }, pino.destination(2))
  const node = await createNode({ dir, logger, ...configOverrides(values) })
  out({ event: 'ready', peerId: node.peerId, addresses: node.multiaddrs(), api: node.apiUrl ?? null })
  logger.info({ peerId: node.peerId, addresses: node.multiaddrs(), api: node.apiUrl }, 'node ready')
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => { logger.info({ signal: sig }, 'stopping'); resolve() }
    process.once('SIGINT', () => { stop('SIGINT') })
    process.once('SIGTERM', () => { stop('SIGTERM') })
  })
  await node.stop()
  logger.info('stopped')
}

async function cmdStatus (args: string[]): Promise<void> {
  const { values, dir } = parse(args, {}, 0)
  const s = await call(dir, 'GET', '/v1/status')
  if (values.json === true) { out(s); return }
  process.stdout.write(`peer id   ${s.peerId}\nnetwork   ${s.network}\nroles     ${s.roles.join(', ')}\npeers     ${s.peers}\nagents    ${s.agents.length}\napi       ${s.api}\naddresses\n${s.addresses.map((a: string) => '  ' + a).join('\n')}\n`)
}

async function cmdPeers (args: string[]): Promise<void> {
  const { values, dir } = parse(args, {}, 0)
  const peers = await call(dir, 'GET', '/v1/peers')
  if (values.json === true) { out(peers); return }
  for (const p of peers) process.stdout.write(`${p.peerId}  ${p.status}  ${p.latencyMs != null ? p.latencyMs + ' ms' : '-'}  q=${p.quality}  ${(p.roles ?? []).join(',')}\n`)
}

async function cmdAgent (args: string[]): Promise<void> {
  const [sub, ...rest] = args
  if (sub === 'create') {
    const { positionals, dir } = parse(rest, {}, 1)
    const a = await call(dir, 'POST', '/v1/agents', { name: positionals[0] })
    process.stdout.write(a.id + '\n')
    return
  }
  if (sub === 'list') {
    const { values, dir } = parse(rest, {}, 0)
    const agents = await call(dir, 'GET', '/v1/agents')
    if (values.json === true) { out(agents); return }
    for (const a of agents) process.stdout.write(`${a.name ?? '-'}  ${a.id}  ${a.kind}\n`)
    return
  }
  throw new UsageError(`unknown agent command ${JSON.stringify(sub ?? '')}; use create or list`)
}

async function cmdSub (args: string[]): Promise<void> {
  const { values, positionals, dir } = parse(args, { agent: { type: 'string' }, count: { type: 'string' } }, 1)
  const pattern = parsePattern(positionals[0])
  const count = values.count != null ? Number(values.count) : Infinity
  if (!(count > 0)) throw new UsageError('--count must be a positive integer')
  const { url, token } = await apiOf(dir)
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws', { headers: { authorization: `Bearer ${token}` } })
  let seen = 0
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => { ws.send(JSON.stringify({ op: 'subscribe', id: 's', pattern, agent: values.agent })) })
    ws.on('error', (err) => { reject(new RuntimeError(`cannot reach the node of ${dir} at ${url}: ${err.message} (is it running?)`)) })
    ws.on('close', () => { resolve() })
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString())
      if (m.op === 'subscribed') process.stderr.write(JSON.stringify({ event: 'subscribed', pattern }) + '\n')
      else if (m.op === 'error') { reject(new RuntimeError(`${m.error.code}: ${m.error.message}`)); ws.close() }
      else if (m.op === 'message') {
        const msg = m.message
        out(values.json === true ? msg : { id: msg.id, topic: msg.topic, from: msg.from, payload: msg.payload ?? msg.payloadBase64 })
        if (++seen >= count) ws.close()
      }
    })
    process.once('SIGINT', () => { ws.close() })
    process.once('SIGTERM', () => { ws.close() })
  })
}

async function cmdPub (args: string[]): Promise<void> {
  const { values, positionals, dir } = parse(args, { agent: { type: 'string' }, data: { type: 'string' }, schema: { type: 'string' }, type: { type: 'string' } }, 1)
  const topic = parseTopic(positionals[0])
  const payload = parseJsonFlag(values.data, 'data')
  out(await call(dir, 'POST', '/v1/publish', { agent: values.agent, topic, payload, schema: values.schema, type: values.type }))
}

function agentArg (s: string): string {
  if (!isAgentId(s)) throw new UsageError(`not an agent id (did:key:z6Mk…): ${JSON.stringify(s)}`)
  return s
}

async function cmdSend (args: string[]): Promise<void> {
  const { values, positionals, dir } = parse(args, { agent: { type: 'string' }, data: { type: 'string' }, confirm: { type: 'boolean' } }, 1)
  const to = agentArg(positionals[0])
  const payload = parseJsonFlag(values.data, 'data')
  out(await call(dir, 'POST', '/v1/send', { agent: values.agent, to, payload, confirm: values.confirm === true ? true : undefined }))
}

async function cmdRequest (args: string[]): Promise<void> {
  const { values, positionals, dir } = parse(args, { agent: { type: 'string' }, data: { type: 'string' }, timeout: { type: 'string' } }, 1)
  const to = agentArg(positionals[0])
  const payload = parseJsonFlag(values.data, 'data')
  const timeout = values.timeout != null ? Number(values.timeout) : undefined
  if (timeout != null && !(Number.isInteger(timeout) && timeout > 0)) throw new UsageError('--timeout must be a positive integer (ms)')
  const reply = await call(dir, 'POST', '/v1/request', { agent: values.agent, to, payload, timeout })
  out(values.json === true ? reply : reply.payload ?? reply.payloadBase64)
}

async function cmdRejections (args: string[]): Promise<void> {
  const { values, dir } = parse(args, {}, 0)
  const r = await call(dir, 'GET', '/v1/rejections')
  if (values.json === true) { out(r); return }
  for (const [reason, n] of Object.entries(r.counts)) process.stdout.write(`${reason.padEnd(14)} ${n}\n`)
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  init: cmdInit,
  status: cmdStatus,
  peers: cmdPeers,
  agent: cmdAgent,
  sub: cmdSub,
  pub: cmdPub,
  send: cmdSend,
  request: cmdRequest,
  rejections: cmdRejections,
  node: async (args) => {
    if (args[0] !== 'start') throw new UsageError(`unknown node command ${JSON.stringify(args[0] ?? '')}; use: fedmesh node start`)
    await cmdNodeStart(args.slice(1))
  }
}

// `fedmesh sub … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })

async function main (argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv
  if (cmd == null || cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(USAGE + '\n'); return }
  const run = COMMANDS[cmd]
  if (run == null) throw new UsageError(`unknown command ${JSON.stringify(cmd)} (fedmesh --help lists them)`)
  await run(rest)
}

main(process.argv.slice(2)).then(
  () => { process.exitCode ??= 0 },
  (err: Error & { code?: string }) => {
    const usage = err instanceof UsageError || err.code === 'InvalidArgumentError' || err.code === 'InvalidTopicError'
    const prefix = err instanceof UsageError || err instanceof RuntimeError ? '' : `${err.code ?? err.name}: `
    process.stderr.write(`fedmesh: ${prefix}${err.message}\n`)
    process.exit(usage ? 2 : 1)
  }
)

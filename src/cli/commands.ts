/**
 * The `fedmesh` commands. `init` and `node start` work on the data dir directly; every
 * other command talks to the running node through its API (client.ts).
 * Machine-readable output is one JSON value per line on stdout; progress for scripts
 * (`{"event":"subscribed"}`) goes to stderr.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { lockDataDir, openDataDir, parseRoles } from '../node/datadir.ts'
import type { NodeConfig, NodeStatus } from '../node/types.ts'
import { parsePattern, parseTopic } from '../core/topics.ts'
import { isAgentId } from '../core/keys.ts'
import { REJECTION_REASONS } from '../core/ingress.ts'
import { LIMITS } from '../core/envelope.ts'
import { CliError, UsageError, intFlag, jsonFlag, listFlag, stringFlag, type Command, type OptionSpec, type Parsed } from './args.ts'
import { apiError, call, locateNode, openSocket, runningNode } from './client.ts'
import { SEMANTIC_COMMANDS } from './semantic-commands.ts'
import { DEMO_COMMANDS } from './demo.ts'
import { logCommand } from './log.ts'

function out (v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n')
}

function print (s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n')
}

const json: Record<string, OptionSpec> = { json: { type: 'boolean', help: 'Print JSON' } }
const agentOpt: Record<string, OptionSpec> = { agent: { type: 'string', arg: 'NAME', help: 'Local agent to act as (default "default"; created on first use)' } }

// ---- init and node start -------------------------------------------------------------

const nodeOptions: Record<string, OptionSpec> = {
  network: { type: 'string', arg: 'N', help: 'Network id (default fedmesh)' },
  listen: { type: 'string', multiple: true, arg: 'MA', help: 'libp2p listen multiaddr (repeatable)' },
  announce: { type: 'string', multiple: true, arg: 'MA', help: 'Extra address to announce (repeatable)' },
  bootstrap: { type: 'string', multiple: true, arg: 'MA', help: 'Bootstrap peer multiaddr with /p2p/ (repeatable)' },
  api: { type: 'string', arg: 'HOST:PORT', help: 'API address, or "off" (default 127.0.0.1:7400)' },
  roles: { type: 'string', arg: 'R,…', help: 'Node roles: full, light, gateway, validator, storage, compute' },
  mdns: { type: 'boolean', help: 'Enable mDNS discovery on the LAN (off by default)' },
  store: { type: 'string', arg: 'URL', help: 'PostgreSQL connection string for the store (default $FEDMESH_STORE_URL, else SQLite in DIR)' },
  replicas: { type: 'string', arg: 'K', help: 'Replicas of each durable message on storage-role nodes (default 2)' }
}

function configOverrides (v: Parsed['values']): Partial<NodeConfig> {
  const o: Partial<NodeConfig> = {}
  const network = stringFlag(v.network)
  if (network != null) o.network = network
  const listen = listFlag(v.listen)
  if (listen != null) o.listen = listen
  const announce = listFlag(v.announce)
  if (announce != null) o.announce = announce
  const bootstrap = listFlag(v.bootstrap)
  if (bootstrap != null) o.bootstrap = bootstrap
  const api = stringFlag(v.api)
  if (api != null) o.api = api === 'off' ? false : api
  const roles = stringFlag(v.roles)
  if (roles != null) o.roles = parseRoles(roles)
  if (v.mdns === true) o.mdns = true
  const replicas = intFlag(v.replicas, 'replicas', 0, 8)
  const url = stringFlag(v.store) ?? (process.env.FEDMESH_STORE_URL !== '' ? process.env.FEDMESH_STORE_URL : undefined)
  if (replicas != null || url != null) o.store = { ...(url != null ? { url } : {}), ...(replicas != null ? { replicas } : {}) }
  return o
}

/**
 * Checks --listen, --announce and --bootstrap before anything is written or started: libp2p
 * would otherwise fail at start with a bare parser message ("Please pass a multibase
 * decoder…"), and a bootstrap address without its peer id is silently never dialled.
 */
async function checkAddresses (v: Parsed['values']): Promise<void> {
  const { multiaddr } = await import('@multiformats/multiaddr')
  const { peerIdFromString } = await import('@libp2p/peer-id')
  for (const flag of ['listen', 'announce', 'bootstrap'] as const) {
    for (const a of listFlag(v[flag]) ?? []) {
      let components
      try {
        components = multiaddr(a).getComponents()
      } catch (err) {
        throw new UsageError(`--${flag} ${JSON.stringify(a)} is not a multiaddr: ${(err as Error).message}`)
      }
      const peers = components.filter(c => c.name === 'p2p')
      for (const p of peers) {
        try { peerIdFromString(p.value ?? '') } catch { throw new UsageError(`--${flag} ${JSON.stringify(a)}: ${JSON.stringify(p.value ?? '')} is not a peer id`) }
      }
      if (flag === 'bootstrap' && components.at(-1)?.name !== 'p2p') {
        throw new UsageError(`--bootstrap ${JSON.stringify(a)} must end with /p2p/<peer id> (the address a node prints when it starts)`)
      }
    }
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

const init: Command = {
  name: 'init',
  summary: 'Create a node identity, API token and config in DIR (or update its config), and print the peer id.',
  options: nodeOptions,
  run: async ({ values, dir }) => {
    const overrides = configOverrides(values)
    await checkAddresses(values)
    // The dir's lock, as a node start takes it: a node running on DIR read its config at its
    // start (a rewrite would not apply, yet would look as if it had), and an init racing a
    // first start could write a second identity over the one the node runs with.
    let lock
    try {
      lock = await lockDataDir(dir)
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.code === 'ConflictError') throw new CliError(e.message, { code: e.code })
      throw err
    }
    try {
      const data = await openDataDir(dir, overrides, { save: true })
      print(data.peerId)
    } finally {
      await lock.release()
    }
  }
}

const nodeStart: Command = {
  name: 'node start',
  summary: 'Run the node in the foreground. Prints {"event":"ready",peerId,addresses,api} on stdout when ready; logs go to stderr. ' +
    'SIGINT or SIGTERM stops it cleanly. A DIR without identity is initialised first.',
  options: { ...nodeOptions, 'log-level': { type: 'string', arg: 'LEVEL', help: `Log level: ${LOG_LEVELS.join(', ')} (default info)` } },
  run: async ({ values, dir }) => {
    const level = stringFlag(values['log-level']) ?? 'info'
    if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
    const overrides = configOverrides(values)
    await checkAddresses(values)
    // Two nodes on one dir would share its identity and store, and the first to stop would
    // remove the other's node.json.
    const running = await runningNode(dir)
    if (running != null) {
      throw new CliError(`a node is already running on ${dir} (pid ${running.pid}${running.api != null ? `, API ${running.api}` : ''}); stop it first, or give this one another --dir`)
    }
    const logger = pino({ level, base: { dir } }, pino.destination({ dest: 2, sync: true }))
    // Loaded here, not at the top: the other commands do not need libp2p.
    const { createNode } = await import('../node/mesh-node.ts')
    let node
    try {
      node = await createNode({ dir, logger, ...overrides })
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.code === 'InvalidArgumentError') throw err // bad config or flags: exit 2
      // Another node took the dir's lock (node.lock) since the check above: its message names the pid.
      if (e.code === 'ConflictError') throw new CliError(e.message, { code: e.code })
      if (e.code === 'StoreCorruptError') {
        throw new CliError(`cannot start the node in ${dir}: its store is corrupt (StoreCorruptError: ${e.message}); the node will not serve from it. Move the store aside or restore it from a backup.`, { code: e.code })
      }
      if (e.name === 'UnsupportedListenAddressesError') {
        // libp2p lists each address with its cause (and a stack) and suggests one of its own
        // settings; the user needs the address and the cause.
        const causes = [...e.message.matchAll(/^\s+(\/\S+): (?:Error: )?(.+)$/gm)].map(m => `${m[1]} (${m[2]})`)
        throw new CliError(`cannot start the node in ${dir}: cannot listen on ${causes.length > 0 ? causes.join(', ') : 'its --listen addresses'}; change --listen (or "listen" in config.json)`)
      }
      throw new CliError(`cannot start the node in ${dir}: ${e.code != null ? `${e.code}: ` : ''}${e.message}`, { code: e.code })
    }
    out({ event: 'ready', peerId: node.peerId, addresses: node.multiaddrs(), api: node.status().api ?? null })
    logger.info({ peerId: node.peerId, addresses: node.multiaddrs(), api: node.status().api }, 'node ready')
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => { resolve('SIGINT') })
      process.once('SIGTERM', () => { resolve('SIGTERM') })
    })
    logger.info({ signal }, 'stopping')
    // A second signal, or a stop that hangs, ends the process anyway.
    const force = (): void => { logger.error('forced exit'); process.exit(1) }
    process.once('SIGINT', force)
    process.once('SIGTERM', force)
    const timer = setTimeout(force, 15_000)
    timer.unref()
    await node.stop()
    clearTimeout(timer)
    logger.info('stopped')
  }
}

// ---- inspecting a running node -------------------------------------------------------

function statusText (s: NodeStatus): string {
  const rejected = Object.values(s.rejections).reduce((a, b) => a + b, 0)
  return [
    `peer id    ${s.peerId}`,
    `network    ${s.network}`,
    `roles      ${s.roles.join(', ')}`,
    `api        ${s.api ?? '-'}`,
    `uptime     ${Math.round(s.uptimeMs / 1000)} s`,
    `peers      ${s.peers}`,
    `agents     ${s.agents.length}${s.agents.length > 0 ? ` (${s.agents.map(a => a.name ?? a.id).join(', ')})` : ''}`,
    `messages   published ${s.counters.published}, delivered ${s.counters.delivered}, forwarded ${s.counters.forwarded}, received ${s.counters.received}, rejected ${rejected}`,
    ...(s.store != null ? [`durable    stored ${s.store.durable.stored}, delivered ${s.store.durable.delivered}, acked ${s.store.durable.acked}, expired ${s.store.durable.expired}, refused ${s.store.durable.refused}${s.store.durable.receiptsPending > 0 ? `, ${s.store.durable.receiptsPending} receipts waiting for their sender` : ''} (${s.store.kind} store; log ${s.store.log.written} written, ${s.store.log.dropped} dropped)`] : []),
    'addresses',
    ...s.addresses.map(a => `  ${a}`)
  ].join('\n')
}

const status: Command = {
  name: 'status',
  summary: 'Show the running node\'s status (peer id, full addresses, peers, agents, counters).',
  options: json,
  run: async ({ values, dir }) => {
    const s = await call<NodeStatus>(await locateNode(dir), 'GET', '/v1/status')
    if (values.json === true) out(s)
    else print(statusText(s))
  }
}

const peers: Command = {
  name: 'peers',
  summary: 'List the node\'s peers with status, latency, quality and roles.',
  options: json,
  run: async ({ values, dir }) => {
    const list = await call<Array<{ peerId: string, status: string, latencyMs?: number, quality: number, roles?: string[], relayed?: boolean }>>(await locateNode(dir), 'GET', '/v1/peers')
    if (values.json === true) { out(list); return }
    if (list.length === 0) { print('no peers'); return }
    for (const p of list) print(`${p.peerId}  ${p.status.padEnd(12)} ${p.latencyMs != null ? `${Math.round(p.latencyMs)} ms` : '-'}  quality ${p.quality}  ${(p.roles ?? []).join(',')}${p.relayed === true ? '  via relay' : ''}`)
  }
}

const agentCreate: Command = {
  name: 'agent create',
  args: ['NAME'],
  summary: 'Create (or load) the local agent NAME on the running node and print its id (did:key).',
  run: async ({ positionals, dir }) => {
    const a = await call<{ id: string }>(await locateNode(dir), 'POST', '/v1/agents', { name: positionals[0] })
    print(a.id)
  }
}

const agentList: Command = {
  name: 'agent list',
  summary: 'List the agents attached to the running node.',
  options: json,
  run: async ({ values, dir }) => {
    const list = await call<Array<{ id: string, name?: string, kind: string, subscriptions: string[], handlesRequests: boolean }>>(await locateNode(dir), 'GET', '/v1/agents')
    if (values.json === true) { out(list); return }
    if (list.length === 0) { print('no agents'); return }
    for (const a of list) print(`${(a.name ?? '-').padEnd(16)} ${a.id}  ${a.kind}${a.handlesRequests ? '  answers requests' : ''}${a.subscriptions.length > 0 ? `  subscribed: ${a.subscriptions.join(' ')}` : ''}`)
  }
}

function agentArg (s: string): string {
  if (!isAgentId(s)) throw new UsageError(`not an agent id (did:key:z6Mk…): ${JSON.stringify(s)}`)
  return s
}

const agentFind: Command = {
  name: 'agent find',
  args: ['AGENT'],
  summary: 'Find an agent\'s signed record (home nodes, capabilities) from the running node.',
  options: { ...json, wait: { type: 'string', arg: 'MS', help: 'Wait up to MS for the record to appear' } },
  run: async ({ values, positionals, dir }) => {
    const id = agentArg(positionals[0])
    const wait = intFlag(values.wait, 'wait', 0, 600_000) ?? 0
    const rec = await call<{ agent: string, name?: string, home: Array<{ id: string, addrs: string[] }>, caps: string[], exp: number }>(
      await locateNode(dir), 'GET', `/v1/agents/${encodeURIComponent(id)}/record${wait > 0 ? `?wait=${wait}` : ''}`, undefined, wait + 30_000)
    if (values.json === true) { out(rec); return }
    print(`${rec.agent}${rec.name != null ? ` (${rec.name})` : ''}\n${rec.home.map(h => `  home ${h.id}`).join('\n')}\n  caps ${rec.caps.join(', ') || '-'}\n  expires ${new Date(rec.exp).toISOString()}`)
  }
}

const rejections: Command = {
  name: 'rejections',
  summary: 'Show messages the node rejected at ingress: counts by reason, and the recent ones.',
  options: {
    ...json,
    reason: { type: 'string', arg: 'R', help: `Only this reason: ${REJECTION_REASONS.join(', ')}` },
    limit: { type: 'string', arg: 'N', help: 'At most N recent rejections (default 20)' }
  },
  run: async ({ values, dir }) => {
    const reason = stringFlag(values.reason)
    if (reason != null && !(REJECTION_REASONS as readonly string[]).includes(reason)) throw new UsageError(`--reason must be one of ${REJECTION_REASONS.join(', ')}`)
    const limit = intFlag(values.limit, 'limit', 1, 1000) ?? 20
    const q = new URLSearchParams({ limit: String(limit), ...(reason != null ? { reason } : {}) })
    const r = await call<{ counts: Record<string, number>, recent: Array<{ at: number, reason: string, detail: string, peer?: string }> }>(await locateNode(dir), 'GET', `/v1/rejections?${q.toString()}`)
    if (values.json === true) { out(r); return }
    for (const [k, n] of Object.entries(r.counts)) print(`${k.padEnd(14)} ${n}`)
    if (r.recent.length > 0) print('recent')
    for (const x of r.recent) print(`  ${new Date(x.at).toISOString()}  ${x.reason.padEnd(14)} ${x.peer ?? '-'}  ${x.detail}`)
  }
}

// ---- messaging -----------------------------------------------------------------------

interface WireMessage { id: string, topic?: string, from: string, to?: string[], type: string, payload?: unknown, payloadBase64?: string, dlv?: { durable?: boolean } }

function brief (m: WireMessage): Record<string, unknown> {
  return {
    id: m.id,
    ...(m.topic != null ? { topic: m.topic } : {}),
    from: m.from,
    ...(m.to != null ? { to: m.to } : {}),
    type: m.type,
    ...(m.payloadBase64 != null ? { payloadBase64: m.payloadBase64 } : { payload: m.payload })
  }
}

/** How long an interrupted `inbox` waits for the acknowledgements of what it printed. */
const ACK_WAIT_MS = 2_000

/**
 * Streams a subscription (op subscribe or messages) as JSON lines until --count or a signal.
 * The inbox subscribes with manual acknowledgements: each message is acknowledged once its
 * line is written, so a durable message the command never printed (it stopped first, or
 * was killed) stays in the inbox and comes again.
 */
async function stream (p: Parsed, request: Record<string, unknown>, what: string): Promise<void> {
  const count = intFlag(p.values.count, 'count', 1, Number.MAX_SAFE_INTEGER)
  const node = await locateNode(p.dir)
  const ws = await openSocket(node)
  const acks = request.op === 'messages'
  let seen = 0
  let unacked = 0
  await new Promise<void>((resolve, reject) => {
    let done = false
    let ending = false
    const finish = (err?: Error): void => {
      if (done) return
      done = true
      ws.close(1000)
      if (err != null) reject(err)
      else resolve()
    }
    // Done once every printed message is acknowledged (bounded when interrupted).
    const end = (): void => {
      ending = true
      if (unacked === 0) { finish(); return }
      setTimeout(() => { finish() }, ACK_WAIT_MS).unref()
    }
    ws.on('message', (raw) => {
      let m: { op?: string, error?: { code?: string, message?: string }, message?: WireMessage }
      try { m = JSON.parse(raw.toString()) } catch { return }
      if (m.op === 'subscribed') process.stderr.write(JSON.stringify({ event: 'subscribed', ...what === 'pattern' ? { pattern: request.pattern } : { inbox: true } }) + '\n')
      else if (m.op === 'error') finish(apiError(0, m))
      else if (m.op === 'acked') {
        if (--unacked === 0 && ending) finish()
      } else if (m.op === 'message' && m.message != null) {
        if (ending) return // not printed, not acknowledged: it comes again
        out(p.values.json === true ? m.message : brief(m.message))
        if (acks && m.message.dlv?.durable === true) {
          unacked++
          ws.send(JSON.stringify({ op: 'ack', id: 'cli', message: m.message.id }))
        }
        if (count != null && ++seen >= count) end()
      }
    })
    ws.on('close', (code, reason) => { finish(done ? undefined : new CliError(`the node at ${node.url} closed the connection (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`)) })
    ws.on('error', (err) => { finish(new CliError(`connection to the node at ${node.url} failed: ${err.message}`)) })
    const stop = (): void => { end() }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    ws.send(JSON.stringify({ op: request.op, id: 'cli', ...request, ...(acks ? { ack: 'manual' } : {}), ...(p.values.agent != null ? { agent: p.values.agent } : {}) }))
  })
}

const streamOptions: Record<string, OptionSpec> = {
  ...agentOpt,
  json: { type: 'boolean', help: 'Print each message in full (the API\'s message JSON) instead of id/topic/from/payload' },
  count: { type: 'string', arg: 'N', help: 'Exit after N messages' }
}

const sub: Command = {
  name: 'sub',
  args: ['PATTERN'],
  summary: 'Subscribe to PATTERN (`*` one level, `#` last level: all below) and print one JSON line per message: id, topic, from, type, payload. ' +
    'Prints {"event":"subscribed"} on stderr once active.',
  options: streamOptions,
  run: async (p) => {
    const pattern = parsePattern(p.positionals[0])
    await stream(p, { op: 'subscribe', pattern }, 'pattern')
  }
}

const inbox: Command = {
  name: 'inbox',
  summary: 'Print the direct, multicast and broadcast messages addressed to a local agent, one JSON line each. ' +
    'A durable message is acknowledged once its line is written: one not printed (--count reached, interrupted, killed) comes again next time.',
  options: streamOptions,
  run: async (p) => { await stream(p, { op: 'messages' }, 'inbox') }
}

const sendOptions: Record<string, OptionSpec> = {
  ...agentOpt,
  data: { type: 'string', arg: 'JSON', help: 'Payload, as JSON (required)' },
  type: { type: 'string', arg: 'T', help: 'Performative or message type' },
  schema: { type: 'string', arg: 'URI', help: 'Schema URI, e.g. market/rfp@1.0.0 (the payload is validated before it is sent)' },
  protocol: { type: 'string', arg: 'URI', help: 'Protocol of the conversation, e.g. proto/request@1.0.0 (the step is checked)' },
  conversation: { type: 'string', arg: 'ID', help: 'Conversation id' },
  ttl: { type: 'string', arg: 'S', help: 'Time to live in seconds (default 300)' },
  priority: { type: 'string', arg: 'P', help: 'Priority 0–3 (default 1)' }
}

function common (values: Parsed['values']): Record<string, unknown> {
  return {
    agent: stringFlag(values.agent),
    payload: jsonFlag(values.data, 'data'),
    type: stringFlag(values.type),
    schema: stringFlag(values.schema),
    protocol: stringFlag(values.protocol),
    conversation: stringFlag(values.conversation),
    ttl: intFlag(values.ttl, 'ttl', 1, LIMITS.maxTtlSeconds),
    priority: intFlag(values.priority, 'priority', 0, 3)
  }
}

const pub: Command = {
  name: 'pub',
  args: ['TOPIC'],
  summary: 'Publish a message to TOPIC as a local agent; prints {"id":…}.',
  options: sendOptions,
  run: async ({ values, positionals, dir }) => {
    const topic = parseTopic(positionals[0])
    const body = { ...common(values), topic }
    const r = await call<{ id: string }>(await locateNode(dir), 'POST', '/v1/publish', body)
    out({ id: r.id })
  }
}

const send: Command = {
  name: 'send',
  args: ['AGENT'],
  summary: 'Send a direct message to AGENT (a did:key, on any node); prints {"id":…,"confirmed":[…]}.',
  options: {
    ...sendOptions,
    confirm: { type: 'boolean', help: 'Wait for the recipient node\'s delivery confirmation' },
    retries: { type: 'string', arg: 'N', help: 'Retransmit up to N times until confirmed' },
    durable: { type: 'boolean', help: 'Store-and-forward: answered once the message is on stable storage at the recipient\'s home node (or replicas); delivered when it comes online' },
    conversation: { type: 'string', arg: 'C', help: 'Conversation id' }
  },
  run: async ({ values, positionals, dir }) => {
    const to = agentArg(positionals[0])
    const body = {
      ...common(values),
      to,
      confirm: values.confirm === true ? true : undefined,
      retries: intFlag(values.retries, 'retries', 0, LIMITS.maxRetries),
      durable: values.durable === true ? true : undefined,
      conversation: stringFlag(values.conversation)
    }
    out(await call(await locateNode(dir), 'POST', '/v1/send', body, 120_000))
  }
}

const request: Command = {
  name: 'request',
  args: ['AGENT'],
  summary: 'Send a request to AGENT and print the reply\'s payload as JSON. No responder, timeout or a failing handler: one-line typed error, exit 1.',
  options: {
    ...sendOptions,
    timeout: { type: 'string', arg: 'MS', help: 'Give up after MS milliseconds (default 10000)' },
    json: { type: 'boolean', help: 'Print the whole reply message, not just its payload' }
  },
  run: async ({ values, positionals, dir }) => {
    const to = agentArg(positionals[0])
    const timeout = intFlag(values.timeout, 'timeout', 1, 300_000)
    const body = { ...common(values), to, timeout }
    const reply = await call<WireMessage>(await locateNode(dir), 'POST', '/v1/request', body, (timeout ?? 10_000) + 30_000)
    if (values.json === true) out(reply)
    else out(reply.payloadBase64 != null ? { payloadBase64: reply.payloadBase64 } : reply.payload)
  }
}

export const COMMANDS: Command[] = [init, nodeStart, status, peers, agentCreate, agentList, agentFind, sub, inbox, pub, send, request, rejections, logCommand, ...SEMANTIC_COMMANDS, ...DEMO_COMMANDS]

export function usage (): string {
  const width = Math.max(...COMMANDS.map(c => `${c.name}${(c.args ?? []).map(a => ` ${a}`).join('')}`.length))
  const lines = COMMANDS.map(c => {
    const head = `${c.name}${(c.args ?? []).map(a => ` ${a}`).join('')}`
    return `  ${head.padEnd(width)}  ${c.summary.split('. ')[0].replace(/\.$/, '')}`
  })
  return `usage: fedmesh <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n` +
    'Every command takes --help, and all but demo --dir DIR (default $FEDMESH_DIR or ~/.fedmesh).\n' +
    'Commands other than init and node start talk to the node running on DIR through its API.\n'
}

/** Used by tests and `fedmesh init`: whether DIR already holds a node identity. */
export function hasIdentity (dir: string): boolean {
  return existsSync(join(dir, 'node.key'))
}

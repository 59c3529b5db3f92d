/**
 * MeshNode: composes the data dir, libp2p (net/), the peer tracker, the router and the
 * agents hosted here, and starts the local API when configured. This is the one
 * assembler; the services do not know about each other beyond their components.
 */
import { cpus, totalmem } from 'node:os'
import pino from 'pino'
import type { AgentId, NetworkId } from '../core/ids.ts'
import { agentKeyFromSeed, isAgentId } from '../core/keys.ts'
import { parseTopic } from '../core/topics.ts'
import { AgentNotFoundError, InvalidArgumentError, TimeoutError, abortReason } from '../core/errors.ts'
import type { RejectionReason } from '../core/ingress.ts'
import { createNet, type Net } from '../net/libp2p.ts'
import { PeerTracker } from '../net/peers.ts'
import { dhtSelectors, dhtValidators, signNodeRecord, type AgentRecord, type NodeRecord } from '../net/records.ts'
import { Router, AGENT_RECORD_TTL_MS } from '../routing/router.ts'
import type { AgentTransport } from '../routing/types.ts'
import { createAgent, type AgentImpl } from '../sdk/agent.ts'
import { createValidation } from '../semantic/index.ts'
import { listAgentIds, loadAgentKey, lockDataDir, openDataDir, validateConfig, removeRuntimeInfo, writeRuntimeInfo, type DataDir, type DataDirLock } from './datadir.ts'
import { INGRESS_FETCH_MS, NodeSemantics } from './semantic.ts'
import type { ApiSemantics } from '../api/semantic-routes.ts'
import type { AgentSemantics } from '../sdk/conversations.ts'
import type { AgentKey } from '../core/keys.ts'
import type { AbortOptions, AgentInfo, CreateNodeOptions, Logger, MeshNode, NodeConfig, NodeStatus, PeerInfo } from './types.ts'
import { openNodeStore, STORE_DEFAULTS } from './storage.ts'
import type { LogFilter, LogPage, LogRecord, MessageStore, QueryOptions } from '../store/types.ts'
import { LogRecorder, type MessageObservation } from '../log/recorder.ts'
import { DurableService } from '../delivery/durable.ts'
import { isReceipt } from '../delivery/receipts.ts'

/** Below this many connections, discovered peers are dialed. */
const MIN_CONNECTIONS = 16

export interface ApiHandle { url: string, close: () => Promise<void> }

/** How often `waitForAgent` looks for a record that arrived by another path during a DHT query. */
const WAIT_POLL_MS = 100
/** Connected peers whose directories `waitForAgent` asks with each attempt. */
const WAIT_DIRECTORY_PEERS = 8

export class MeshNodeImpl implements MeshNode {
  readonly peerId: string
  readonly network: NetworkId
  readonly dir: string
  readonly config: NodeConfig
  readonly apiToken: string
  readonly net: Net
  readonly router: Router
  readonly tracker: PeerTracker
  readonly transport: AgentTransport
  readonly logger: Logger
  /** Schema registry, its distribution and disk cache, and the ingress check (docs/SEMANTIC.md). */
  readonly semantics: NodeSemantics
  /** The registry routes of the API. */
  readonly semantic: ApiSemantics
  private readonly agentSemantics: AgentSemantics
  readonly store: MessageStore
  readonly recorder: LogRecorder
  readonly durable: DurableService
  private readonly data: DataDir
  private readonly lock?: DataDirLock
  private readonly keyIds: Set<string>
  private readonly local = new Map<string, Promise<AgentImpl>>()
  private readonly startedAt = Date.now()
  private api?: ApiHandle
  private stopping?: Promise<void>

  constructor (data: DataDir, net: Net, logger: Logger, store: MessageStore, keyIds: Set<string>, lock?: DataDirLock) {
    this.data = data
    this.lock = lock
    this.store = store
    this.keyIds = keyIds
    this.dir = data.dir
    this.config = data.config
    this.apiToken = data.apiToken
    this.peerId = data.peerId
    this.network = data.config.network as NetworkId
    this.net = net
    this.logger = logger
    this.tracker = new PeerTracker(net)
    this.semantics = new NodeSemantics({
      net,
      network: this.network,
      dir: this.dir,
      storage: this.config.roles.includes('storage'),
      logger,
      nodeRecords: () => this.router.nodeRecords()
    })
    const sem = this.semantics
    this.semantic = {
      registry: sem.registry,
      validation: sem.validation,
      network: sem.network,
      publishDocument: async (bytes, o) => await sem.publish(bytes, o),
      publishSchema: async (input, o) => await sem.publishSchema(input, await this.agentKey(o.agent), o),
      publishProtocol: async (def, o) => await sem.publishProtocol(def, await this.agentKey(o.agent), o),
      checkSubmission: async (env) => { if (env.schema != null) await sem.validation.checkOutgoing(env, { signal: AbortSignal.timeout(INGRESS_FETCH_MS) }) }
    }
    this.agentSemantics = {
      registry: sem.registry,
      validation: createValidation(sem.registry),
      lookupCaps: async (agent, o) => (await this.router.findAgent(agent, o)).caps
    }
    const storeConfig = { ...STORE_DEFAULTS, ...this.config.store }
    this.recorder = new LogRecorder({
      store,
      logger,
      retention: { maxAgeMs: storeConfig.logMaxAgeMs, maxBytes: storeConfig.logMaxBytes },
      payloads: storeConfig.logPayloads
    })
    const observe = (o: MessageObservation): void => { this.recorder.observe(o) }
    this.router = new Router({
      net,
      network: this.network,
      ingress: { network: this.network, maxBytes: this.config.maxMessageBytes, clockSkewMs: this.config.clockSkewMs },
      peers: this.tracker,
      logger,
      nodeRecord: async () => await this.nodeRecord(),
      inspect: (env) => sem.inspect(env),
      onControlDocument: (peer, bytes) => sem.onControlDocument(peer, bytes),
      observe,
      // A receipt from a link: the sender's log marks, then (when it asks) its confirmation.
      take: (env, handOver) => isReceipt(env) ? this.durable.takeReceipt(env, handOver) : undefined,
      signNode: nodeSigner(data.privateKey)
    })
    const router = this.router
    this.durable = new DurableService({
      net,
      network: this.network,
      peerId: this.peerId,
      roles: this.config.roles,
      store,
      ingress: { network: this.network, maxBytes: this.config.maxMessageBytes, clockSkewMs: this.config.clockSkewMs },
      logger,
      observe,
      recorder: this.recorder,
      nodeRecords: () => router.nodeRecords(),
      knownAgent: (id) => router.knownAgent(id),
      findAgent: async (id, options) => await router.findAgent(id, options),
      route: async (env) => await router.submit(env),
      hostsKey: (id) => this.keyIds.has(id),
      dir: this.dir
    }, { replicas: storeConfig.replicas, replicaWaitMs: storeConfig.replicaWaitMs, quota: storeConfig.quota })
    const durable = this.durable
    this.transport = {
      // No async wrapper: both return their promise and never throw (one promise less per message).
      submit: (env, options) => durable.handles(env) ? durable.submit(env, options) : router.submit(env, options),
      submitTo: (env, options, sink) => { if (durable.handles(env)) durable.submitTo(env, options, sink); else router.submit(env, options).then(sink.resolve, sink.reject) },
      publishNow: (env) => { router.publishNow(env) },
      sendNow: (env) => { if (durable.handles(env)) durable.submit(env).catch(() => {}); else router.sendNow(env) },
      queuedBytes: () => router.topics.queuedBytes(),
      drained: async (bytes) => { await router.topics.drained(bytes) },
      subscribe: async (agent, pattern) => { router.subscribe(agent, pattern) },
      unsubscribe: async (agent, pattern) => { router.unsubscribe(agent, pattern) },
      openStream: async (open, options) => await router.openStream(open, options),
      attach: async (endpoint, onStream) => {
        await router.attach(endpoint, onStream)
        durable.attached(endpoint)
      },
      detach: async (agent) => {
        durable.detached(agent)
        await router.detach(agent)
      },
      markProcessed: async (agent, id, expiresAt) => await durable.markProcessed(agent, id, expiresAt),
      isProcessed: async (agent, id) => await durable.isProcessed(agent, id)
    }
  }

  /** Started by createNode; separate so the API can be given a fully built node. */
  async start (): Promise<void> {
    this.tracker.start()
    // libp2p 3 does not dial discovered peers by itself (bootstrap does; mDNS and the DHT
    // only report them). Dial them while the node has few connections, so a LAN found by
    // mDNS forms a mesh; past the floor, gossip and the DHT carry discovery.
    this.net.addEventListener('peer:discovery', (e) => {
      const peer = e.detail.id
      if (peer.equals(this.net.peerId) || this.net.getConnections(peer).length > 0) return
      if (this.net.getConnections().length >= MIN_CONNECTIONS) return
      this.tracker.dialing(peer.toString())
      void this.net.dial(peer, { signal: AbortSignal.timeout(10_000) }).catch((err: Error) => {
        this.tracker.dialFailed(peer.toString())
        this.logger.debug({ peer: peer.toString(), err: err.message }, 'dial of discovered peer failed')
      })
    })
    await this.semantics.start()
    await this.router.start()
    this.recorder.start()
    await this.durable.start()
    if (this.config.api !== false) {
      const [host, port] = splitHostPort(this.config.api)
      // Binds the port now, loads Fastify and the routes on the first connection (api/lazy.ts).
      const { startLazyApi } = await import('../api/lazy.ts')
      this.api = await startLazyApi(this, { host, port, token: this.apiToken, logger: this.logger })
    }
    await writeRuntimeInfo(this.dir, { pid: process.pid, peerId: this.peerId, addresses: this.multiaddrs(), api: this.api?.url, startedAt: this.startedAt })
    void this.router.announceAll()
  }

  get apiUrl (): string | undefined { return this.api?.url }

  multiaddrs (): string[] {
    return this.net.getMultiaddrs().map(String)
  }

  async agent (name: string, options: { capabilities?: string[] } = {}): Promise<AgentImpl> {
    let p = this.local.get(name)
    // An agent closed by its holder: the name gets a new agent object (same key), attached anew.
    if (p != null && (await p.catch(() => undefined))?.isClosed === true) p = undefined
    if (p == null) {
      p = (async () => {
        const key = await loadAgentKey(this.dir, name, { create: true })
        if (key == null) throw new InvalidArgumentError(`cannot create agent ${name}`)
        this.keyIds.add(key.id)
        return await createAgent(key, this.transport, { network: this.network, name, capabilities: options.capabilities, kind: 'local', semantics: this.agentSemantics })
      })()
      this.local.set(name, p)
      p.catch(() => { this.local.delete(name) })
    }
    return await p
  }

  /** The key of local agent `name` (default `default`), created on first use: it signs what the API publishes. */
  private async agentKey (name: string = 'default'): Promise<AgentKey> {
    const key = await loadAgentKey(this.dir, name, { create: true })
    if (key == null) throw new InvalidArgumentError(`cannot create agent ${name}`)
    return key
  }

  agents (): AgentInfo[] {
    return this.router.localAgents().map(ep => ({
      id: ep.agent,
      name: ep.name,
      kind: ep.kind,
      subscriptions: this.router.subscriptionsOf(ep.agent),
      handlesRequests: ep.handlesRequests()
    }))
  }

  status (): NodeStatus {
    return {
      peerId: this.peerId,
      network: this.network,
      addresses: this.multiaddrs(),
      peers: this.net.getPeers().length,
      roles: this.config.roles,
      agents: this.agents(),
      api: this.api?.url,
      uptimeMs: Date.now() - this.startedAt,
      rejections: { ...this.router.rejections.counts },
      counters: { ...this.router.counters },
      topics: this.router.topics.counts(),
      store: { kind: this.store.kind, durable: { ...this.durable.counters, receiptsPending: this.durable.receiptsPending }, log: this.recorder.stats() }
    }
  }

  peers (): PeerInfo[] {
    const records = new Map(this.router.nodeRecords().map(r => [r.peer, r]))
    const connected = new Set(this.net.getPeers().map(String))
    return this.tracker.list()
      .filter(p => connected.has(p.peerId) || p.status !== 'connected')
      .map(p => ({ ...p, roles: records.get(p.peerId)?.roles, capacity: records.get(p.peerId)?.capacity }))
  }

  nodeRecords (): NodeRecord[] {
    return this.router.nodeRecords()
  }

  rejections (filter: { reason?: RejectionReason, limit?: number } = {}) {
    return { counts: { ...this.router.rejections.counts }, recent: this.router.rejections.list(filter) }
  }

  topicInterest (topic: string): string[] {
    return this.router.topics.core.interestedIn(parseTopic(topic))
  }

  async findAgent (id: AgentId | string, options: AbortOptions = {}): Promise<AgentRecord> {
    if (!isAgentId(id)) throw new InvalidArgumentError(`not an agent id (did:key): ${JSON.stringify(id)}`)
    return await this.router.findAgent(id, options)
  }

  async waitForAgent (id: AgentId | string, options: AbortOptions = {}): Promise<AgentRecord> {
    if (!isAgentId(id)) throw new InvalidArgumentError(`not an agent id (did:key): ${JSON.stringify(id)}`)
    const signal = options.signal ?? AbortSignal.timeout(30_000)
    for (let attempt = 0; ; attempt++) {
      const known = this.router.knownAgent(id)
      if (known != null) return known
      // The record may come by another path while the DHT query runs (a control-topic
      // announcement, a peer's directory): that ends the attempt at once. Before, a record
      // that arrived during a query on a loaded node waited for the query's bound (up to 10 s).
      const heard = new AbortController()
      const watch = setInterval(() => { if (this.router.knownAgent(id) != null) heard.abort() }, WAIT_POLL_MS)
      // And the connected peers are asked for their directories: one hop, no query. A record
      // whose announcement this node missed (published before the gossip mesh formed) is
      // otherwise found only through the DHT, whose queries a starved node may never finish
      // within a bound; the peers' directories are asked once more with each attempt.
      for (const peer of this.net.getPeers().slice(0, WAIT_DIRECTORY_PEERS)) void this.router.fetchDirectory(peer.toString())
      try {
        // Growing per-attempt bounds: a loaded node's DHT query may need more than the first.
        return await this.router.findAgent(id, { signal: AbortSignal.any([signal, heard.signal, AbortSignal.timeout(Math.min(10_000, 2000 * (attempt + 1)))]) })
      } catch (err) {
        if (signal.aborted) throw abortReason(signal, `waiting for agent ${id}`)
        if (heard.signal.aborted) continue
        // One attempt's own bound running out is not the end of the wait: try again.
        if (!(err instanceof AgentNotFoundError) && !(err instanceof TimeoutError)) throw err
      } finally {
        clearInterval(watch)
      }
      await new Promise(resolve => setTimeout(resolve, Math.min(1000, 100 * (attempt + 1))))
    }
  }

  async dial (addr: string, options: AbortOptions = {}): Promise<void> {
    const { multiaddr } = await import('@multiformats/multiaddr')
    let ma
    try { ma = multiaddr(addr) } catch (err) { throw new InvalidArgumentError(`bad multiaddr ${JSON.stringify(addr)}: ${(err as Error).message}`) }
    await this.net.dial(ma, { signal: options.signal ?? AbortSignal.timeout(10_000) })
  }

  async log (filter: LogFilter = {}, options: QueryOptions = {}): Promise<LogPage> {
    await this.recorder.flush()
    return await this.store.query(filter, options)
  }

  async conversation (conv: string, options: { limit?: number } & AbortOptions = {}): Promise<LogRecord[]> {
    await this.recorder.flush()
    return await this.store.conversation(conv, options)
  }

  private async nodeRecord (): Promise<NodeRecord> {
    const now = Date.now()
    return await signNodeRecord({
      v: 1,
      net: this.network,
      peer: this.peerId,
      roles: this.config.roles,
      caps: ['pubsub', 'direct', 'request', 'stream', 'broadcast', 'multicast', ...(this.config.relay ? ['relay'] : [])],
      capacity: { cpus: cpus().length, memoryMB: Math.round(totalmem() / 1048576), ...this.config.capacity },
      addrs: this.multiaddrs(),
      agents: this.router.localAgents().length,
      seq: now,
      exp: now + AGENT_RECORD_TTL_MS
    }, this.data.privateKey)
  }

  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      for (const p of this.local.values()) await p.then(a => a.close()).catch(() => {})
      await this.api?.close().catch(() => {})
      this.tracker.stop()
      await this.durable.stop()
      await this.router.stop()
      await this.semantics.stop()
      await this.net.stop()
      await this.recorder.stop()
      await this.store.close().catch((err: Error) => { this.logger.warn({ err: err.message }, 'store close failed') })
      await removeRuntimeInfo(this.dir)
      // Last: the next node on this dir may start once this one has let go of the store.
      await this.lock?.release()
    })()
    await this.stopping
  }
}

/**
 * Synchronous signing with the node's Ed25519 key (the dissemination core signs interest
 * records inline). libp2p keeps the 32-byte seed followed by the public key in `raw`.
 */
function nodeSigner (key: DataDir['privateKey']): (input: Uint8Array) => Uint8Array {
  if (key.type !== 'Ed25519') throw new InvalidArgumentError(`node key must be Ed25519, not ${key.type}`)
  const signer = agentKeyFromSeed(key.raw.subarray(0, 32))
  return (input) => signer.sign(input)
}

function splitHostPort (s: string): [string, number] {
  const i = s.lastIndexOf(':')
  const host = s.slice(0, i).replace(/^\[|\]$/g, '')
  return [host, Number(s.slice(i + 1))]
}

/**
 * Creates and starts a node.
 *
 * @example
 * ```ts
 * const node = await createNode({ dir: './data', listen: ['/ip4/127.0.0.1/tcp/0'], api: false })
 * const alice = await node.agent('alice')
 * for await (const msg of alice.subscribe('news/#')) console.log(msg.topic, msg.data())
 * ```
 */
export async function createNode (options: CreateNodeOptions): Promise<MeshNodeImpl> {
  if (options == null || typeof options.dir !== 'string' || options.dir.length === 0) throw new InvalidArgumentError('createNode needs a data dir: { dir }')
  const { dir, logger: givenLogger, ...overrides } = options
  const logger: Logger = givenLogger ?? pino({ level: 'silent' })
  // Bad options are refused before the dir is touched.
  validateConfig(overrides, 'the createNode options')
  // Before anything in the dir is read or written: two starts at once on a new dir would
  // otherwise each create an identity.
  const lock = await lockDataDir(dir, logger)
  let store: MessageStore | undefined
  let net
  let keyIds
  let data
  try {
    data = await openDataDir(dir, overrides)
    // The store first: a damaged one stops the node here, before it joins the network.
    store = await openNodeStore(dir, data.config.store)
    keyIds = new Set(await listAgentIds(dir))
    const relayServer = data.config.relay && data.config.roles.some(r => r === 'full' || r === 'gateway')
    net = await createNet({
      privateKey: data.privateKey,
      network: data.config.network as NetworkId,
      listen: data.config.listen,
      announce: data.config.announce,
      bootstrap: data.config.bootstrap,
      mdns: data.config.mdns,
      relayServer,
      dhtValidators,
      dhtSelectors
    })
  } catch (err) {
    await store?.close().catch(() => {})
    await lock.release()
    throw err
  }
  const node = new MeshNodeImpl(data, net, logger, store, keyIds, lock)
  try {
    await node.start()
  } catch (err) {
    await node.stop().catch(() => {})
    throw err
  }
  return node
}

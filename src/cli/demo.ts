/**
 * `fedmesh demo`: a small local mesh — one node process for the buyer and one per seller,
 * on loopback with free ports and temporary data dirs — running the market protocol end
 * to end with remote agents (src/sdk/market-agents.ts) and printing the conversation as it
 * happens. Then it audits the exported conversation and leaves the nodes running for
 * inspection with the CLI until Ctrl-C (or stops at once with --exit-after-run).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { randomBytes } from 'node:crypto'
import { CliError, intFlag, type Command } from './args.ts'
import { auditText } from './semantic-commands.ts'

const BIN = fileURLToPath(new URL('../../bin/fedmesh.js', import.meta.url))
const READY_TIMEOUT_MS = 60_000

function print (s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n')
}

interface DemoNode { name: string, dir: string, child: ChildProcess, api: string, addresses: string[], peerId: string }

/** Starts `fedmesh node start` in its own process and waits for its ready line. */
async function startNode (name: string, dir: string, network: string, bootstrap: string[], roles: string): Promise<DemoNode> {
  const args = [BIN, 'node', 'start', '--dir', dir, '--network', network, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--roles', roles, '--log-level', 'warn',
    ...bootstrap.flatMap(b => ['--bootstrap', b])]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (c: string) => { if (stderr.length < 8192) stderr += c })
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  return await new Promise<DemoNode>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new CliError(`node ${name} did not start within ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`)) }, READY_TIMEOUT_MS)
    child.once('exit', (code) => { clearTimeout(timer); reject(new CliError(`node ${name} exited (${String(code)}) before it was ready: ${stderr.trim()}`)) })
    lines.on('line', (line) => {
      let m: { event?: string, api?: string, addresses?: string[], peerId?: string }
      try { m = JSON.parse(line) } catch { return }
      if (m.event !== 'ready' || m.api == null) return
      clearTimeout(timer)
      child.removeAllListeners('exit')
      resolve({ name, dir, child, api: m.api, addresses: m.addresses ?? [], peerId: m.peerId ?? '' })
    })
  })
}

async function stopNode (n: DemoNode): Promise<void> {
  if (n.child.exitCode != null || n.child.signalCode != null) return
  const exited = new Promise(resolve => n.child.once('exit', resolve))
  n.child.kill('SIGTERM')
  const t = setTimeout(() => { n.child.kill('SIGKILL') }, 10_000)
  await exited
  clearTimeout(t)
}

const demo: Command = {
  name: 'demo',
  summary: 'Start a small local mesh (one node process for a buyer, one per seller; loopback, free ports, temporary data dirs), ' +
    'run the market protocol end to end and print the conversation as it happens, audit it, and leave the nodes running for ' +
    '`fedmesh … --dir` until Ctrl-C. --exit-after-run stops everything once the run is done.',
  options: {
    sellers: { type: 'string', arg: 'N', help: 'Seller nodes (1–8, default 3; the third sells something else and refuses)' },
    'exit-after-run': { type: 'boolean', help: 'Stop the mesh and exit when the run is done (for scripts and tests)' },
    keep: { type: 'boolean', help: 'Keep the data dirs after stopping (they are removed by default)' }
  },
  dir: false,
  run: async ({ values }) => {
    const sellerCount = intFlag(values.sellers, 'sellers', 1, 8) ?? 3
    // Loaded here: the other commands do not need the SDK.
    const { connect } = await import('../sdk/remote.ts')
    const { generateAgentKey } = await import('../core/keys.ts')
    const { runBuyer, runSeller, MARKET_CAPABILITIES } = await import('../sdk/market-agents.ts')
    const { auditConversation, createSchemaRegistry, importConversation } = await import('../semantic/index.ts')

    const base = await mkdtemp(join(tmpdir(), 'fedmesh-demo-'))
    const network = `demo-${randomBytes(4).toString('hex')}`
    const nodes: DemoNode[] = []
    const agents: Array<{ close: () => Promise<void> }> = []
    const sellerStops: AbortController[] = []
    const stopAll = async (): Promise<void> => {
      for (const s of sellerStops) s.abort()
      await Promise.allSettled(agents.map(async a => { await a.close() }))
      await Promise.allSettled(nodes.map(stopNode))
      if (values.keep !== true) await rm(base, { recursive: true, force: true })
    }
    // A demo killed by Ctrl-C while starting still takes its node processes down.
    const onExit = (): void => { for (const n of nodes) n.child.kill('SIGKILL') }
    process.once('exit', onExit)
    const started = Date.now()
    const t = (): string => `+${String(Date.now() - started).padStart(5)} ms`
    try {
      print(`starting ${1 + sellerCount} nodes on loopback (network ${network}) in ${base}`)
      const hub = await startNode('buyer-node', join(base, 'buyer-node'), network, [], 'full,storage')
      nodes.push(hub)
      const sellerNodes = await Promise.all(Array.from({ length: sellerCount }, async (_v, i) =>
        await startNode(`seller-node-${i + 1}`, join(base, `seller-node-${i + 1}`), network, [hub.addresses[0]], 'full')))
      nodes.push(...sellerNodes)
      for (const n of nodes) print(`  ${n.name.padEnd(14)} ${n.api}  ${n.dir}`)
      print(`${t()}  nodes ready`)

      const names = new Map<string, string>()
      const token = async (n: DemoNode): Promise<string> => (await readFile(join(n.dir, 'api.token'), 'utf8')).trim()
      const buyerKey = generateAgentKey()
      const buyer = await connect({ url: hub.api, token: await token(hub), key: buyerKey, name: 'buyer', capabilities: [...MARKET_CAPABILITIES] })
      agents.push(buyer)
      names.set(buyer.id, 'buyer')
      const sellers = await Promise.all(sellerNodes.map(async (n, i) => {
        const key = generateAgentKey()
        const agent = await connect({ url: n.api, token: await token(n), key, name: `seller-${i + 1}`, capabilities: [...MARKET_CAPABILITIES] })
        agents.push(agent)
        names.set(agent.id, `seller-${i + 1}`)
        return { agent, key, item: i === 2 ? 'cpu-hours' : 'gpu-hours', ask: 900 + 150 * i, floor: 700 + 150 * i }
      }))
      const show = (s: { from: string, to: string[], performative: string, schema?: string, summary: string }): void => {
        print(`${t()}  ${(names.get(s.from) ?? s.from).padEnd(8)} → ${s.to.map(x => names.get(x) ?? x).join(', ').padEnd(28)} ${s.performative.padEnd(16)} ${(s.schema ?? '').padEnd(22)} ${s.summary}`)
      }
      for (const s of sellers) {
        const stop = new AbortController()
        sellerStops.push(stop)
        runSeller(s.agent, { key: s.key, item: s.item, ask: s.ask, floor: s.floor, onStep: show, signal: stop.signal })
        await s.agent.synced()
      }
      print(`\n${t()}  the market conversation (proto/market@1.0.0):`)
      const rfp = { item: 'gpu-hours', quantity: 10, currency: 'EUR', maxUnitPrice: 1500 }
      const deal = await runBuyer(buyer, { key: buyerKey, sellers: sellers.map(s => s.agent.id), rfp, target: 650, onStep: show, waitMs: 15_000 })
      const c = deal.contract.terms
      print(`\nagreed: ${names.get(deal.seller) ?? deal.seller} sells ${c.quantity} × ${c.item} at ${c.unitPrice} = ${c.total} ${c.currency}; contract ${c.id} signed by ${deal.contract.signatures.map(s => s.role).join(' and ')}`)

      const file = join(hub.dir, `conversation-${deal.conversation}.cbor`)
      await writeFile(file, buyer.exportConversation(deal.conversation, deal.seller))
      const report = await auditConversation(importConversation(await readFile(file)).steps, { registry: createSchemaRegistry() })
      print(`\naudit of ${file}:`)
      print(auditText(report))
      if (!report.ok) throw new CliError('the demo conversation did not audit clean')

      print('\ninspect the mesh with the CLI, e.g.:')
      print(`  fedmesh status --dir ${hub.dir}`)
      print(`  fedmesh peers --dir ${sellerNodes[0].dir}`)
      print(`  fedmesh schema list --dir ${hub.dir}`)
      print(`  fedmesh protocol get proto/market@1.0.0 --dir ${hub.dir}`)
      print(`  fedmesh rejections --dir ${hub.dir}`)
      print(`  fedmesh audit ${file}`)
      if (values['exit-after-run'] === true) {
        print('\nstopping (--exit-after-run)')
      } else {
        print('\nthe nodes keep running; Ctrl-C stops them and removes their data dirs' + (values.keep === true ? ' (kept: --keep)' : ''))
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => { resolve() })
          process.once('SIGTERM', () => { resolve() })
        })
        print('stopping')
      }
    } finally {
      await stopAll()
      process.off('exit', onExit)
    }
    print('stopped')
  }
}

export const DEMO_COMMANDS: Command[] = [demo]

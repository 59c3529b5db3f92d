/**
 * Running a node as an operator does, with the `fedmesh` command: two starts on one data dir at
 * the same moment (one runs), a node killed with SIGKILL started again on its dir, `fedmesh log`
 * saying when nothing matched, and dist/ rebuilt under a running node.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Procs, ROOT, type Proc } from '../helpers/cli.ts'
import { KEEP_BUILDS, keptBuilds } from '../../scripts/build.ts'

interface Ready { event: 'ready', peerId: string, addresses: string[], api: string }

const START = ['--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn']

describe('fedmesh node operation', { timeout: 240_000 }, () => {
  const procs = new Procs()
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-ops-'))
  const fedmesh = async (...args: string[]) => await procs.run(args, 60_000)
  after(async () => {
    await procs.killAll()
    rmSync(root, { recursive: true, force: true })
  })

  /** Waits until `p` is ready (its ready line) or has exited. */
  async function readyOrExit (p: Proc): Promise<Ready | undefined> {
    return await Promise.race([
      // Its stdout ends without a ready line when it exits.
      p.stdout.waitJson<Ready>(v => v.event === 'ready', 'ready', 60_000).catch(() => undefined),
      p.exited.then(() => undefined)
    ])
  }

  const dir = join(root, 'node')

  it('two node starts on one dir at the same moment: one runs, the other exits naming its pid', async () => {
    const both = [procs.start(['node', 'start', '--dir', dir, ...START]), procs.start(['node', 'start', '--dir', dir, ...START])]
    const ready = await Promise.all(both.map(readyOrExit))
    const winner = both[ready.findIndex(r => r != null)]
    const loser = both[ready.findIndex(r => r == null)]
    assert.equal(ready.filter(r => r != null).length, 1, `exactly one node runs; stderr:\n${both.map(p => p.stderr.text).join('\n')}`)
    assert.equal((await loser.exit(20_000)).code, 1)
    assert.match(loser.stderr.text, new RegExp(`^fedmesh: a node is already running on .*node \\(pid ${winner.child.pid as number}[,)]`, 'm'))
    const status = await fedmesh('status', '--json', '--dir', dir)
    assert.equal(status.code, 0, status.stderr)
    assert.equal(JSON.parse(status.stdout).peerId, ready.find(r => r != null)?.peerId)

    // Killed: its lock stays behind, and the next start takes it over.
    winner.kill('SIGKILL')
    await winner.exit(20_000)
    assert.equal(JSON.parse(readFileSync(join(dir, 'node.lock'), 'utf8')).pid, winner.child.pid)
    const next = procs.start(['node', 'start', '--dir', dir, ...START])
    const again = await readyOrExit(next)
    assert.ok(again != null, next.stderr.text)
    assert.match(next.stderr.text, new RegExp(`taking over the stale lock of the data dir: process ${winner.child.pid as number} is not running`))
    // Read-only access to the store of a running node is not locked out.
    const log = await fedmesh('log', '--json', '--dir', dir)
    assert.equal(log.code, 0, log.stderr)
    next.kill('SIGTERM')
    assert.equal((await next.exit(20_000)).code, 0)
    assert.deepEqual(readdirSync(dir).filter(f => f.startsWith('node.lock') || f === 'node.json'), [])
  })

  it('init on a dir whose node runs is refused naming its pid, and changes nothing; once it stopped, init works', async () => {
    const dir = join(root, 'init-running')
    const node = procs.start(['node', 'start', '--dir', dir, ...START])
    const ready = await readyOrExit(node)
    assert.ok(ready != null, node.stderr.text)
    const files = (): Record<string, string> => Object.fromEntries(['config.json', 'node.key', 'api.token', 'node.lock'].map(f => [f, readFileSync(join(dir, f), 'latin1')]))
    const before = files()
    // On the old code: exit 0, and config.json rewritten with the new API address the running node does not use.
    const init = await fedmesh('init', '--dir', dir, '--api', '127.0.0.1:7999')
    assert.equal(init.code, 1, init.stderr)
    assert.equal(init.stdout, '')
    assert.match(init.stderr, new RegExp(`^fedmesh: a node is already running on .*init-running \\(pid ${node.child.pid as number}[,)]`))
    assert.deepEqual(files(), before)
    const status = await fedmesh('status', '--json', '--dir', dir)
    assert.equal(status.code, 0, status.stderr)
    node.kill('SIGTERM')
    assert.equal((await node.exit(20_000)).code, 0)
    const after = await fedmesh('init', '--dir', dir, '--api', '127.0.0.1:7999')
    assert.equal(after.code, 0, after.stderr)
    assert.equal(after.stdout.trim(), ready.peerId)
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).api, '127.0.0.1:7999')
    // The lock init took is gone with it.
    assert.deepEqual(readdirSync(dir).filter(f => f.startsWith('node.lock')), [])
  })

  it('log: a query without matching records says so on stderr (exit 0); --json prints nothing', async () => {
    const replay = await fedmesh('log', '--conversation', 'nothing-here', '--replay', '--dir', dir)
    assert.equal(replay.code, 0, replay.stderr)
    assert.equal(replay.stdout, '')
    assert.equal(replay.stderr, 'fedmesh log: no records of conversation nothing-here')
    const query = await fedmesh('log', '--agent', 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', '--event', 'sent,received', '--dir', dir)
    assert.equal(query.code, 0, query.stderr)
    assert.equal(query.stdout, '')
    assert.equal(query.stderr, 'fedmesh log: no records match (agent=did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK event=sent,received)')
    const json = await fedmesh('log', '--conversation', 'nothing-here', '--json', '--dir', dir)
    assert.equal(json.code, 0, json.stderr)
    assert.equal(json.stdout, '')
    assert.match(json.stderr, /^fedmesh log: no records match \(conversation=nothing-here\)$/)
  })

  it('a rebuild of dist/ under a running node keeps the chunks it loads later (the API, on first use)', async () => {
    // A copy of the project, so that its sources can change between the builds.
    const project = join(root, 'project')
    for (const d of ['src', 'scripts', 'bin']) cpSync(join(ROOT, d), join(project, d), { recursive: true })
    cpSync(join(ROOT, 'package.json'), join(project, 'package.json'))
    symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'))
    const build = async (): Promise<void> => {
      const p = procs.start([], { script: join(project, 'scripts/build.ts') })
      assert.equal((await p.exit(120_000)).code, 0, p.stderr.text)
    }
    await build()
    const proc = procs.start(['node', 'start', '--dir', join(root, 'from-dist'), ...START], { script: join(project, 'bin/fedmesh.js') })
    assert.ok(await readyOrExit(proc) != null, proc.stderr.text)
    // The API's code (loaded on the first request) changes, so its chunk gets another name.
    const server = join(project, 'src/api/server.ts')
    writeFileSync(server, `;(globalThis as Record<string, unknown>).fedmeshRebuilt = true\n${readFileSync(server, 'utf8')}`)
    await build()
    const status = await fedmesh('status', '--json', '--dir', join(root, 'from-dist'))
    assert.equal(status.code, 0, `${status.stderr}\nnode:\n${proc.stderr.text}`)
    assert.doesNotMatch(proc.stderr.text, /Cannot find module|api failed to load/)
    const builds = JSON.parse(readFileSync(join(project, 'dist/.builds.json'), 'utf8')).builds as Array<{ chunks: string[] }>
    assert.equal(builds.length, 2)
    assert.notDeepEqual(builds[0].chunks, builds[1].chunks)
    proc.kill('SIGTERM')
    assert.equal((await proc.exit(20_000)).code, 0)
  })

  it('dist/ keeps the chunks of the last KEEP_BUILDS builds only', () => {
    const b = (n: number): { stamp: string, chunks: string[] } => ({ stamp: String(n), chunks: [`chunk-${n}.js`] })
    const kept = keptBuilds(b(9), [8, 7, 6, 5].map(b))
    assert.equal(kept.length, KEEP_BUILDS)
    assert.deepEqual(kept.map(k => k.stamp), ['9', '8', '7'].slice(0, KEEP_BUILDS))
  })
})

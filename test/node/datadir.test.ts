/**
 * The data dir as an operator meets it: one node per dir at a time (node.lock), a lock left by
 * a killed node taken over, and config.json refused for a setting it does not know (a typo
 * would otherwise be ignored without a word), with nothing written.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createNode } from '../../src/node/mesh-node.ts'
import { lockDataDir, openDataDir, staleLockReason } from '../../src/node/datadir.ts'
import type { CreateNodeOptions, Logger } from '../../src/node/types.ts'

const NODE: Omit<CreateNodeOptions, 'dir'> = { listen: ['/ip4/127.0.0.1/tcp/0'], api: false }

/** A child process that runs until killed; `gone` resolves once it has exited. */
function sleeper (): { pid: number, kill: () => Promise<void> } {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' })
  const gone = new Promise<void>(resolve => child.once('exit', () => { resolve() }))
  return { pid: child.pid as number, kill: async () => { child.kill('SIGKILL'); await gone } }
}

function recordingLogger (): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const none = (): void => {}
  return { warnings, info: none, debug: none, error: none, warn: (_o, msg) => { warnings.push(msg ?? '') } }
}

describe('data dir', { timeout: 60_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-datadir-'))
  after(() => { rmSync(root, { recursive: true, force: true }) })

  it('two nodes started at once on one dir: one runs, the other is a ConflictError naming the pid; after a stop the dir is free again', async () => {
    const dir = join(root, 'twice')
    const results = await Promise.allSettled([createNode({ dir, ...NODE }), createNode({ dir, ...NODE })])
    const running = results.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
    const refused = results.flatMap(r => r.status === 'rejected' ? [r.reason as Error & { code?: string }] : [])
    try {
      assert.equal(running.length, 1, `one node runs, got ${running.length}`)
      assert.equal(refused[0].code, 'ConflictError')
      assert.match(refused[0].message, new RegExp(`a node is already running on .*twice \\(pid ${process.pid}, lock .*node\\.lock\\)`))
      // The refused start left the running node's files alone.
      assert.equal(JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')).peerId, running[0].peerId)
      assert.equal(JSON.parse(readFileSync(join(dir, 'node.lock'), 'utf8')).pid, process.pid)
      await assert.rejects(createNode({ dir, ...NODE }), { code: 'ConflictError' })
    } finally {
      for (const n of running) await n.stop()
    }
    assert.equal(existsSync(join(dir, 'node.lock')), false)
    assert.deepEqual(readdirSync(dir).filter(f => f.includes('.tmp') || f.includes('.stale')), [])
    const again = await createNode({ dir, ...NODE })
    assert.equal(again.peerId, running[0].peerId)
    await again.stop()
  })

  it('a lock whose process is alive refuses the start; once that process is killed, the lock is taken over with a warning', async () => {
    const dir = join(root, 'killed')
    mkdirSync(dir)
    const other = sleeper()
    try {
      writeFileSync(join(dir, 'node.lock'), JSON.stringify({ pid: other.pid, startedAt: Date.now() }) + '\n')
      await assert.rejects(createNode({ dir, ...NODE }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ConflictError')
        assert.match(err.message, new RegExp(`\\(pid ${other.pid}, `))
        return true
      })
      assert.equal(JSON.parse(readFileSync(join(dir, 'node.lock'), 'utf8')).pid, other.pid)
    } finally {
      await other.kill()
    }
    const logger = recordingLogger()
    const node = await createNode({ dir, ...NODE, logger })
    try {
      assert.equal(JSON.parse(readFileSync(join(dir, 'node.lock'), 'utf8')).pid, process.pid)
      assert.ok(logger.warnings.some(w => w.includes(`taking over the stale lock of the data dir: process ${other.pid} is not running`)), logger.warnings.join('\n'))
    } finally {
      await node.stop()
    }
  })

  it('stale locks: one from before the last boot, an unreadable file, one naming this process that it did not take; its own lock is live', () => {
    const bootedAt = Date.now() - 3_600_000
    assert.equal(staleLockReason({ pid: process.pid, startedAt: Date.now() }, bootedAt, true), undefined)
    assert.match(staleLockReason({ pid: process.pid, startedAt: Date.now() }, bootedAt) ?? '', /did not take it/)
    assert.match(staleLockReason({ pid: process.pid, startedAt: bootedAt - 60_000 }, bootedAt) ?? '', /before the system booted/)
    assert.match(staleLockReason(undefined, bootedAt) ?? '', /unreadable/)
  })

  it('a lock naming this process\'s pid that it never took (a container restarted with the same pid) is taken over', async () => {
    const dir = join(root, 'reused-pid')
    mkdirSync(dir)
    writeFileSync(join(dir, 'node.lock'), JSON.stringify({ pid: process.pid, startedAt: Date.now() - 1000 }) + '\n')
    const lock = await lockDataDir(dir)
    await lock.release()
  })

  it('a lock is released only by its holder, once', async () => {
    const dir = join(root, 'release')
    const lock = await lockDataDir(dir)
    await assert.rejects(lockDataDir(dir), { code: 'ConflictError' })
    await lock.release()
    const next = await lockDataDir(dir)
    await lock.release() // the first holder's second release leaves the new lock alone
    assert.equal(existsSync(join(dir, 'node.lock')), true)
    await next.release()
    assert.equal(existsSync(join(dir, 'node.lock')), false)
  })

  it('config.json with an unknown setting is refused, naming it and the known ones, and nothing is written', async () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['bootstrapp', { bootstrapp: ['/ip4/127.0.0.1/tcp/7401'] }, /unknown setting "bootstrapp" in .*config\.json; known settings: network, listen, announce, bootstrap, api, roles, mdns, relay, clockSkewMs, maxMessageBytes, store, capacity/],
      ['capacity', { capacity: { cpu: 4 } }, /unknown setting "cpu" in capacity of .*config\.json; known settings: cpus, memoryMB, storageMB/],
      ['store', { store: { replica: 2 } }, /unknown store setting "replica"; known store settings: url, schema, .*replicas/],
      ['quota', { store: { quota: { inbox: 2 } } }, /unknown quota "inbox"; known quotas: inboxCount, /]
    ]
    for (const [name, config, re] of cases) {
      const dir = join(root, `config-${name}`)
      mkdirSync(dir)
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config))
      await assert.rejects(createNode({ dir, ...NODE }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'InvalidArgumentError', err.message)
        assert.match(err.message, re)
        return true
      })
      assert.deepEqual(readdirSync(dir), ['config.json'], name)
    }
    // Options given to createNode are checked the same way, before the dir is created.
    const fresh = join(root, 'options')
    await assert.rejects(createNode({ dir: fresh, ...NODE, bootstrapp: [] } as unknown as CreateNodeOptions), /unknown setting "bootstrapp" in the createNode options/)
    assert.equal(existsSync(fresh), false)
  })

  it('a config written by init, and one with every setting, load', async () => {
    const dir = join(root, 'init')
    const first = await openDataDir(dir, { listen: ['/ip4/127.0.0.1/tcp/0'], store: { replicas: 1 } }, { save: true })
    const again = await openDataDir(dir)
    assert.deepEqual(again.config, first.config)
    const full = { ...first.config, capacity: { cpus: 2, memoryMB: 512, storageMB: 1024 }, store: { replicas: 2, quota: { inboxCount: 10 }, logPayloads: 'all' } }
    writeFileSync(join(dir, 'config.json'), JSON.stringify(full))
    assert.deepEqual((await openDataDir(dir)).config, full)
  })
})

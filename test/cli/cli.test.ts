/**
 * The `fedmesh` command driven as a new user would: init, node start (two node processes,
 * the second bootstrapped from the first), status, agent create, sub + pub across nodes,
 * send, request (no responder, timeout), and bad flags or input.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const BIN = new URL('../../bin/fedmesh.js', import.meta.url).pathname

function run (args: string[], timeoutMs = 30_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => { resolve(typeof a === 'object' && a != null ? a.port : 0) }) })
    s.on('error', reject)
  })
}

/** Spawns a long-running CLI command and resolves with the first stdout/stderr line matching `pred`. */
function spawnUntil (args: string[], pred: (line: string, stream: 'out' | 'err') => boolean, timeoutMs = 30_000): Promise<{ child: ChildProcess, line: string, lines: string[] }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timeout waiting on ${args.join(' ')}`)) }, timeoutMs)
    const watch = (stream: NodeJS.ReadableStream, name: 'out' | 'err'): void => {
      createInterface({ input: stream }).on('line', (line) => {
        if (name === 'out') lines.push(line)
        if (pred(line, name)) { clearTimeout(timer); resolve({ child, line, lines }) }
      })
    }
    watch(child.stdout as NodeJS.ReadableStream, 'out')
    watch(child.stderr as NodeJS.ReadableStream, 'err')
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${args.join(' ')} exited ${code}`)) })
  })
}

describe('fedmesh CLI', { timeout: 120_000 }, () => {
  const dirA = mkdtempSync(join(tmpdir(), 'fedmesh-cli-a-'))
  const dirB = mkdtempSync(join(tmpdir(), 'fedmesh-cli-b-'))
  const children: ChildProcess[] = []
  let bobId = ''

  before(async () => {
    const [apiA, apiB] = [await freePort(), await freePort()]
    const init = await run(['init', '--dir', dirA, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${apiA}`])
    assert.equal(init.code, 0, init.stderr)
    assert.match(init.stdout.trim(), /^12D3KooW\w+$/)
    assert.equal(statSync(join(dirA, 'node.key')).mode & 0o777, 0o600)
    assert.equal(statSync(join(dirA, 'api.token')).mode & 0o777, 0o600)
    const a = await spawnUntil(['node', 'start', '--dir', dirA, '--log-level', 'warn'], (l) => l.includes('"ready"'))
    children.push(a.child)
    const ready = JSON.parse(a.line)
    assert.equal(ready.peerId, init.stdout.trim())
    const b = await spawnUntil(['node', 'start', '--dir', dirB, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', `127.0.0.1:${apiB}`, '--bootstrap', ready.addresses[0], '--log-level', 'warn'], (l) => l.includes('"ready"'))
    children.push(b.child)
  })

  after(async () => {
    for (const c of children) {
      if (c.exitCode == null) {
        const exited = new Promise(resolve => c.once('exit', resolve))
        c.kill('SIGTERM')
        await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
        c.kill('SIGKILL')
      }
    }
    rmSync(dirA, { recursive: true, force: true })
    rmSync(dirB, { recursive: true, force: true })
  })

  it('status --json reports peer id, full addresses and peers', async () => {
    let status: any
    for (let i = 0; i < 50; i++) {
      const r = await run(['status', '--dir', dirA, '--json'])
      assert.equal(r.code, 0, r.stderr)
      status = JSON.parse(r.stdout)
      if (status.peers >= 1) break
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    assert.match(status.peerId, /^12D3KooW/)
    assert.ok(status.addresses.every((a: string) => a.includes(`/p2p/${status.peerId}`)))
    assert.equal(status.peers, 1)
    const peers = await run(['peers', '--dir', dirA, '--json'])
    assert.equal(JSON.parse(peers.stdout)[0].status, 'connected')
  })

  it('agent create, sub on one node, pub on another', async () => {
    const created = await run(['agent', 'create', 'bob', '--dir', dirB])
    assert.equal(created.code, 0, created.stderr)
    bobId = created.stdout.trim()
    assert.match(bobId, /^did:key:z6Mk/)
    const sub = await spawnUntil(['sub', 'weather/#', '--dir', dirB, '--agent', 'bob', '--count', '1'], (l, s) => s === 'err' && l.includes('subscribed'))
    children.push(sub.child)
    const exited = new Promise<number | null>(resolve => sub.child.once('exit', resolve))
    // Gossip needs the mesh formed; publish until the subscriber has one line (bounded).
    for (let i = 0; i < 50 && sub.lines.length === 0; i++) {
      const p = await run(['pub', 'weather/paris', '--dir', dirA, '--data', '{"tempC":21}'])
      assert.equal(p.code, 0, p.stderr)
      await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 200))])
    }
    assert.equal(await exited, 0)
    const line = JSON.parse(sub.lines[0])
    assert.equal(line.topic, 'weather/paris')
    assert.deepEqual(line.payload, { tempC: 21 })
    assert.match(line.id, /^b/)
    assert.match(line.from, /^did:key:/)
  })

  it('send with confirmation, and request errors are typed one-liners', async () => {
    const sent = await run(['send', bobId, '--dir', dirA, '--data', '{"hi":1}', '--confirm'])
    assert.equal(sent.code, 0, sent.stderr)
    assert.deepEqual(JSON.parse(sent.stdout).confirmed, [bobId])
    const req = await run(['request', bobId, '--dir', dirA, '--data', '{}', '--timeout', '2000'])
    assert.equal(req.code, 1)
    assert.match(req.stderr, /^fedmesh: NoRespondersError: .*\n$/)
  })

  it('bad flags and input: one line naming the problem, non-zero exit', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['bogus'], /unknown command "bogus"/],
      [['status', '--dir', dirA, '--nope'], /Unknown option '--nope'/],
      [['pub', 'a/#', '--dir', dirA, '--data', '{}'], /InvalidTopicError/],
      [['pub', 'a/b', '--dir', dirA], /--data is required/],
      [['pub', 'a/b', '--dir', dirA, '--data', '{oops'], /--data is not valid JSON/],
      [['send', 'not-a-did', '--dir', dirA, '--data', '1'], /not an agent id/],
      [['request', bobId, '--dir', dirA, '--data', '1', '--timeout', 'soon'], /--timeout must be a positive integer/],
      [['init', '--dir', join(dirA, 'x'), '--roles', 'king'], /unknown role "king"/]
    ]
    for (const [args, re] of cases) {
      const r = await run(args)
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code} ${r.stderr}`)
      assert.match(r.stderr, re)
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}`)
    }
    const empty = mkdtempSync(join(tmpdir(), 'fedmesh-cli-none-'))
    const r = await run(['status', '--dir', empty])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /no fedmesh node in/)
    rmSync(empty, { recursive: true, force: true })
  })
})

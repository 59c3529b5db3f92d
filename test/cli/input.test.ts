/**
 * Bad input a new user types, found walking the README as written: each gives one clear line
 * `fedmesh: …` naming the flag and what to do, exit 2 (or 1 at run time), and writes nothing.
 * No node needs to run, except the one whose listen port is taken.
 */
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Procs, assertOneLineError, type RunResult } from '../helpers/cli.ts'

const BOB = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const PEER = '12D3KooWSpJ6f76pvansWBBpaDoYgpTC9c6J6LeqhGn5QsMKea6d'

/** Exit `code`, nothing on stdout, one line `fedmesh: …` matching `re` on stderr. */
function oneLineError (r: RunResult, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.stderr)
  assert.equal(r.stdout, '')
  assertOneLineError(r, re)
}

describe('fedmesh CLI: bad input gives one clear line', { timeout: 120_000 }, () => {
  const procs = new Procs()
  const root = mkdtempSync(join(tmpdir(), 'fedmesh-cli-input-'))
  const fedmesh = async (...args: string[]): Promise<RunResult> => await procs.run(args)
  after(async () => {
    await procs.killAll()
    rmSync(root, { recursive: true, force: true })
  })

  it('a flag value that starts with "-" says how to write it', async () => {
    // parseArgs reads "-1" as a flag and called the option "ambiguous".
    oneLineError(await fedmesh('send', BOB, '--data', '1', '--retries', '-1', '--dir', join(root, 'none')), 2,
      /--retries needs a value; one that starts with "-" is written --retries=-1/)
    oneLineError(await fedmesh('pub', 'a/b', '--data', '-5', '--dir', join(root, 'none')), 2, /--data=-5/)
  })

  const addresses: Array<[string, string[], RegExp]> = [
    ['a bootstrap address without its peer id', ['--bootstrap', '/ip4/127.0.0.1/tcp/7411'], /--bootstrap "\/ip4\/127\.0\.0\.1\/tcp\/7411" must end with \/p2p\/<peer id>/],
    ['a bootstrap address with a bad peer id', ['--bootstrap', '/ip4/127.0.0.1/tcp/7411/p2p/notapeer'], /"notapeer" is not a peer id/],
    ['a listen address that is not a multiaddr', ['--listen', '/foo/1'], /--listen "\/foo\/1" is not a multiaddr/],
    ['an announce address that is not a multiaddr', ['--announce', '/ip4/nope'], /--announce "\/ip4\/nope" is not a multiaddr/]
  ]
  for (const [what, flags, re] of addresses) {
    it(`init refuses ${what} and writes nothing`, async () => {
      const dir = join(root, what.replace(/\W+/g, '-'))
      oneLineError(await fedmesh('init', '--dir', dir, ...flags), 2, re)
      assert.equal(existsSync(join(dir, 'config.json')), false)
      assert.equal(existsSync(join(dir, 'node.key')), false)
    })
  }

  it('node start refuses a bad bootstrap address before starting', async () => {
    oneLineError(await fedmesh('node', 'start', '--dir', join(root, 'start-bad'), '--api', 'off', '--bootstrap', `/ip4/127.0.0.1/tcp/1/p2p/${PEER}x0`), 2, /is not a peer id/)
  })

  it('a listen port in use names the address and the cause', async () => {
    const held = createServer()
    await new Promise<void>(resolve => held.listen(0, '127.0.0.1', resolve))
    const port = (held.address() as { port: number }).port
    try {
      const r = await fedmesh('node', 'start', '--dir', join(root, 'busy'), '--api', 'off', '--listen', `/ip4/127.0.0.1/tcp/${port}`)
      oneLineError(r, 1, new RegExp(`cannot listen on /ip4/127\\.0\\.0\\.1/tcp/${port} \\(listen EADDRINUSE`))
      assert.doesNotMatch(r.stderr, /faultTolerance|\s{2}at /)
    } finally {
      await new Promise(resolve => held.close(resolve))
    }
  })

  it('a second node start on a dir whose node runs is refused; the first keeps running', async () => {
    const dir = join(root, 'twice')
    const first = procs.start(['node', 'start', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn'])
    const ready = await first.stdout.waitJson<{ event: string, api: string }>(v => v.event === 'ready', 'first node ready', 30_000)
    const second = await procs.run(['node', 'start', '--dir', dir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--log-level', 'warn'], 20_000)
    oneLineError(second, 1, new RegExp(`a node is already running on .*twice \\(pid \\d+, API ${ready.api.replace(/[.]/g, '\\.')}\\)`))
    const status = await fedmesh('status', '--json', '--dir', dir)
    assert.equal(status.code, 0, status.stderr)
    first.kill('SIGTERM')
    assert.equal((await first.exit(20_000)).code, 0)
  })

  it('demo has no --dir (its data dirs are temporary): refused, not ignored, and not in its help', async () => {
    oneLineError(await fedmesh('demo', '--dir', join(root, 'demo'), '--exit-after-run'), 2, /Unknown option '--dir'/)
    assert.equal(existsSync(join(root, 'demo')), false)
    const help = await fedmesh('demo', '--help')
    assert.equal(help.code, 0)
    assert.doesNotMatch(help.stdout, /^  --dir/m)
    assert.match(help.stdout, /--sellers N/)
    assert.match((await fedmesh('status', '--help')).stdout, /--dir DIR/)
  })

  it('a message that wraps is printed whole on one line', async () => {
    // JSON.parse quotes the text with its newline: the first line alone ended at `"garbage`.
    const file = join(root, 'bad.json')
    writeFileSync(file, 'garbage\n')
    oneLineError(await fedmesh('schema', 'publish', file, '--dir', join(root, 'none')), 2, /schema file is not JSON: .*"garbage " is not valid JSON$/)
  })
})

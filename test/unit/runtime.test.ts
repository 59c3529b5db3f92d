/**
 * How `fedmesh node start` runs (bin/runtime.js) and how dist/ is built (scripts/build.ts):
 * the one-time re-execution with start-only settings, the flat dist/ names, the rewriting
 * of `new URL(…, import.meta.url)` for the bundle, and the dependency edits that must
 * keep matching their dependency.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { NODE_START_ENV, NODE_START_EXEC_ARGV, NODE_START_V8_FLAGS, moduleUrl, reexecForNode, switchWhenBusy } from '../../bin/runtime.js'
import { DEPENDENCY_EDITS, applyDependencyEdits, checkImportMeta, outputName, rewriteImportMeta } from '../../scripts/build.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NODE = `${ROOT}node_modules/.bin/node`

describe('re-execution for node start', () => {
  // A script that prepares itself as a node process and reports what it then runs with.
  const probe = `const r = await import(${JSON.stringify(`${ROOT}bin/runtime.js`)}); r.reexecForNode();
    process.stdout.write(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, env: { ...process.env } }))`
  const run = (env: Record<string, string | undefined>, args: string[] = []): { pid: number, execArgv: string[], env: Record<string, string> } => {
    const clean: Record<string, string> = {}
    for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v != null && !((k in NODE_START_ENV || k === 'FEDMESH_V8_FLAGS') && !(k in env)) && k !== 'NODE_OPTIONS') clean[k] = v
    return JSON.parse(execFileSync(NODE, [...args, '--input-type=module', '-e', probe], { env: clean, encoding: 'utf8' }))
  }

  test('runs once more with the start-only flags and environment, and leaves no trace for its children', () => {
    const r = run({})
    for (const f of NODE_START_EXEC_ARGV) assert.ok(r.execArgv.includes(f), `${f} in ${r.execArgv.join(' ')}`)
    // The young generation's maximum only counts on the command line (V8 fixes it at start).
    assert.ok(r.execArgv.includes('--max-semi-space-size=32'))
    // The V8 flags are set at run time (prepareNodeProcess), so that a busy node can leave them.
    assert.ok(!r.execArgv.includes(NODE_START_V8_FLAGS))
    // The variables were in force at start (glibc reads them then) and are gone afterwards,
    // like the mark: a process the node starts re-executes by itself.
    for (const name of Object.keys(NODE_START_ENV)) assert.equal(r.env[name], undefined)
    assert.equal(r.env.FEDMESH_REEXECUTED, undefined)
  })

  test("keeps the operator's own settings", () => {
    const r = run({ MALLOC_ARENA_MAX: '7' }, ['--v8-pool-size=3'])
    assert.equal(r.env.MALLOC_ARENA_MAX, '7')
    assert.deepEqual(r.execArgv.filter(a => a.startsWith('--v8-pool-size')), ['--v8-pool-size=3'])
  })

  test('FEDMESH_V8_FLAGS stays off the command line too (prepareNodeProcess applies it)', () => {
    const r = run({ FEDMESH_V8_FLAGS: '' })
    assert.ok(!r.execArgv.includes(NODE_START_V8_FLAGS))
    for (const f of NODE_START_EXEC_ARGV) assert.ok(r.execArgv.includes(f))
  })

  test('FEDMESH_REEXEC=0 runs without', () => {
    const r = run({ FEDMESH_REEXEC: '0' })
    for (const f of NODE_START_EXEC_ARGV) assert.ok(!r.execArgv.includes(f))
  })

  test('a re-executed process removes the mark and what it added, and does not execute again', () => {
    const env: Record<string, string | undefined> = { FEDMESH_REEXECUTED: 'MALLOC_ARENA_MAX', MALLOC_ARENA_MAX: '2', OTHER: 'x' }
    reexecForNode(env as NodeJS.ProcessEnv)
    assert.deepEqual(env, { OTHER: 'x' })
  })
})

describe('a node leaves its idle V8 flags once busy (switchWhenBusy)', () => {
  // A fake CPU clock and a fake wall clock: each tick of 10 ms the process "uses" the next
  // figure of `usedMs`, scaled to the rules' 100 ms ticks (so 50 = half a core), and the
  // wall clock advances by one tick. Returns the index of the figure that switched, or -1.
  const watch = async (usedMs: number[], opts: { armByTicks?: number, startupCpuMs?: number } = {}): Promise<number> => {
    let cpu = 0
    let calls = 0
    let busyAt = -1
    const stop = switchWhenBusy({
      delayMs: 0,
      tickMs: 10,
      armByMs: (opts.armByTicks ?? 1000) * 10,
      startupCpuMs: opts.startupCpuMs ?? 1e9,
      now: () => Math.max(0, calls - 1) * 10,
      cpuUsage: () => { cpu += (usedMs[calls - 1] ?? 0) * 100; calls++; return { user: cpu, system: 0 } },
      onBusy: () => { busyAt = calls - 2 }
    })
    // Until every figure has been sampled (bounded: a loaded machine delays the timer).
    for (let t = 0; t < 500 && calls <= usedMs.length && busyAt < 0; t++) await new Promise(resolve => setTimeout(resolve, 10))
    stop()
    return busyAt
  }

  test('switches within two ticks of a load over half a core', async () => {
    assert.equal(await watch([0, 0, 0, 60, 0, 60, 70, 0]), 6)
  })

  test('switches after two half-second windows over a tenth of a core (a steady moderate load)', async () => {
    // 11 ms in every 100: never half a core, a steady 11 % of one.
    assert.equal(await watch([0, 0, 0, 0, 0, ...Array(10).fill(11)]), 14)
    // One window over a tenth and the next under: no.
    assert.equal(await watch([0, 0, 0, 30, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0]), -1)
  })

  test('an idle node with bursts (the busiest 100 ms measured idle: 40 ms) does not switch', async () => {
    assert.equal(await watch([0, 0, 0, 40, 0, 0, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 90, 0, 0, 0, 0, 0, 10, 0]), -1)
    assert.equal(await watch(Array(20).fill(0)), -1)
  })

  test('start-up does not count: watching begins after three idle ticks in a row, or at armByMs at the latest', async () => {
    // Start-up at full speed, then idle: not busy.
    assert.equal(await watch([100, 100, 100, 100, 100, 0, 0, 0, 0]), -1)
    // Start-up with an idle tick or two in its middle (descheduled), then idle: not busy.
    assert.equal(await watch([100, 100, 0, 100, 100, 0, 0, 100, 100, 0, 0, 0, 0]), -1)
    // Busy from the start on (no idle tick): counted once the CPU used exceeds a start-up's
    // (here 25 ms, 2.5 ticks at full speed: from the third figure on) …
    assert.equal(await watch([100, 100, 100, 100, 100, 100, 100], { startupCpuMs: 25 }), 2)
    // … with the ticks before that: a moderate load right after start-up (2,000 msgs/s is
    // ~0.1 of a core once compiled, more while V8 compiles) that is past its busiest when the
    // process has used a start-up's CPU.
    assert.equal(await watch([100, 100, 100, 100, 100, 40, 40, 40, 40, 40, 40, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], { startupCpuMs: 60 }), 9)
    // … and, whatever the CPU, from tick 3 (armByMs) on.
    assert.equal(await watch([30, 30, 30, 30, 30, 100, 100, 100], { armByTicks: 3 }), 6)
  })

  test('does not watch before its delay', async () => {
    let sampled = 0
    const stop = switchWhenBusy({ delayMs: 200, tickMs: 5, cpuUsage: () => { sampled++; return { user: sampled * 1e6, system: 0 } }, onBusy: () => {} })
    await new Promise(resolve => setTimeout(resolve, 50))
    stop()
    assert.equal(sampled, 0)
  })

  test('switches once', async () => {
    let n = 0
    let cpu = 0
    const stop = switchWhenBusy({ delayMs: 0, armByMs: 0, tickMs: 5, cpuUsage: () => ({ user: (cpu += 5000), system: 0 }), onBusy: () => { n++ } })
    for (let t = 0; t < 500 && n === 0; t++) await new Promise(resolve => setTimeout(resolve, 5))
    await new Promise(resolve => setTimeout(resolve, 50))
    stop()
    assert.equal(n, 1)
  })
})

describe('dist/ layout and bundle rewriting', () => {
  test('entry points are flat in dist/', () => {
    assert.equal(outputName('cli/main'), 'cli-main')
    assert.equal(outputName('index'), 'index')
    const url = moduleUrl('cli/main', { FEDMESH_FROM_SOURCE: '1' })
    assert.equal(url.href, new URL('src/cli/main.ts', `file://${ROOT}`).href)
  })

  test('new URL() of a src module becomes a new entry point next to every chunk', () => {
    const found = new Set<string>()
    const out = rewriteImportMeta(`${ROOT}src/store/sqlite.ts`, "const w = new Worker(new URL('./writer-worker.ts', import.meta.url))", found)
    assert.equal(out, "const w = new Worker(new URL('./writer-worker.js', import.meta.url))")
    assert.deepEqual([...found], ['store/writer-worker'])
  })

  test('new URL() of a src module with the caller\'s own extension is an entry point, left as written', () => {
    const found = new Set<string>()
    const text = 'return new URL(`./errors${extname(fileURLToPath(import.meta.url))}`, import.meta.url)'
    assert.equal(rewriteImportMeta(`${ROOT}src/core/keys.ts`, text, found), text)
    assert.deepEqual([...found], ['core/errors'])
    checkImportMeta('x.ts', text)
    // Only for a module that exists, beside the caller.
    assert.throws(() => rewriteImportMeta(`${ROOT}src/core/keys.ts`, 'new URL(`./no-such-module${ext}`, import.meta.url)', new Set()), /must name a module beside it/)
    assert.throws(() => rewriteImportMeta(`${ROOT}src/core/keys.ts`, 'new URL(`../store/index${ext}`, import.meta.url)', new Set()), /must name a module beside it/)
  })

  test('new URL() of another project file is addressed from the project root', () => {
    const found = new Set<string>()
    const out = rewriteImportMeta(`${ROOT}src/cli/demo.ts`, 'const BIN = fileURLToPath(new URL("../../bin/fedmesh.js", import.meta.url))', found)
    assert.equal(out, 'const BIN = fileURLToPath(new URL("../bin/fedmesh.js", import.meta.url))')
    assert.equal(found.size, 0)
    assert.throws(() => rewriteImportMeta(`${ROOT}src/cli/demo.ts`, "new URL('../../../x.js', import.meta.url)", found), /outside the project/)
  })

  test('any other use of import.meta fails the build', () => {
    checkImportMeta('x.ts', 'const r = createRequire(import.meta.url); const u = new URL("./a.js", import.meta.url)')
    assert.throws(() => { checkImportMeta('x.ts', 'const d = import.meta.dirname') }, /import\.meta is only supported/)
    assert.throws(() => { checkImportMeta('x.ts', 'const u = new URL(name, import.meta.url)') }, /import\.meta is only supported/)
  })

  test('the dependency edits still match the installed dependencies', () => {
    for (const e of DEPENDENCY_EDITS) {
      const path = `${ROOT}node_modules/${e.pkg}/${e.path}`
      const edited = applyDependencyEdits(path, readFileSync(path, 'utf8'))
      assert.ok(!edited.includes(e.from) && edited.includes(e.to), path)
    }
    assert.throws(() => applyDependencyEdits('/x/node_modules/@libp2p/peer-store/dist/src/utils/to-peer-pb.js', 'changed'), /review DEPENDENCY_EDITS/)
  })

  test('the code-unit order sorts as the edits intend', () => {
    // eslint-disable-next-line no-eval
    const order = (0, eval)(DEPENDENCY_EDITS[0].to.replace(/^return /, '').replace(/\(a, b\);$/, '')) as (a: string, b: string) => number
    assert.deepEqual(['/b/1', '/a/2', '/B/3', '/a/1'].sort(order), ['/B/3', '/a/1', '/a/2', '/b/1'])
    assert.equal(order('x', 'x'), 0)
  })
})

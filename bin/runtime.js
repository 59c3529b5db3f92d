// How bin/fedmesh.js runs fedmesh: which build, which V8 flags. Shared with bench/ so that
// benchmarks run a node the way `fedmesh node start` does.
import { readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * V8 flags for `fedmesh node start`. Measured on an idle node (docs/PERFORMANCE.md):
 * --optimize-for-size takes its RSS from ~115 to ~98 MB (a smaller young generation, a more
 * frugal heap) for ~10% of CPU-bound speed. They go on the command line of the one
 * re-execution (reexecForNode); FEDMESH_V8_FLAGS replaces them (empty: none) and is set at
 * run time, where --optimize-for-size still acts if set before the modules load.
 */
export const NODE_START_V8_FLAGS = '--optimize-for-size'

/**
 * Settings for `fedmesh node start` that act only when a process starts, so the process
 * re-executes itself once with them (reexecForNode). Measured on an idle node
 * (docs/PERFORMANCE.md): V8's worker pool of one thread instead of four (concurrent
 * marking and compilation still run off the main thread) and two malloc arenas instead of
 * one per thread, ~3 MB each. And glibc's mmap threshold fixed at 16 KB: V8 compiles in
 * zone segments of 16–32 KB, allocated with malloc and freed after each compilation; in
 * the arena they leave ~6 MB of free but resident holes behind after start-up (what
 * `malloc_trim` gives back), mapped on their own they go back to the system when freed
 * (−5 MB idle RSS, and a steadier figure). A fixed threshold also stops glibc from raising
 * it after large blocks are freed (its dynamic threshold, up to 32 MB), which otherwise moves
 * those blocks into the arena, where they fragment it under load. Cost: ~70 ms more CPU to
 * ready (each segment is a fresh mapping, paged in).
 */
export const NODE_START_EXEC_ARGV = ['--v8-pool-size=1']
export const NODE_START_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '16384' }
/** Set in the environment of the re-executed process (to the names of the variables added). */
const REEXEC_MARK = 'FEDMESH_REEXECUTED'

/**
 * Replaces this process by the same command with NODE_START_EXEC_ARGV (and, unless
 * FEDMESH_V8_FLAGS is given, NODE_START_V8_FLAGS) and NODE_START_ENV
 * (`process.execve`: same pid, same open descriptors, no second process), once: the new
 * image finds REEXEC_MARK and removes it again, with the variables it added, so that a
 * process the node starts inherits neither. Flags or variables the operator already gave
 * are left as they are; FEDMESH_REEXEC=0, or a Node without process.execve, runs on without.
 */
export function reexecForNode (env = process.env) {
  if (env[REEXEC_MARK] != null) {
    for (const name of env[REEXEC_MARK].split(',')) if (name !== '') delete env[name]
    delete env[REEXEC_MARK]
    return
  }
  if (env.FEDMESH_REEXEC === '0' || typeof process.execve !== 'function') return
  const given = new Set([...process.execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)].map(a => a.split('=')[0].replaceAll('_', '-')))
  // The default V8 flags too: on the command line they act from the first allocation
  // (--optimize-for-size: ~1.5 MB less idle RSS than set at run time). FEDMESH_V8_FLAGS,
  // when given, is applied at run time by prepareNodeProcess instead.
  const v8Flags = env.FEDMESH_V8_FLAGS == null ? NODE_START_V8_FLAGS.split(/\s+/).filter(f => f !== '') : []
  const flags = [...NODE_START_EXEC_ARGV, ...v8Flags].filter(f => !given.has(f.split('=')[0]))
  const added = Object.keys(NODE_START_ENV).filter(name => env[name] == null)
  if (flags.length === 0 && added.length === 0) return
  const next = { ...env, [REEXEC_MARK]: added.join(',') }
  for (const name of added) next[name] = NODE_START_ENV[name]
  try {
    process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], next)
  } catch {
    // Not permitted here (e.g. a sandbox): the node runs as it is.
  }
}

/**
 * Prepares this process to run a node, before fedmesh loads: the start-only settings
 * (reexecForNode), the V8 flags, and undici kept unloaded (below).
 */
export async function prepareNodeProcess (env = process.env) {
  reexecForNode(env)
  // Flags already on the command line (reexecForNode) are not set again: setting
  // --optimize-for-size a second time at run time costs ~4 MB of idle RSS.
  const flags = (env.FEDMESH_V8_FLAGS ?? NODE_START_V8_FLAGS).split(/\s+/).filter(f => f !== '' && !process.execArgv.includes(f))
  if (flags.length > 0) (await import('node:v8')).setFlagsFromString(flags.join(' '))
  deferUndici()
}

/**
 * Node 22's `node:http` exports WebSocket, CloseEvent and MessageEvent as lazy getters backed
 * by undici. Importing `node:http` from an ES module (libp2p's WebSockets transport does, and
 * so does the API) builds its ES namespace by reading every export, which loads undici:
 * +7–12 MB RSS in a node that never uses those three. Here they become plain constructors
 * that defer to the globals of the same names (still lazy; they load undici when used).
 * Nothing in fedmesh or its dependencies uses them (checked with grep over node_modules).
 */
export function deferUndici () {
  const http = createRequire(import.meta.url)('node:http')
  for (const name of ['WebSocket', 'CloseEvent', 'MessageEvent']) {
    const d = Object.getOwnPropertyDescriptor(http, name)
    if (d?.get == null || d.configurable !== true) continue
    const Deferred = function (...args) { return new globalThis[name](...args) }
    Object.defineProperty(Deferred, 'name', { value: name })
    Object.defineProperty(http, name, { value: Deferred, writable: true, configurable: true, enumerable: true })
  }
}

const root = new URL('../', import.meta.url)

/** The newest modification time (ms) of a .ts file under `dir`. */
function newestSource (dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue
    const m = statSync(`${entry.parentPath}/${entry.name}`).mtimeMs
    if (m > newest) newest = m
  }
  return newest
}

/**
 * Whether to run dist/: it has a build stamp (scripts/build.ts) newer than every source
 * file, and FEDMESH_FROM_SOURCE is not 1. A stale or missing build means src/.
 */
export function useDist (env = process.env) {
  if (env.FEDMESH_FROM_SOURCE === '1') return false
  const stamp = statSync(new URL('dist/.build-stamp', root), { throwIfNoEntry: false })
  if (stamp == null) return false
  try {
    return newestSource(fileURLToPath(new URL('src', root))) <= stamp.mtimeMs
  } catch {
    return false
  }
}

/**
 * URL of an entry point of fedmesh (`cli/main`, `index`), `path` relative to src/ and without
 * extension: its bundle in dist/ (flat: `cli/main` → dist/cli-main.js, scripts/build.ts) or
 * the source in src/.
 */
export function moduleUrl (path, env = process.env) {
  return useDist(env) ? new URL(`dist/${path.replaceAll('/', '-')}.js`, root) : new URL(`src/${path}.ts`, root)
}

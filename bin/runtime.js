// How bin/fedmesh.js runs fedmesh: which build, which V8 flags. Shared with bench/ so that
// benchmarks run a node the way `fedmesh node start` does.
import { readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * V8 flags for `fedmesh node start`. Measured on an idle node (docs/PERFORMANCE.md):
 * --optimize-for-size takes its RSS from ~115 to ~98 MB (a smaller young generation, a more
 * frugal heap) for ~10% of CPU-bound speed. It is one of the few V8 flags that still act
 * when set after start-up. FEDMESH_V8_FLAGS replaces them (empty: none).
 */
export const NODE_START_V8_FLAGS = '--optimize-for-size'

/**
 * Prepares this process to run a node, before fedmesh loads: the V8 flags, and undici kept
 * unloaded (below).
 */
export async function prepareNodeProcess (env = process.env) {
  const flags = env.FEDMESH_V8_FLAGS ?? NODE_START_V8_FLAGS
  if (flags.trim() !== '') (await import('node:v8')).setFlagsFromString(flags)
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

/** URL of a module of fedmesh, `path` relative to src/ and without extension: dist/ or src/. */
export function moduleUrl (path, env = process.env) {
  return useDist(env) ? new URL(`dist/${path}.js`, root) : new URL(`src/${path}.ts`, root)
}

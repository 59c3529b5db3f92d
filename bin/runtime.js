// How bin/fedmesh.js runs fedmesh: which build, which V8 flags. Shared with bench/ so that
// benchmarks run a node the way `fedmesh node start` does.
import { readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/**
 * V8 flags of an idle node (`fedmesh node start`): --optimize-for-size keeps the young
 * generation at 1 MB and the heap frugal (idle RSS ~80 → ~76 MB). Under load the same flag
 * costs ~2.6× of the message rate (docs/PERFORMANCE.md, "The speed cost of the idle-RSS
 * settings"), so a node that gets busy switches to NODE_BUSY_V8_FLAGS (switchWhenBusy).
 * They are set at run time, before fedmesh loads (prepareNodeProcess), never on the command
 * line: there the flag's implied 1 MB semi-space would size the young generation's
 * reservation for good, and the switch could not give it back its default. FEDMESH_V8_FLAGS
 * replaces them (empty: none) and turns the switch off.
 */
export const NODE_START_V8_FLAGS = '--optimize-for-size'
/**
 * What a busy node runs with: V8's speed defaults back. (The young generation's size is not
 * among them: V8 fixes its maximum when the process starts, and a later
 * `--max-semi-space-size` changes nothing — see NODE_START_EXEC_ARGV.)
 */
export const NODE_BUSY_V8_FLAGS = '--no-optimize-for-size'

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
 * ready (each segment is a fresh mapping, paged in). And semi-spaces of up to 32 MB instead
 * of 16: a busy node's young generation grows to twice the size, so half as many scavenges
 * land in its round trips (each a sure slow one when it does); V8 takes the maximum only
 * from the command line, and an idle node never grows its young generation there (idle RSS
 * unchanged; docs/PERFORMANCE.md, "Request–reply, session 9").
 */
export const NODE_START_EXEC_ARGV = ['--v8-pool-size=1', '--max-semi-space-size=32']
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
  // The V8 flags of NODE_START_V8_FLAGS stay off the command line (prepareNodeProcess sets them).
  const flags = NODE_START_EXEC_ARGV.filter(f => !given.has(f.split('=')[0]))
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
  await applyNodeV8Flags(env)
  deferUndici()
}

/**
 * Sets the node's V8 flags at run time (FEDMESH_V8_FLAGS, or NODE_START_V8_FLAGS and the
 * switch to NODE_BUSY_V8_FLAGS once the node is busy). Before fedmesh loads. Flags the
 * operator put on the command line are not set again.
 */
export async function applyNodeV8Flags (env = process.env) {
  const v8 = await import('node:v8')
  const flags = (env.FEDMESH_V8_FLAGS ?? NODE_START_V8_FLAGS).split(/\s+/).filter(f => f !== '' && !process.execArgv.includes(f))
  if (flags.length > 0) v8.setFlagsFromString(flags.join(' '))
  if (env.FEDMESH_V8_FLAGS == null && flags.length > 0) switchWhenBusy({ onBusy: () => v8.setFlagsFromString(NODE_BUSY_V8_FLAGS) })
}

/**
 * When a node counts as busy (switchWhenBusy): CPU used (all threads) in each of `windows`
 * consecutive windows of `ticks` sampling ticks (100 ms each) over `share` of a core. The
 * first reacts to load within ~0.2 s (a bench, a burst of requests: over half a core twice
 * running); the second to a steady moderate load (2,000 msgs/s of topic traffic is ~0.1 of a
 * core once V8 has compiled its code, more in its first seconds: near this threshold). An idle node's busiest 100 ms measured 40 ms of CPU, and never two in a row
 * (docs/PERFORMANCE.md, "Soak and tail, session 5").
 */
export const BUSY_RULES = [
  { ticks: 1, windows: 2, share: 0.5 },
  { ticks: 5, windows: 2, share: 0.1 }
]

/**
 * Calls `onBusy` once, when the process's CPU use meets one of `rules` (BUSY_RULES), sampled
 * every `tickMs`. Start-up must not count: 0.3–0.6 s of CPU from dist/, which takes 2–4 s of
 * wall time when several nodes start at once on a loaded two-core machine. Watching starts
 * `delayMs` after the call, once `idleTicks` ticks in a row were idle (under a tenth of a
 * core: start-up is over — a process merely descheduled for a tick in the middle of it does
 * not pass); for a node that is busy from its start on, once the process has used more CPU
 * than a start-up does (`startupCpuMs`, all threads since the process started), or
 * `armByMs` after the call. The timers are unref'd: they never keep a process alive.
 * Returns a function that stops watching.
 */
export function switchWhenBusy ({ onBusy, delayMs = 1000, idleTicks = 3, startupCpuMs = 1000, armByMs = 5000, tickMs = 100, rules = BUSY_RULES, idleShare = 0.1, cpuUsage = () => process.cpuUsage(), now = () => performance.now() }) {
  const startedAt = now()
  const keep = Math.max(...rules.map(r => r.ticks * r.windows))
  // CPU ms of the latest ticks since watching started, newest last.
  const used = []
  let armed = false
  let idle = 0
  let last
  const busy = () => rules.some(({ ticks, windows, share }) => {
    if (used.length < ticks * windows) return false
    for (let w = 0; w < windows; w++) {
      let sum = 0
      for (let i = used.length - (w + 1) * ticks; i < used.length - w * ticks; i++) sum += used[i]
      if (sum <= share * ticks * tickMs) return false
    }
    return true
  })
  let timer
  const tick = () => {
    const cpu = cpuUsage()
    const usedMs = (cpu.user - last.user + cpu.system - last.system) / 1000
    last = cpu
    used.push(usedMs)
    if (used.length > keep) used.shift()
    if (!armed) {
      idle = usedMs < idleShare * tickMs ? idle + 1 : 0
      if (idle >= idleTicks) {
        // What came before the idle ticks was start-up: it does not count.
        used.splice(0, used.length - idleTicks)
        armed = true
      } else if (cpu.user + cpu.system >= startupCpuMs * 1000) {
        // More work than a start-up: the ticks since delayMs count (the first seconds of a
        // load, while V8 still compiles, are its busiest).
        armed = true
      } else if (now() - startedAt >= armByMs) {
        used.splice(0, used.length - 1)
        armed = true
      }
      if (!armed) return
    }
    if (!busy()) return
    clearInterval(timer)
    onBusy()
  }
  const watch = () => {
    last = cpuUsage()
    timer = setInterval(tick, tickMs)
    timer.unref()
  }
  if (delayMs > 0) {
    timer = setTimeout(watch, delayMs)
    timer.unref()
  } else {
    watch()
  }
  return () => { clearTimeout(timer); clearInterval(timer) }
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

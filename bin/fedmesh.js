#!/usr/bin/env node
// The `fedmesh` command.
//
// Runs the compiled dist/ when it is there and no source file is newer than it (`npm install`
// builds it through the `prepare` script; `npm run build` rebuilds it), else the TypeScript in
// src/ directly (Node >= 22.18 strips types). dist/ starts faster and takes ~25 MB less memory:
// type stripping loads a WebAssembly compiler into every process. FEDMESH_FROM_SOURCE=1 forces src/.
//
// `fedmesh node start` (the long-running node) also gets the V8 flags of NODE_START_V8_FLAGS,
// or of FEDMESH_V8_FLAGS when that is set (empty: none). See docs/PERFORMANCE.md.
//
// Under an older system Node it re-runs itself with the Node 22 the project pins.
import { readdirSync, statSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Measured on an idle node (docs/PERFORMANCE.md): --optimize-for-size takes its RSS from ~140
 * to ~108 MB (a smaller young generation, a more frugal heap) for ~10% of CPU-bound speed.
 * It is one of the few V8 flags that still act when set after start-up.
 */
export const NODE_START_V8_FLAGS = '--optimize-for-size'

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

/** dist/ when its build stamp is newer than every source file, else src/. */
function entryPoint () {
  const src = new URL('src/cli/main.ts', root)
  if (process.env.FEDMESH_FROM_SOURCE === '1') return src
  const stamp = statSync(new URL('dist/.build-stamp', root), { throwIfNoEntry: false })
  if (stamp == null) return src
  try {
    return newestSource(fileURLToPath(new URL('src', root))) <= stamp.mtimeMs ? new URL('dist/cli/main.js', root) : src
  } catch {
    return src
  }
}

const [major, minor] = process.versions.node.split('.').map(Number)
if (major > 22 || (major === 22 && minor >= 18)) {
  if (process.argv[2] === 'node' && process.argv[3] === 'start') {
    const flags = process.env.FEDMESH_V8_FLAGS ?? NODE_START_V8_FLAGS
    if (flags.trim() !== '') (await import('node:v8')).setFlagsFromString(flags)
  }
  await import(entryPoint().href)
} else {
  const { spawn } = await import('node:child_process')
  const pinned = fileURLToPath(new URL('node_modules/node/bin/node', root))
  if (!existsSync(pinned)) {
    process.stderr.write(`fedmesh: needs Node.js >= 22.18 (this is ${process.version}); npm install in the project gets the pinned Node 22\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { child.kill(sig) })
  child.on('exit', (code, signal) => { process.exit(code ?? (signal != null ? 1 : 0)) })
}

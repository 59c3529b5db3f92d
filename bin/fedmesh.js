#!/usr/bin/env node
// The `fedmesh` command.
//
// Runs the dist/ build when it is there and no source file is newer than it (`npm install`
// builds it through the `prepare` script; `npm run build` rebuilds it), else the TypeScript in
// src/ directly (Node >= 22.18 strips types). dist/ is one minified bundle in a few chunks
// (scripts/build.ts): an idle node takes ~80 MB instead of ~110 MB from src/ (type stripping
// alone loads a WebAssembly compiler into every process) and a third of the start CPU.
// FEDMESH_FROM_SOURCE=1 forces src/. `fedmesh node start` re-executes itself once with
// start-only settings and sets the V8 flags of bin/runtime.js (FEDMESH_V8_FLAGS overrides
// them, FEDMESH_REEXEC=0 skips the re-execution). See docs/PERFORMANCE.md.
//
// Under an older system Node it re-runs itself with the Node 22 the project pins.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major > 22 || (major === 22 && minor >= 18)) {
  const { prepareNodeProcess, moduleUrl } = await import('./runtime.js')
  if (process.argv[2] === 'node' && process.argv[3] === 'start') await prepareNodeProcess()
  await import(moduleUrl('cli/main').href)
} else {
  const { spawn } = await import('node:child_process')
  const { existsSync } = await import('node:fs')
  const { fileURLToPath } = await import('node:url')
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url))
  if (!existsSync(pinned)) {
    process.stderr.write(`fedmesh: needs Node.js >= 22.18 (this is ${process.version}); npm install in the project gets the pinned Node 22\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { child.kill(sig) })
  child.on('exit', (code, signal) => { process.exit(code ?? (signal != null ? 1 : 0)) })
}

#!/usr/bin/env node
// The `fedmesh` command. It runs the TypeScript sources directly, which needs Node >= 22.18;
// on an older system Node it re-runs itself under the Node 22 the project pins in node_modules.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major > 22 || (major === 22 && minor >= 18)) {
  await import('../src/cli/main.ts')
} else {
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url))
  if (!existsSync(pinned)) {
    process.stderr.write(`fedmesh: needs Node.js >= 22.18 (this is ${process.version}); run npm install in the project to get the pinned Node 22\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { child.kill(sig) })
  child.on('exit', (code, signal) => { process.exit(code ?? (signal != null ? 1 : 0)) })
}

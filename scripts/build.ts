/**
 * Builds dist/ from src/ (tsc -p tsconfig.build.json) and stamps it, so that bin/fedmesh.js
 * runs the compiled code only while no source file is newer than the build.
 *
 *   node scripts/build.ts                 # npm run build: fails when tsc fails
 *   node scripts/build.ts --if-possible   # npm install (prepare): warns and leaves no dist/ instead
 *
 * The stamp's time is the build's start, so a source edited during the build counts as newer.
 */
import { spawnSync } from 'node:child_process'
import { rmSync, utimesSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = `${root}dist`
const optional = process.argv.includes('--if-possible')

function giveUp (why: string): never {
  rmSync(dist, { recursive: true, force: true })
  if (!optional) {
    process.stderr.write(`build: ${why}\n`)
    process.exit(1)
  }
  process.stderr.write(`fedmesh build skipped (${why}); bin/fedmesh.js runs the TypeScript sources instead\n`)
  process.exit(0)
}

let tsc: string
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
} catch {
  giveUp('typescript is not installed')
}
const started = new Date()
rmSync(dist, { recursive: true, force: true })
const r = spawnSync(process.execPath, [tsc, '-p', `${root}tsconfig.build.json`], { stdio: 'inherit', cwd: root })
if (r.status !== 0) giveUp(`tsc exited with ${r.status ?? r.signal}`)
const stamp = `${dist}/.build-stamp`
writeFileSync(stamp, `${started.toISOString()}\n`)
utimesSync(stamp, started, started)

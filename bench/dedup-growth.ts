/**
 * Micro-benchmark of the ingress dedup cache (src/core/ingress.ts DedupCache) growing to 1M ids:
 * the worst single `add` (the doublings), adds/s over the whole fill, `has` ns on held ids and on
 * absent ids, and the process's RSS / external memory after the fill.
 *
 *   node_modules/.bin/node --expose-gc bench/dedup-growth.ts [--ids 1000000] [--src path/to/ingress.ts]
 *
 * `--src` loads another tree's DedupCache (alternate runs against the base: the machine is shared).
 */
import { createHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { resolve } from 'node:path'

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : dflt
}
const n = Number(arg('ids', '1000000'))
const src = resolve(arg('src', 'src/core/ingress.ts'))
const { DedupCache } = await import(pathToFileURL(src).href) as typeof import('../src/core/ingress.ts')

// Message-id-shaped strings ('b' + base32 of a sha2-256 multihash, 56 chars), made up front.
const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
function fakeId (i: number): string {
  const h = createHash('sha256').update(String(i)).digest()
  let s = 'bciqa'
  for (let k = 0; s.length < 56; k++) s += alphabet[h[k % 32] & 31]
  return s
}
const ids: string[] = new Array(n)
for (let i = 0; i < n; i++) ids[i] = fakeId(i)
const absent: string[] = new Array(100_000)
for (let i = 0; i < absent.length; i++) absent[i] = fakeId(n + i)

const rss0 = process.memoryUsage()
const d = new DedupCache(n)
let worst = 0
let worstAt = 0
let over1ms = 0
const top: number[] = []
const t0 = performance.now()
for (let i = 0; i < n; i++) {
  const a = performance.now()
  // Two adds a millisecond: the once-a-second sweep runs every 2,000 adds, as at 2,000 msgs/s.
  d.add(ids[i], 1e15, i >> 1)
  const dt = performance.now() - a
  if (dt > 1) over1ms++
  if (dt > worst) { worst = dt; worstAt = i }
  top.push(dt)
  if (top.length > 64) { top.sort((x, y) => y - x); top.length = 8 }
}
top.sort((x, y) => y - x)
const fillMs = performance.now() - t0
// Plain throughput (no per-add clock): a second cache, same ids.
const d2 = new DedupCache(n)
const t1 = performance.now()
for (let i = 0; i < n; i++) d2.add(ids[i], 1e15, 1000)
const addsPerS = n / ((performance.now() - t1) / 1000)
let hits = 0
const t2 = performance.now()
for (let r = 0; r < 3; r++) for (let i = 0; i < n; i += 3) if (d2.has(ids[i], 1000)) hits++
const hasHeldNs = (performance.now() - t2) * 1e6 / Math.ceil(n / 3) / 3
const t3 = performance.now()
for (let r = 0; r < 10; r++) for (let i = 0; i < absent.length; i++) if (d2.has(absent[i], 1000)) hits++
const hasAbsentNs = (performance.now() - t3) * 1e6 / absent.length / 10
const gc = (globalThis as { gc?: () => void }).gc
gc?.()
const m = process.memoryUsage()
console.log(JSON.stringify({
  src: process.argv.includes('--src') ? src : 'this tree',
  ids: n,
  worstAddMs: +worst.toFixed(2),
  worstAt,
  top5AddsMs: top.slice(0, 5).map(x => +x.toFixed(2)),
  addsOver1ms: over1ms,
  fillMsWithClock: Math.round(fillMs),
  addsPerS: Math.round(addsPerS),
  hasHeldNs: +hasHeldNs.toFixed(0),
  hasAbsentNs: +hasAbsentNs.toFixed(0),
  hits,
  rssMB: +((m.rss - rss0.rss) / 2 ** 20).toFixed(1),
  externalPerCacheMB: +((m.external - rss0.external) / 2 ** 20 / 2).toFixed(1),
  size: d.size + d2.size
}))

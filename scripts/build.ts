/**
 * Builds dist/: src/ bundled and minified by esbuild, and stamps it, so that bin/fedmesh.js
 * runs the build only while no source file is newer than it.
 *
 *   node scripts/build.ts                 # npm run build: fails when the build fails
 *   node scripts/build.ts --if-possible   # npm install (prepare): warns and leaves no dist/ instead
 *
 * Why a bundle (docs/PERFORMANCE.md, "Footprint of an idle node"): a node process holds every
 * module it loaded — its source text (V8 keeps it for lazy compilation), its compiled code
 * and the loader's records for ~1,300 files. One minified bundle holds 2.5 MB of JavaScript
 * instead of 5 MB, and takes an idle node from ~100 to ~84 MB RSS and its start CPU from
 * ~0.85 to ~0.3 s. Code splitting keeps what `import()` loads lazily (the HTTP API with
 * Fastify, mDNS, bootstrap, the SQL stores…) in chunks of its own, still loaded only when used.
 *
 * Layout: every output sits directly in dist/ — the entry points as `<path with / → ->.js`
 * (`cli-main.js`, `index.js`; bin/runtime.js's moduleUrl maps `cli/main` to it) and the shared
 * chunks as `chunk-*.js`. One depth for all of them is what lets a module find a file by a
 * path relative to itself wherever its code lands. A .ts file under src/ addressed by
 * `new URL('<relative path>', import.meta.url)` or `new URL(`<relative path>${ext}`,
 * import.meta.url)` (a worker thread's script) becomes an entry point of its own, named by its
 * file name; `new URL()` of any other project file (e.g. bin/fedmesh.js) is addressed from the
 * project root. Any other use of `import.meta` in src/ besides `createRequire(import.meta.url)`
 * fails the build, so nothing breaks silently (see rewriteImportMeta).
 *
 * The stamp's time is the build's start, so a source edited during the build counts as newer.
 *
 * A rebuild keeps the chunks of the previous KEEP_BUILDS - 1 builds (listed in dist/.builds.json):
 * a node started from an earlier build loads some of its code only when first used (the API,
 * the SQL stores…), from chunks named by their content hash; had the rebuild removed them, that
 * node would fail with `Cannot find module dist/chunk-….js`. Entry points (cli-main.js, the
 * worker scripts) keep their names and are replaced: a worker a running node starts after a
 * rebuild runs the new build's code.
 */
import { copyFileSync, existsSync, linkSync, readFileSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Esbuild from 'esbuild'

const root = fileURLToPath(new URL('..', import.meta.url))
const src = `${root}src/`
const dist = `${root}dist`
/** Built here, then swapped in: a running node that loads a chunk lazily never meets a half-written dist/. */
const staging = `${root}.dist-build-${process.pid}`
const optional = process.argv.includes('--if-possible')
/** Builds whose chunks dist/ holds: this one and the ones before it that a running node may still load from. */
export const KEEP_BUILDS = 3
/** dist/'s list of the builds whose chunks it holds, newest first. */
const BUILDS_FILE = '.builds.json'
interface BuildRecord { stamp: string, chunks: string[] }

/** The entry points everyone runs: src-relative paths without extension. */
const ENTRIES = ['cli/main', 'index']

function giveUp (why: string): never {
  rmSync(staging, { recursive: true, force: true })
  rmSync(dist, { recursive: true, force: true })
  if (!optional) {
    process.stderr.write(`build: ${why}\n`)
    process.exit(1)
  }
  process.stderr.write(`fedmesh build skipped (${why}); bin/fedmesh.js runs the TypeScript sources instead\n`)
  process.exit(0)
}

/** dist/ file name (without .js) of an entry point's src-relative path: `cli/main` → `cli-main`. */
export function outputName (path: string): string { return path.replaceAll('/', '-') }

const NEW_URL = /new\s+URL\(\s*(['"])([^'"\n]+)\1\s*,\s*import\.meta\.url\s*\)/g
/** `new URL(`./name${ext}`, import.meta.url)`: a module named with the extension of the caller's own file. */
const NEW_URL_EXT = /new\s+URL\(\s*`([^`$\n]+)\$\{[^}`\n]*\}`\s*,\s*import\.meta\.url\s*\)/g
const CREATE_REQUIRE = /createRequire\(\s*import\.meta\.url\s*\)/g

/**
 * Rewrites the `new URL('…', import.meta.url)` of one source file for the flat dist/ layout;
 * `found` collects the src modules they name (src-relative paths without extension), which
 * become entry points named by their file name (`store/writer.ts` → dist/writer.js): a
 * literal `./writer.ts` becomes `./writer.js`, and `new URL(`./writer${ext}`, import.meta.url)`,
 * whose `${ext}` is the caller's own extension (`.js` in a bundle), is left as it is.
 */
export function rewriteImportMeta (file: string, text: string, found: Set<string>): string {
  for (const m of text.matchAll(NEW_URL_EXT)) {
    // Left as written, it names dist/<name>.js from a chunk only if it names a file beside the caller.
    const fromSrc = relative(src, resolve(dirname(file), m[1]))
    if (!/^\.\/[^/]+$/.test(m[1]) || fromSrc.startsWith('..') || !existsSync(`${src}${fromSrc}.ts`)) {
      throw new Error(`${relative(root, file)}: new URL(\`${m[1]}\${…}\`, import.meta.url) must name a module beside it in src/ ("./name")`)
    }
    found.add(fromSrc)
  }
  return text.replace(NEW_URL, (_all, quote: string, rel: string) => {
    const target = resolve(dirname(file), rel)
    const fromSrc = relative(src, target)
    if (!fromSrc.startsWith('..') && /\.(ts|js)$/.test(fromSrc)) {
      const path = fromSrc.replace(/\.(ts|js)$/, '')
      found.add(path)
      return `new URL(${quote}./${basename(path)}.js${quote}, import.meta.url)`
    }
    const fromRoot = relative(root, target)
    if (fromRoot.startsWith('..')) throw new Error(`${relative(root, file)}: new URL(${JSON.stringify(rel)}, import.meta.url) points outside the project`)
    return `new URL(${quote}../${fromRoot}${quote}, import.meta.url)`
  })
}

/**
 * Throws if `code` (a module with its comments stripped) uses `import.meta` other than as
 * `new URL('<literal>', import.meta.url)` or `createRequire(import.meta.url)`: anything else
 * would silently address the wrong file from a bundle.
 */
export function checkImportMeta (file: string, code: string): void {
  const rest = code.replace(NEW_URL, '').replace(NEW_URL_EXT, '').replace(CREATE_REQUIRE, '')
  if (/import\.meta\b/.test(rest)) {
    throw new Error(`${relative(root, file)}: import.meta is only supported as new URL('<literal path>', import.meta.url), new URL(\`<path>\${ext}\`, import.meta.url) or createRequire(import.meta.url) in a build (scripts/build.ts)`)
  }
}

/**
 * Edits of dependencies, in the bundle only. Each names the file, the exact text and its
 * replacement; a dependency that no longer has the text fails the build.
 *
 * libp2p's peer store sorts protocol names, metadata keys and addresses with
 * `String.prototype.localeCompare`, which makes V8 set up an ICU collator for the default
 * locale: ~3.5 MB of ICU data paged in, in every node, for an order that is only used to
 * store and compare these lists canonically inside one process. Sorting by UTF-16 code units
 * gives such an order without ICU.
 */
const CODE_UNIT_ORDER = '((x, y) => x < y ? -1 : x > y ? 1 : 0)'
/**
 * Noise (@chainsafe/libp2p-noise) compiles and instantiates two WebAssembly modules when it
 * is imported — ChaCha20-Poly1305 (which it uses for frames under 1,200 bytes) and SHA-256
 * (used only by its optional `asCrypto`) — although a node uses them only once it has a
 * connection. Each costs its module's source as a large array literal, the compiled code,
 * the instance's memory and V8's WebAssembly compiler paged in: ~3 MB of an idle node's RSS
 * (docs/PERFORMANCE.md). In the bundle they load on first use instead (esbuild bundles a
 * `require()` of a dependency as a module initialised when first called); the code that
 * runs once they are loaded is the same.
 */
const NOISE_CRYPTO = 'dist/src/crypto/index.js'
export const DEPENDENCY_EDITS: ReadonlyArray<{ pkg: string, path: string, from: string, to: string }> = [
  { pkg: '@libp2p/peer-store', path: 'dist/src/utils/to-peer-pb.js', from: 'return a.localeCompare(b);', to: `return ${CODE_UNIT_ORDER}(a, b);` },
  { pkg: '@libp2p/peer-store', path: 'dist/src/utils/dedupe-addresses.js', from: 'return a.multiaddr.toString().localeCompare(b.multiaddr.toString());', to: `return ${CODE_UNIT_ORDER}(a.multiaddr.toString(), b.multiaddr.toString());` },
  { pkg: '@libp2p/peer-record', path: 'dist/src/peer-record/utils.js', from: 'a.toString().localeCompare(b.toString())', to: `${CODE_UNIT_ORDER}(a.toString(), b.toString())` },
  { pkg: '@chainsafe/libp2p-noise', path: NOISE_CRYPTO, from: "import { newInstance, ChaCha20Poly1305 } from '@chainsafe/as-chacha20poly1305';\nimport { digest } from '@chainsafe/as-sha256';\n", to: '/* fedmesh build: the WebAssembly modules load on first use (scripts/build.ts) */\n' },
  { pkg: '@chainsafe/libp2p-noise', path: NOISE_CRYPTO, from: 'const ctx = newInstance();\nconst asImpl = new ChaCha20Poly1305(ctx);\n', to: "let asImplLoaded;\nconst asImpl = () => asImplLoaded ??= (() => { const { newInstance, ChaCha20Poly1305 } = require('@chainsafe/as-chacha20poly1305'); return new ChaCha20Poly1305(newInstance()); })();\n" },
  { pkg: '@chainsafe/libp2p-noise', path: NOISE_CRYPTO, from: 'return digest(data.subarray());', to: "return require('@chainsafe/as-sha256').digest(data.subarray());" },
  { pkg: '@chainsafe/libp2p-noise', path: NOISE_CRYPTO, from: 'asImpl.seal(', to: 'asImpl().seal(' },
  { pkg: '@chainsafe/libp2p-noise', path: NOISE_CRYPTO, from: 'asImpl.open(', to: 'asImpl().open(' }
]
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
const editedFile = (e: { pkg: string, path: string }): RegExp => new RegExp(`node_modules/${escape(e.pkg)}/${escape(e.path)}$`)

/** `text` of dependency file `path` with its DEPENDENCY_EDITS applied (every occurrence). */
export function applyDependencyEdits (path: string, text: string): string {
  let out = text
  for (const e of DEPENDENCY_EDITS) {
    if (!editedFile(e).test(path)) continue
    if (!out.includes(e.from)) throw new Error(`${path} no longer contains ${JSON.stringify(e.from)}: review DEPENDENCY_EDITS in scripts/build.ts`)
    out = out.replaceAll(e.from, e.to)
  }
  return out
}

async function bundle (esbuild: typeof Esbuild, entries: Map<string, string>, found: Set<string>): Promise<void> {
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries([...entries].map(([name, p]) => [name, `${src}${p}.ts`])),
    outdir: staging,
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    // A native addon: loaded from node_modules at run time (its prebuilt binary sits beside it).
    external: ['sodium-native'],
    // Whitespace, syntax and identifiers: the less source text, the less a process holds.
    // Nothing fedmesh loads depends on the names of its own functions or classes (checked:
    // the dependencies compare constructor names only of built-ins such as Uint8Array).
    minify: true,
    // Licence notices go to dist/*.LEGAL.txt, not into the code a process loads.
    legalComments: 'external',
    // Read only with --enable-source-maps (for stack traces into src/).
    sourcemap: 'linked',
    sourcesContent: false,
    // CommonJS dependencies bundled into ES modules still call require() for Node built-ins.
    banner: { js: "import{createRequire as __fmCreateRequire}from'node:module';const require=__fmCreateRequire(import.meta.url);" },
    logLevel: 'warning',
    plugins: [{
      name: 'fedmesh-import-meta',
      setup (build) {
        build.onLoad({ filter: /\.ts$/ }, async (args) => {
          if (!args.path.startsWith(src)) return undefined
          const contents = rewriteImportMeta(args.path, await readFile(args.path, 'utf8'), found)
          // Checked on the code without its comments (esbuild's own TypeScript transform).
          if (contents.includes('import.meta')) checkImportMeta(args.path, (await esbuild.transform(contents, { loader: 'ts' })).code)
          return { contents, loader: 'ts' }
        })
        const edited = new RegExp(DEPENDENCY_EDITS.map(e => editedFile(e).source).join('|'))
        build.onLoad({ filter: edited }, async (args) => {
          const contents = applyDependencyEdits(args.path, await readFile(args.path, 'utf8'))
          return { contents, loader: 'js', resolveDir: dirname(args.path) }
        })
      }
    }]
  })
}

const isChunk = (f: string): boolean => f.startsWith('chunk-')

/**
 * The builds a new dist/ keeps the chunks of (newest first, `current` first), given the
 * previous dist/'s list: at most KEEP_BUILDS. A dist/ from before the list existed counts as
 * one build of all its chunks.
 */
export function keptBuilds (current: BuildRecord, previous: BuildRecord[]): BuildRecord[] {
  return [current, ...previous].slice(0, KEEP_BUILDS)
}

/** The previous dist/'s builds (empty without a dist/). */
function previousBuilds (): BuildRecord[] {
  if (!existsSync(dist)) return []
  try {
    const list = JSON.parse(readFileSync(`${dist}/${BUILDS_FILE}`, 'utf8')) as { builds?: BuildRecord[] }
    if (Array.isArray(list.builds)) return list.builds.filter(b => typeof b.stamp === 'string' && Array.isArray(b.chunks))
  } catch { /* no list (a dist/ built before it was kept) or a damaged one: all its chunks are one build */ }
  let stamp = ''
  try { stamp = readFileSync(`${dist}/.build-stamp`, 'utf8').trim() } catch { /* none */ }
  return [{ stamp, chunks: readdirSync(dist).filter(isChunk) }]
}

/**
 * Carries the chunks of the kept earlier builds from dist/ into the staged build (hard links:
 * no copy, and the same file a running process may have open) and writes the list.
 */
function carryChunks (stamp: string): void {
  const own = readdirSync(staging).filter(isChunk)
  const builds = keptBuilds({ stamp, chunks: own }, previousBuilds())
  const present = new Set(own)
  for (const b of builds.slice(1)) {
    for (const f of b.chunks) {
      if (present.has(f) || !isChunk(f) || f.includes('/') || !existsSync(`${dist}/${f}`)) continue
      try { linkSync(`${dist}/${f}`, `${staging}/${f}`) } catch { copyFileSync(`${dist}/${f}`, `${staging}/${f}`) }
      present.add(f)
    }
  }
  writeFileSync(`${staging}/${BUILDS_FILE}`, JSON.stringify({ builds }, null, 1) + '\n')
}

async function main (): Promise<void> {
  let esbuild: typeof Esbuild
  try {
    esbuild = createRequire(import.meta.url)('esbuild') as typeof Esbuild
  } catch {
    giveUp('esbuild is not installed (a devDependency)')
  }
  const started = new Date()
  // name in dist/ → src-relative path
  const entries = new Map(ENTRIES.map(p => [outputName(p), p]))
  // A module addressed by new URL() (a worker's script) becomes an entry point; it may name
  // further ones, hence the loop (bounded: every round adds at least one src file).
  for (let round = 0; ; round++) {
    if (round > 50) giveUp('new URL() entry points do not settle')
    rmSync(staging, { recursive: true, force: true })
    const found = new Set<string>()
    try {
      await bundle(esbuild, entries, found)
    } catch (err) {
      giveUp((err as Error).message.split('\n')[0])
    }
    const known = new Set(entries.values())
    const added = [...found].filter(p => !known.has(p))
    if (added.length === 0) break
    for (const p of added) {
      const name = basename(p)
      if (entries.has(name) || name.startsWith('chunk-')) giveUp(`src/${p}.ts would be dist/${name}.js, which another entry point or chunk is named`)
      entries.set(name, p)
    }
  }
  const stamp = `${staging}/.build-stamp`
  writeFileSync(stamp, `${started.toISOString()}\n`)
  utimesSync(stamp, started, started)
  carryChunks(started.toISOString())
  const old = `${staging}-old`
  if (existsSync(dist)) renameSync(dist, old)
  renameSync(staging, dist)
  rmSync(old, { recursive: true, force: true })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()

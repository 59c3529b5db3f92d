/**
 * Command definitions and argument parsing for the `fedmesh` command (node:util parseArgs,
 * strict). Each command declares its options once; parsing and `--help` come from that.
 */
import { parseArgs } from 'node:util'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** Bad flags or input: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

/** Failure while running (node unreachable, typed API error): exit code 1. */
export class CliError extends Error {
  override readonly name = 'CliError'
  readonly code?: string
  readonly exitCode: number
  constructor (message: string, opts: { code?: string, exitCode?: number } = {}) {
    super(message)
    this.code = opts.code
    this.exitCode = opts.exitCode ?? 1
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean'
  multiple?: boolean
  short?: string
  /** Placeholder in help, e.g. `MS`. */
  arg?: string
  help: string
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
  /** Absolute data dir: --dir, else $FEDMESH_DIR, else ~/.fedmesh. */
  dir: string
}

export interface Command {
  /** e.g. `status`, `node start`. */
  name: string
  /** Positional arguments, e.g. ['TOPIC']. */
  args?: string[]
  summary: string
  options?: Record<string, OptionSpec>
  /** False for a command that has no data dir of its own (`demo` makes temporary ones): no --dir. */
  dir?: false
  run: (p: Parsed) => Promise<void>
}

export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  dir: { type: 'string', arg: 'DIR', help: 'Node data directory (default $FEDMESH_DIR or ~/.fedmesh)' },
  help: { type: 'boolean', short: 'h', help: 'Show this help' }
}

export function defaultDir (): string {
  const env = process.env.FEDMESH_DIR
  return env != null && env !== '' ? env : join(homedir(), '.fedmesh')
}

function optionsOf (c: Command): Record<string, OptionSpec> {
  const { dir, ...rest } = COMMON_OPTIONS
  return { ...c.options, ...(c.dir === false ? {} : { dir }), ...rest }
}

export function commandHelp (c: Command): string {
  const opts = optionsOf(c)
  const lines = Object.entries(opts).map(([name, o]) => {
    const flag = `${o.short != null ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}${o.multiple === true ? ' …' : ''}`
    return `  ${flag.padEnd(26)} ${o.help}`
  })
  return `usage: fedmesh ${c.name}${(c.args ?? []).map(a => ` ${a}`).join('')} [options]\n\n${c.summary}\n\noptions:\n${lines.join('\n')}\n`
}

export function parseCommand (c: Command, argv: string[]): Parsed | 'help' {
  const specs = optionsOf(c)
  const options: Record<string, { type: 'string' | 'boolean', multiple?: boolean, short?: string }> = {}
  for (const [name, o] of Object.entries(specs)) options[name] = { type: o.type, ...(o.multiple === true ? { multiple: true } : {}), ...(o.short != null ? { short: o.short } : {}) }
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (err) {
    // A value that starts with a dash (`--retries -1`, `--data -5`) reads as a flag to
    // parseArgs, which calls it "ambiguous"; say what to type instead.
    const ambiguous = /^Option '--([^' ]+)' argument is ambiguous/.exec((err as Error).message)
    if (ambiguous != null) {
      const flag = ambiguous[1]
      const given = argv[argv.indexOf(`--${flag}`) + 1] ?? '-…'
      throw new UsageError(`--${flag} needs a value; one that starts with "-" is written --${flag}=${given} (see: fedmesh ${c.name} --help)`)
    }
    // parseArgs explains at length; the first sentence names the problem.
    const msg = (err as Error).message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '')
    throw new UsageError(`${msg} (see: fedmesh ${c.name} --help)`)
  }
  const values = parsed.values as Parsed['values']
  if (values.help === true) return 'help'
  const want = c.args ?? []
  if (parsed.positionals.length > want.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[want.length])} (see: fedmesh ${c.name} --help)`)
  if (parsed.positionals.length < want.length) throw new UsageError(`missing ${want[parsed.positionals.length]} (usage: fedmesh ${c.name} ${want.join(' ')} [options])`)
  const dirFlag = values.dir as string | undefined
  if (dirFlag === '') throw new UsageError('--dir must not be empty')
  return { values, positionals: parsed.positionals, dir: resolve(dirFlag ?? defaultDir()) }
}

// ---- value parsers: each throws UsageError naming the flag -----------------------------

export function jsonFlag (v: unknown, flag: string): unknown {
  if (typeof v !== 'string') throw new UsageError(`--${flag} JSON is required`)
  try {
    return JSON.parse(v)
  } catch (err) {
    throw new UsageError(`--${flag} is not valid JSON: ${(err as Error).message}`)
  }
}

export function intFlag (v: unknown, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (typeof v !== 'string' || !/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
  return n
}

export function stringFlag (v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

export function listFlag (v: unknown): string[] | undefined {
  return Array.isArray(v) && v.length > 0 ? v as string[] : undefined
}

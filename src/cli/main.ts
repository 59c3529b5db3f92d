/**
 * Entry point of the `fedmesh` command (bin/fedmesh.js imports this).
 * Bad flags or input: one line `fedmesh: <problem>` on stderr, exit code 2.
 * Failures at run time (node not running, typed errors from the node): one line, exit 1.
 */
import { FedmeshError } from '../core/errors.ts'
import { CliError, UsageError, commandHelp, parseCommand } from './args.ts'
import { COMMANDS, usage } from './commands.ts'
import { statusOf } from '../api/errors.ts'

function findCommand (argv: string[]): { command: (typeof COMMANDS)[number], rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ')
    const command = COMMANDS.find(c => c.name === name)
    if (command != null) return { command, rest: argv.slice(words) }
  }
  return undefined
}

async function main (argv: string[]): Promise<void> {
  const first = argv[0]
  if (first == null || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(usage())
    return
  }
  const found = findCommand(argv)
  if (found == null) {
    const group = COMMANDS.filter(c => c.name.startsWith(`${first} `))
    if (group.length > 0) {
      if (argv[1] === '--help' || argv[1] === '-h') { process.stdout.write(group.map(commandHelp).join('\n')); return }
      if (argv[1] == null) throw new UsageError(`${first} needs a subcommand: ${group.map(c => c.name).join(', ')}`)
      throw new UsageError(`unknown command "${first} ${argv[1]}"; use ${group.map(c => `"${c.name}"`).join(' or ')}`)
    }
    throw new UsageError(`unknown command ${JSON.stringify(first)} (fedmesh --help lists them)`)
  }
  const parsed = parseCommand(found.command, found.rest)
  if (parsed === 'help') {
    process.stdout.write(commandHelp(found.command))
    return
  }
  await found.command.run(parsed)
}

function exitCodeOf (err: unknown): number {
  if (err instanceof UsageError) return 2
  if (err instanceof CliError) return err.exitCode
  // Typed input errors raised while checking arguments locally (bad topic, bad roles…).
  if (err instanceof FedmeshError && statusOf(err.code) === 400) return 2
  return 1
}

function messageOf (err: unknown): string {
  if (err instanceof UsageError || err instanceof CliError) return err.message
  if (err instanceof FedmeshError) return `${err.code}: ${err.message}`
  const e = err as Error
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`
}

/**
 * The message on one line, whole: some messages wrap (libp2p's listen failure names each
 * address and its cause on lines of their own; JSON.parse quotes text with its newlines),
 * so the first line alone can end just before the reason. Stack frames are left out.
 */
function oneLine (message: string): string {
  const lines = message.split('\n')
  const frame = lines.findIndex(l => /^\s+at /.test(l))
  return lines.slice(0, frame === -1 ? undefined : frame).map(l => l.trim()).filter(l => l !== '').join(' ')
}

// `fedmesh sub … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

main(process.argv.slice(2)).then(
  () => { process.exit(0) },
  (err: unknown) => {
    process.stderr.write(`fedmesh: ${oneLine(messageOf(err))}\n`)
    process.exit(exitCodeOf(err))
  }
)

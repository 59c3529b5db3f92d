/**
 * The systems under test, in table order. Modules load lazily so that one system that
 * cannot load (fedmesh while its SDK is being written) fails alone.
 */
import type { System } from '../lib/types.ts'
import type { ProcessSettings } from '../lib/proc.ts'
import { NODE_START_ENV, NODE_START_EXEC_ARGV, applyNodeV8Flags } from '../../bin/runtime.js'

/** A system, and the Node flags and environment its worker processes run with (none: the harness's own). */
export interface SystemEntry extends ProcessSettings { name: string, load: () => Promise<System> }

export const SYSTEMS: SystemEntry[] = [
  { name: 'nats', load: async () => (await import('./nats.ts')).nats },
  { name: 'mosquitto', load: async () => (await import('./mosquitto.ts')).mosquitto },
  { name: 'aedes', load: async () => (await import('./aedes.ts')).aedes },
  { name: 'gossipsub-unsigned', load: async () => (await import('./gossipsub.ts')).gossipsubUnsigned },
  { name: 'gossipsub-signed', load: async () => (await import('./gossipsub.ts')).gossipsubSigned },
  { name: 'fedmesh', load: async () => (await import('./fedmesh.ts')).fedmesh },
  // The same SDK adapter in processes set up as `fedmesh node start` sets up a node
  // (bin/runtime.js): one V8 worker thread, two malloc arenas and a fixed mmap threshold on
  // the command line, --optimize-for-size set before fedmesh loads and switched off once the
  // process is busy. They buy the idle RSS target; this row shows what they cost under load.
  {
    name: 'fedmesh-node',
    execArgv: NODE_START_EXEC_ARGV,
    env: NODE_START_ENV,
    load: async () => ({
      ...(await applyNodeV8Flags(), await import('./fedmesh.ts')).fedmesh,
      name: 'fedmesh-node',
      description: 'the fedmesh row\'s SDK adapter, in processes with the V8 flags and malloc settings of `fedmesh node start` (bin/runtime.js)'
    })
  }
]

/** The system all ratios are computed against. */
export const REFERENCE = 'fedmesh'

export async function loadSystem (name: string): Promise<System> {
  const entry = SYSTEMS.find(s => s.name === name)
  if (entry == null) throw new Error(`unknown system ${JSON.stringify(name)}; known: ${SYSTEMS.map(s => s.name).join(', ')}`)
  return await entry.load()
}

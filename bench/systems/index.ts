/**
 * The systems under test, in table order. Modules load lazily so that one system that
 * cannot load (fedmesh while its SDK is being written) fails alone.
 */
import type { System } from '../lib/types.ts'

export interface SystemEntry { name: string, load: () => Promise<System> }

export const SYSTEMS: SystemEntry[] = [
  { name: 'nats', load: async () => (await import('./nats.ts')).nats },
  { name: 'mosquitto', load: async () => (await import('./mosquitto.ts')).mosquitto },
  { name: 'aedes', load: async () => (await import('./aedes.ts')).aedes },
  { name: 'gossipsub-unsigned', load: async () => (await import('./gossipsub.ts')).gossipsubUnsigned },
  { name: 'gossipsub-signed', load: async () => (await import('./gossipsub.ts')).gossipsubSigned },
  { name: 'fedmesh', load: async () => (await import('./fedmesh.ts')).fedmesh }
]

/** The system all ratios are computed against. */
export const REFERENCE = 'fedmesh'

export async function loadSystem (name: string): Promise<System> {
  const entry = SYSTEMS.find(s => s.name === name)
  if (entry == null) throw new Error(`unknown system ${JSON.stringify(name)}; known: ${SYSTEMS.map(s => s.name).join(', ')}`)
  return await entry.load()
}

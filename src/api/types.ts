import type { MeshNode, Logger } from '../node/types.ts'
import type { AgentTransport } from '../routing/types.ts'
import type { WsLimits } from './protocol.ts'
import type { ApiSemantics } from './semantic-routes.ts'

/**
 * What the API needs from a node: the public MeshNode surface plus the node-side
 * AgentTransport that remote agents are attached through. MeshNodeImpl satisfies it;
 * tests may pass a stub.
 */
export type ApiNode = Pick<MeshNode, 'peerId' | 'network' | 'config' | 'agent' | 'agents' | 'status' | 'peers' | 'nodeRecords' | 'rejections' | 'findAgent' | 'waitForAgent'> & {
  readonly transport: AgentTransport
  /** The schema registry routes (absent: they answer SchemaNotFoundError). */
  readonly semantic?: ApiSemantics
  /** The message log (absent on a node without a store: the log routes answer 501). */
  log?: MeshNode['log']
  conversation?: MeshNode['conversation']
}

export interface ApiOptions {
  host: string
  port: number
  /** Bearer token every request must carry (except /healthz and /openapi.json). */
  token: string
  logger?: Logger
  /** Per-connection WebSocket limits (defaults: WS_LIMITS in api/protocol.ts). */
  limits?: Partial<WsLimits>
}

export interface ApiHandle {
  /** `http://host:port` with the port actually bound. */
  url: string
  close: () => Promise<void>
}

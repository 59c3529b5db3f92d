/**
 * Identifier types. Each id gets its own branded string type so an AgentId can
 * never be passed where a Topic or MessageId is expected.
 */
export type AgentId = string & { readonly __brand: 'AgentId' }
export type PeerIdString = string & { readonly __brand: 'PeerId' }
export type MessageId = string & { readonly __brand: 'MessageId' }
export type Topic = string & { readonly __brand: 'Topic' }
export type NetworkId = string & { readonly __brand: 'NetworkId' }
export type SchemaUri = string & { readonly __brand: 'SchemaUri' }

/** Network ids are short lowercase slugs: they appear inside libp2p protocol ids. */
export const NETWORK_ID_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/

export function isNetworkId (s: unknown): s is NetworkId {
  return typeof s === 'string' && NETWORK_ID_RE.test(s)
}

/** `namespace/name@semver`, e.g. `market/rfp@1.0.0`. */
export const SCHEMA_URI_RE = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)+@\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/

export function isSchemaUri (s: unknown): s is SchemaUri {
  return typeof s === 'string' && s.length <= 256 && SCHEMA_URI_RE.test(s)
}

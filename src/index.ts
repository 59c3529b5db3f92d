/**
 * fedmesh: a decentralized communication mesh for AI agents.
 *
 * @example
 * ```ts
 * import { createNode } from 'fedmesh'
 * const node = await createNode({ dir: './data' })
 * const agent = await node.agent('alice')
 * await agent.publish('weather/paris', { tempC: 21 })
 * ```
 */
export { createNode, MeshNodeImpl } from './node/mesh-node.ts'
export { createAgent, AgentImpl } from './sdk/agent.ts'
export { connect, type RemoteAgent, type ConnectOptions } from './sdk/remote.ts'
export * from './node/types.ts'
export * from './core/index.ts'
export { NODE_ROLES, type NodeRole, type AgentRecord, type NodeRecord } from './net/records.ts'
export type { PeerStatus } from './net/peers.ts'
// The semantic layer (docs/SEMANTIC.md): registry documents, protocols, conversations, audit.
export {
  createSchemaRegistry, createValidation, signSchemaDocument, signProtocolDocument, encodeDocument, decodeDocument, parseProtocol,
  parseSchemaFile, parseProtocolFile, auditConversation, exportConversation, importConversation, negotiate, capabilitiesToCaps,
  capabilitiesFromCaps, contractFromProposal, signContract, verifyContract, notUnderstood, replyFields, BUILTIN_PROTOCOLS, MARKET_PROTOCOL,
  type SchemaRegistry, type ProtocolDefinition, type Contract, type Rfp, type Proposal, type AuditReport, type Capabilities
} from './semantic/index.ts'
export type { ConversationEvent, ConversationInfo, AgentSemantics } from './sdk/conversations.ts'
export { runBuyer, runSeller, MARKET_CAPABILITIES, type MarketStep, type MarketOutcome } from './sdk/market-agents.ts'
export { parseReceipt, verifyReceipt, RECEIPT_TYPE, type Receipt } from './delivery/receipts.ts'
export type { NodeStoreConfig } from './node/storage.ts'
export type { LogFilter, LogPage, LogRecord, LogEvent, LogStatus, QueryOptions, InboxQuota } from './store/types.ts'
